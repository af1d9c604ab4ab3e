"""The scenario file's schema: what each key means, its type and its bounds.

Pydantic models only; checks that need the plant live in :mod:`co2twin.scenario_checks`,
loading and building in :mod:`co2twin.scenario`.
"""
from __future__ import annotations

import difflib
import math
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from collections.abc import Iterable, Mapping, Sequence

from pydantic import (
    AfterValidator,
    PrivateAttr,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_serializer,
    model_validator,
)

from models.variables import VARIABLES

from pydantic import ValidationInfo, field_validator

from .supply_schema import PROFILE_PORTS, BatterySpec, BusSpec, ManagerSpec, PVSpec, check_profile

__all__ = [
    "Scenario", "InputSpec", "CsvSpec", "RampSpec", "RecordSpec", "OutputSpec", "LimitSpec",
    "SetEvent", "RampEvent", "ProfileEvent", "ParameterEvent", "PumpEvent", "SupplyDropEvent",
    "PlainFaultEvent", "SensorEvent", "ModelsSpec", "ModelFileSpec", "ComponentSpec",
    "ConnectionSpec", "PLANT_TAGS", "NOT_IN_FILES", "ControllerSpec", "PidSpec", "OnOffSpec",
    "RatioSpec", "OpenLoopSpec", "PythonSpec", "ControlLimits", "GainsSpec", "FeedForwardSpec",
    "CaseSpec", "ObjectiveSpec", "ThresholdSpec", "DisturbanceSpec", "CONTROL_KPIS", "CONTROLLER_TYPES",
    "unknown_key", "keys_at",
    "SupplySpec",
]

MAX_RECORD_BYTES = 4 * 2**30
#: more base steps than this cannot be simulated in any reasonable time
MAX_STEPS = 10**9

_UNIT_SECONDS = {
    "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0,
    "day": 86400.0, "days": 86400.0,
}
_DURATION_PATTERN = (
    r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*("
    + "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True)) + r")\s*$"
)
_DURATION = re.compile(_DURATION_PATTERN)


def _duration(value: Any) -> Any:
    """Seconds from a number or a string such as ``"24 h"``, ``"90 min"``, ``"0.5 s"``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"a duration in seconds or a string like '24 h', '90 min', '1.5 s' "
                f"(units: {', '.join(_UNIT_SECONDS)})"
            )
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


def _number(value: Any) -> Any:
    """Refuse booleans (YAML ``yes``), NaN/infinity and integers too large for a float."""
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    if isinstance(value, int) and abs(value) > 1e300:
        raise ValueError("a number that fits in a 64-bit float")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a finite number")
    return value


def _positive(value: float) -> float:
    if not value > 0:
        raise ValueError("greater than 0")
    return value


def _non_negative(value: float) -> float:
    if not value >= 0:
        raise ValueError("greater than or equal to 0")
    return value


def _at_most_one(value: float) -> float:
    if not value <= 1:
        raise ValueError("less than or equal to 1")
    return value


def _seconds_schema(**bounds: float) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [
        {"type": "number", **bounds},
        {"type": "string", "pattern": _DURATION_PATTERN},
    ], "description": "seconds, or a string such as '24 h', '90 min', '500 ms'"})


Finite = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False)]
Seconds = Annotated[float, BeforeValidator(_number), BeforeValidator(_duration),
                    Field(allow_inf_nan=False), _seconds_schema()]
Positive = Annotated[float, BeforeValidator(_number), BeforeValidator(_duration),
                     Field(gt=0, allow_inf_nan=False), _seconds_schema(exclusiveMinimum=0)]
NonNegative = Annotated[float, BeforeValidator(_number), BeforeValidator(_duration),
                        Field(ge=0, allow_inf_nan=False), _seconds_schema(minimum=0)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: a whole number >= 1 that a 64-bit integer holds (step and record rates)
Every = Annotated[int, Field(ge=1, lt=2**63)]


#: what a ``unit:`` key means, wherever values may carry one
_UNIT_DOC = ("unit of the values given here, if not the signal's own (any compatible unit: "
             "'L/min' for a mL/min signal, 'K' for a degC one); converted to the signal's unit")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RampSpec(_Strict):
    """Linear change ``from`` -> ``to`` starting ``at`` (s from the start), over ``duration`` s."""

    # the file says ``from``; the Python name ``initial`` is not a second spelling of it
    model_config = ConfigDict(populate_by_name=False)

    initial: Finite = Field(alias="from")
    to: Finite
    at: Seconds = 0.0
    duration: NonNegative


class CsvSpec(_Strict):
    """A profile read from a CSV file (path relative to the scenario file)."""

    path: Name
    column: Name
    time_column: Name = "time_s"
    interpolation: Literal["linear", "previous"] = "linear"
    hold: bool = False


class InputSpec(_Strict):
    """Exactly one of ``constant``, ``steps``, ``ramp``, ``csv``; optional ``unit`` of the values."""

    constant: Finite | None = None
    steps: list[tuple[Seconds, Finite]] | None = Field(default=None, min_length=1)
    ramp: RampSpec | None = None
    csv: CsvSpec | None = None
    unit: str | None = Field(default=None, description=_UNIT_DOC)

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"constant": data}
        if not isinstance(data, (Mapping, InputSpec)):
            raise ValueError("a number or a mapping with one of constant, steps, ramp, csv")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> InputSpec:
        given = [k for k in ("constant", "steps", "ramp", "csv") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one of constant, steps, ramp, csv"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self


class _EventBase(_Strict):
    at: NonNegative


class SetEvent(_EventBase):
    type: Literal["set"]
    target: Name
    value: Finite
    unit: str | None = Field(default=None, description=_UNIT_DOC)


class RampEvent(_EventBase):
    type: Literal["ramp"]
    target: Name
    to: Finite
    duration: NonNegative
    unit: str | None = Field(default=None, description=_UNIT_DOC)


class ProfileEvent(_EventBase):
    """Switch an input to a profile whose time 0 is the event time."""

    type: Literal["profile"]
    target: Name
    steps: list[tuple[Seconds, Finite]] | None = Field(default=None, min_length=1)
    csv: CsvSpec | None = None
    unit: str | None = Field(default=None, description=_UNIT_DOC)

    @model_validator(mode="after")
    def _one_profile(self) -> ProfileEvent:
        if (self.steps is None) == (self.csv is None):
            raise ValueError("exactly one of steps, csv")
        return self


class ParameterEvent(_EventBase):
    type: Literal["parameter"]
    target: Name
    value: Finite


class PumpEvent(_EventBase):
    type: Literal["pump_stop", "pump_restart"]
    pump: Literal["anolyte", "catholyte"]


class SupplyDropEvent(_EventBase):
    type: Literal["co2_supply_drop"]
    fraction: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False), BeforeValidator(_number)]


class PlainFaultEvent(_EventBase):
    type: Literal["co2_supply_restore", "power_trip", "power_restore"]


class SensorEvent(_EventBase):
    type: Literal["sensor_drift", "sensor_bias", "sensor_freeze", "sensor_noise", "sensor_clear"]
    target: Name
    rate: Finite = 0.0
    offset: Finite = 0.0
    std: Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_number)] = 0.0


EventSpec = Annotated[
    SetEvent | RampEvent | ProfileEvent | ParameterEvent | PumpEvent | SupplyDropEvent
    | PlainFaultEvent | SensorEvent,
    Field(discriminator="type"),
]


class RecordSpec(_Strict):
    """What to record: ``all`` or a list of names / glob patterns; keep every N-th step."""

    signals: Literal["all"] | list[Name] = "all"
    every: Every = 1


class OutputSpec(_Strict):
    """Where results go (relative to the working directory); format from the suffix if absent."""

    file: Name
    format: Literal["parquet", "csv"] | None = None


class LimitSpec(_Strict):
    """Operating limits of a signal (either may be left open), in ``unit`` or the signal's own."""

    low: Finite | None = None
    high: Finite | None = None
    unit: str | None = Field(default=None, description=_UNIT_DOC)


_KIND = Literal["physics", "nn", "hybrid", "valco2t"]


class ModelFileSpec(_Strict):
    """A ``.keras`` file as one variable's model (path relative to the scenario file)."""

    path: Name
    kind: Literal["nn", "hybrid"] | None = Field(
        default=None, description="nn: the file gives the value; hybrid: a correction on physics "
        "(default: its model card's kind, else nn)")
    inputs: dict[Name, Name] = Field(
        default={}, description="model input -> reactor signal, for inputs not named like one")
    constants: dict[Name, Finite] = Field(default={}, description="model inputs held constant")
    absolute: bool = Field(default=False, description="take abs() of the output, as VALCO2T did")


def _model_file(value: Any) -> Any:
    """A bare ``something.keras`` string is a model file; any other text must be a kind."""
    if isinstance(value, str):
        if value.strip().lower().endswith(".keras"):
            return {"path": value}
        if value not in ("physics", "nn", "hybrid", "valco2t"):
            raise ValueError("physics, nn, hybrid, valco2t or a .keras file")
    return value


ModelChoice = Annotated[_KIND | ModelFileSpec, BeforeValidator(_model_file)]


class ModelsSpec(_Strict):
    """Which model estimates each variable, and what happens outside a model's envelope."""

    default: _KIND = Field(default="hybrid", description="kind for every variable not named")
    envelope: Literal["warn", "clamp", "physics", "stop"] = Field(
        default="warn", description="when a model input leaves its training envelope: warn and "
        "use the model, clamp the inputs, fall back to physics, or stop with an error")
    directory: Name | None = Field(
        default=None, description="folder of trained nn/hybrid models (default: the committed "
        "models/trained); relative to the scenario file")
    valco2t_dir: Name | None = Field(
        default=None, description="folder of the four VALCO2T models (default: the "
        "CO2TWIN_VALCO2T_DIR environment variable, else a shared/valco2t/models folder in or "
        "above the working directory); relative to the scenario file")
    cell_voltage: ModelChoice | None = None
    fe_formate: ModelChoice | None = None
    outlet_co2_fraction: ModelChoice | None = None
    anolyte_ph: ModelChoice | None = None

    def choices(self) -> dict[str, Any]:
        """Variable -> kind or file spec (as a mapping), for the variables named."""
        out = {}
        for name in VARIABLES:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.model_dump() if isinstance(value, ModelFileSpec) else value
        return out


class ComponentSpec(_Strict):
    """A component beside the plant: an FMI 2.0 co-simulation FMU (path relative to the scenario)."""

    type: Literal["fmu"]
    path: Name
    parameters: dict[Name, Finite] = Field(default={}, description="FMU parameter -> value")
    measured: list[Name] = Field(
        default=[], description="inputs that read a sensor and outputs that are sensor readings")


# -- the solar and battery supply (co2twin.supply) ---------------------------------------
def _number_too(schema: dict[str, Any]) -> None:
    """A supply profile, like an input, may be a bare number (a constant): say so in the JSON Schema."""
    schema.setdefault("anyOf", []).insert(0, {"type": "number"})


def _profile(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra=_number_too)


class SupplySpec(_Strict):
    """PV, battery and DC bus feeding the electrolyser's power supply (README, "Running on solar power").

    Each component's parameters as it declares them; profiles like ``inputs:`` (W/m2,
    1, degC, EUR/kWh); the battery's ageing model. With ``irradiance`` the PV reads it
    (plane of array), else it makes a clear-sky day times ``clearness``.
    """

    pv: PVSpec = Field(default_factory=PVSpec, description="PV array (components.pv.PVArray)")
    battery: BatterySpec = Field(default_factory=BatterySpec,
                                 description="battery (components.battery.Battery)")
    ems: ManagerSpec = Field(default_factory=ManagerSpec, description="energy manager: current "
                             "curtailment and grid use (components.dc_bus.EnergyManager)")
    bus: BusSpec = Field(default_factory=BusSpec, description="DC bus: export (components.dc_bus.DCBus)")
    converter_efficiency: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        default=0.95, description="efficiency of the electrolyser's supply, DC bus to cell")
    ageing: Literal["physics", "nn", "hybrid"] = Field(
        default="hybrid", description="battery capacity fade: the seed's physics, a network, or "
        "physics plus a learned residual")
    ageing_directory: Name | None = Field(
        default=None, description="folder of trained battery models (default: the committed "
        "models/trained/battery); relative to the scenario file")
    irradiance: InputSpec | None = _profile("plane-of-array irradiance [W/m2]")
    clearness: InputSpec | None = _profile("cloud transmittance on the clear sky [1] (without irradiance)")
    price: InputSpec | None = _profile("grid energy price [EUR/kWh]")
    ambient_temperature: InputSpec | None = _profile("outdoor air [degC]")
    battery_temperature: InputSpec | None = _profile(
        "air around the battery [degC] (default: ambient_temperature)")

    @field_validator(*PROFILE_PORTS)
    @classmethod
    def _profile_fits(cls, spec: InputSpec | None, info: ValidationInfo) -> InputSpec | None:
        check_profile(str(info.field_name), spec)
        return spec


# -- controllers (components.control) and test cases (co2twin.control) ---------------------
#: numbers (not durations) > 0 and >= 0; bounds as JSON Schema keywords, as Seconds spells them
_PositiveNumber = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False),
                            WithJsonSchema({"type": "number", "exclusiveMinimum": 0}),
                            AfterValidator(_positive)]
_NonNegativeNumber = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False),
                               WithJsonSchema({"type": "number", "minimum": 0}),
                               AfterValidator(_non_negative)]


class ControlLimits(_Strict):
    """Output limits of a controller, in the actuator's unit; ``rate`` in that unit per second."""

    low: Finite | None = None
    high: Finite | None = None
    rate: _PositiveNumber | None = Field(default=None, description="largest change of the output "
                                         "per second")


class GainsSpec(_Strict):
    """PID gains in parallel form: u = kp e + ki integral(e) + kd de/dt."""

    kp: Finite = Field(default=0.0, description="output units per measurement unit")
    ki: Finite = Field(default=0.0, description="output units per measurement unit and second")
    kd: Finite = Field(default=0.0, description="output units per measurement unit per second")


class FeedForwardSpec(_Strict):
    """A measured signal added to a PID's output, times ``gain`` (feed-forward plus PID)."""

    signal: Name
    gain: Finite = 1.0


_Weight = Annotated[float, BeforeValidator(_number), Field(allow_inf_nan=False),
                    WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1}),
                    AfterValidator(_non_negative), AfterValidator(_at_most_one)]


class _ControllerBase(_Strict):
    sample_time: NonNegative = Field(default=0.0, description="time between samples (0: every step)")


class PidSpec(_ControllerBase):
    """PID on a measured signal, driving one actuator (components.control.PID)."""

    type: Literal["pid"]
    measurement: Name = Field(description="measured output read (component.port)")
    setpoint: InputSpec | None = Field(
        default=None, description="set point profile, like an input (default: the test case's set "
        "point of the measurement, or a connection into <name>.setpoint)")
    actuator: Name = Field(description="input driven: a plant input name (current) or component.port; "
                           "another controller's setpoint makes a cascade")
    gains: GainsSpec = GainsSpec()
    setpoint_weight: _Weight = Field(default=1.0, description="weight b of the set point in P")
    derivative_weight: _Weight = Field(default=0.0, description="weight c of the set point in D")
    derivative_filter: NonNegative = Field(default=0.0, description="derivative low-pass time constant")
    anti_windup: Literal["back_calculation", "clamping", "none"] = "back_calculation"
    tracking_time: NonNegative | None = Field(
        default=None, description="back-calculation time constant (default sqrt(Ti Td), or Ti)")
    limits: ControlLimits = ControlLimits()
    bias: Finite = Field(default=0.0, description="output at zero error with an empty integral")
    feedforward: FeedForwardSpec | None = None
    manual: InputSpec | None = Field(
        default=None, description="mode profile: 1 manual (output = manual_output), 0 automatic")
    manual_output: InputSpec | None = None


class OnOffSpec(_ControllerBase):
    """On/off with hysteresis (components.control.OnOff)."""

    type: Literal["onoff"]
    measurement: Name
    setpoint: InputSpec | None = None
    actuator: Name
    hysteresis: _NonNegativeNumber = Field(
        default=0.0, description="band width around the set point, in the measurement's unit")
    # not ``on``/``off``: YAML 1.1 reads those keys as booleans
    on_value: Finite = Field(description="output while on")
    off_value: Finite = Field(description="output while off")
    action: Literal["on_below", "on_above"] = "on_below"


class RatioSpec(_ControllerBase):
    """``actuator = ratio * measurement + bias`` (components.control.Ratio)."""

    type: Literal["ratio"]
    measurement: Name
    actuator: Name
    ratio: Finite = Field(description="actuator units per measurement unit")
    bias: Finite = 0.0
    limits: ControlLimits = ControlLimits()


class OpenLoopSpec(_Strict):
    """A planned profile sent to an actuator, no feedback (components.control.OpenLoop)."""

    type: Literal["open_loop"]
    actuator: Name
    output: InputSpec


_JSON = Annotated[Any, WithJsonSchema({"description": "any YAML value: number, text, list, mapping"})]


class PythonSpec(_ControllerBase):
    """A user's class ``module:Class`` (module beside the scenario file or importable), constructed
    with ``parameters`` and called as ``step(t, measurements) -> actions`` at each sample."""

    type: Literal["python"]
    python: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")] = Field(
        description="module:Class")
    measurements: list[Name] = Field(default=[], description="measured outputs it reads")
    actuators: list[Name] = Field(min_length=1, description="inputs it drives")
    setpoints: dict[Name, InputSpec] = Field(
        default={}, description="set point profiles by measured signal (seen as <signal>.setpoint)")
    parameters: dict[Name, _JSON] = Field(default={}, description="keyword arguments of the class")
    #: a class or an object given from Python instead of ``python`` (co2twin.control.run_case)
    _factory: Any = PrivateAttr(default=None)


ControllerSpec = Annotated[
    PidSpec | OnOffSpec | RatioSpec | OpenLoopSpec | PythonSpec, Field(discriminator="type")]
#: the ``type`` of each kind of controller (pydantic puts it in error locations)
CONTROLLER_TYPES = ("pid", "onoff", "ratio", "open_loop", "python")

#: the KPIs every controller of a test case is scored by -> (unit, which way is better, meaning)
CONTROL_KPIS: dict[str, tuple[str, str, str]] = {
    "production_kg": ("kg", "higher", "formic acid made (formate as HCOOH)"),
    "specific_energy_kWh_per_kg": ("kWh/kg", "lower", "electrical energy per kg of HCOOH"),
    "energy_kWh": ("kWh", "lower", "electrical energy"),
    "energy_cost": ("EUR", "lower", "energy of each step times the case's price per kWh (EUR/kWh)"),
    "grid_cost": ("EUR", "lower", "grid imports paid less exports earned (with a supply: section)"),
    "solar_fraction": ("1", "higher", "share of the electrolyser's energy that came from PV, directly "
                       "or through the battery (with a supply: section)"),
    "co2_utilisation_pct": ("%", "higher", "fresh CO2 fed that became formate"),
    "mean_fe_formate": ("1", "higher", "charge-weighted faradaic efficiency to formate"),
    "time_outside_s": ("s", "lower", "time outside the case's constraints, summed over them"),
    "integral_outside": ("unit*s", "lower", "integral of the violation of each constraint"),
    "tracking_iae": ("unit*s", "lower", "integral of |set point - value|, per set point"),
    "tracking_ise": ("unit^2*s", "lower", "integral of (set point - value)^2, per set point"),
    "overshoot_pct": ("%", "lower", "largest overshoot after a set-point step, % of the step"),
    "settling_time_s": ("s", "lower", "longest time after a set-point step until the value stays "
                        "within 5 % of the step (until the next step or disturbance; that whole "
                        "window if it never does)"),
    "actuator_travel": ("unit", "lower", "total variation of each actuator's command"),
    "compute_ms_per_h": ("ms/h", "lower", "controller computation (wall clock) per simulated hour"),
}
#: a KPI's name (the keys of CONTROL_KPIS, spelled out for the type checker and the JSON Schema)
KpiName = Literal[
    "production_kg", "specific_energy_kWh_per_kg", "energy_kWh", "energy_cost", "co2_utilisation_pct",
    "mean_fe_formate", "time_outside_s", "integral_outside", "tracking_iae", "tracking_ise",
    "overshoot_pct", "settling_time_s", "actuator_travel", "compute_ms_per_h", "grid_cost",
    "solar_fraction",
]


class ThresholdSpec(_Strict):
    """Pass/fail bound of a KPI: ``min`` and/or ``max``."""

    min: Finite | None = None
    max: Finite | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> ThresholdSpec:
        if self.min is None and self.max is None:
            raise ValueError("at least one of min, max")
        return self


class ObjectiveSpec(_Strict):
    """What the controller is asked to do, and the KPI that says how well it did."""

    description: str
    minimise: KpiName | None = None
    maximise: KpiName | None = None

    @model_validator(mode="after")
    def _one_sense(self) -> ObjectiveSpec:
        if (self.minimise is None) == (self.maximise is None):
            raise ValueError("exactly one of minimise, maximise")
        return self


class DisturbanceSpec(_Strict):
    """A disturbance of the case: which scenario inputs and events (by index) make it."""

    description: str
    inputs: list[Name] = []
    events: list[Annotated[int, Field(ge=0)]] = []


class CaseSpec(_Strict):
    """A control test case (co2twin.control): the scenario around it is the plant and its
    disturbances; this says what a controller may read and move, and how it is scored."""

    objective: ObjectiveSpec
    setpoints: dict[Name, InputSpec] = Field(
        default={}, description="planned set points by measured signal, known in advance")
    constraints: dict[Name, LimitSpec] = Field(default={}, description="limits by signal")
    disturbances: dict[Name, DisturbanceSpec] = {}
    measurements: list[Name] = Field(min_length=1, description="signals a controller may read")
    actuators: list[Name] = Field(min_length=1, description="inputs a controller may drive")
    price: InputSpec | None = Field(
        default=None, description="electricity price per kWh, known a day ahead (energy_cost)")
    kpis: dict[KpiName, ThresholdSpec] = Field(min_length=1, description="pass/fail thresholds")
    controllers: dict[Name, ControllerSpec] = Field(
        min_length=1, description="controllers shipped with the case, by name")
    expected: dict[Name, Literal["pass", "fail"]] = Field(
        default={}, description="the verdict each shipped controller is known to get")


class ConnectionSpec(_Strict):
    """``[from, to]`` or ``[from, to, delayed]``: an output ``component.port`` feeds an input."""

    source: Name
    target: Name
    delayed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, ConnectionSpec):
            return data
        if (isinstance(data, (list, tuple)) and len(data) in (2, 3)
                and (len(data) == 2 or data[2] == "delayed")):
            return {"source": data[0], "target": data[1], "delayed": len(data) == 3}
        raise ValueError("a list [from, to] or [from, to, delayed] of component.port names")

    @model_serializer
    def _as_list(self) -> list[str]:
        return [self.source, self.target] + (["delayed"] if self.delayed else [])


_CONNECTION_SCHEMA = WithJsonSchema({
    "type": "array", "minItems": 2, "maxItems": 3,
    "prefixItems": [{"type": "string", "minLength": 1}, {"type": "string", "minLength": 1},
                    {"const": "delayed"}],
    "items": False,
    "description": "[from, to] or [from, to, delayed]: output component.port -> input "
                   "component.port; delayed carries the value of the previous step",
})


def _plant_tag(value: Any) -> str:
    return "off" if value is False else "overrides"


#: parameter overrides of the standard plant, or ``false`` for a scenario without it
PlantSpec = Annotated[
    Annotated[Literal[False], Tag("off")] | Annotated[dict[Name, dict[Name, Finite]], Tag("overrides")],
    Discriminator(_plant_tag),
]
#: the tags :data:`PlantSpec` puts in error locations (``plant.overrides.reactor``)
PLANT_TAGS = ("off", "overrides")


class Scenario(_Strict):
    """A validated scenario. Build it with :func:`load_scenario` or :func:`parse_scenario`."""

    name: Name
    description: str = ""
    start: Seconds = 0.0
    duration: Positive
    step: Positive
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    plant: PlantSpec = Field(
        default={}, description="parameter overrides of the standard plant's components, or "
        "false for no plant (the scenario's components only)")
    components: dict[Name, ComponentSpec] = Field(
        default={}, description="components beside the plant, by name (the prefix of their "
        "signals: name.port)")
    connections: list[Annotated[ConnectionSpec, _CONNECTION_SCHEMA]] = Field(
        default=[], description="wiring of the components, added to the plant's own")
    rates: dict[Name, Every] = {}
    inputs: dict[Name, InputSpec] = {}
    events: list[EventSpec] = []
    record: RecordSpec = RecordSpec()
    output: OutputSpec | None = None
    limits: dict[Name, LimitSpec] = {}
    models: ModelsSpec = ModelsSpec()
    controllers: dict[Name, ControllerSpec] = Field(
        default={}, description="controllers by name (the prefix of their signals); each reads a "
        "measured signal and drives an input that nothing else drives")
    case: CaseSpec | None = Field(default=None, description="a control test case (co2twin control)")
    supply: SupplySpec | None = Field(
        default=None, description="PV, battery and DC bus feeding the power supply (co2twin.supply)")

    #: directory that relative CSV paths are read from (not part of the file)
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<scenario>", exclude=True)
    #: the surrogates validation loaded, for the first build to take (co2twin.surrogates)
    _loaded_models: list[Any] = PrivateAttr(default_factory=list)

    @property
    def has_plant(self) -> bool:
        return self.plant is not False

    @property
    def steps(self) -> int:
        return round(self.duration / self.step)

    @property
    def end(self) -> float:
        return self.start + self.duration



#: fields of :class:`Scenario` that come from the loader, not from the file
NOT_IN_FILES = ("base_dir", "source")


# -- unknown keys: what the message says was expected -------------------------------------------
def unknown_key(where: str, key: Any, expected: Iterable[str] | None) -> str:
    """The one message for a key a mapping does not take: ``where: unknown key; expected one
    of: a, b, c (did you mean 'b'?)``. ``expected``: the keys taken there (None: not known)."""
    names = list(expected or ())
    if not names:
        return f"{where}: unknown key"
    near = difflib.get_close_matches(str(key), names, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{where}: unknown key; expected one of: {', '.join(names)}{hint}"


def keys_at(model: Any, loc: Sequence[Any]) -> list[str] | None:
    """The keys the pydantic model found along ``loc`` from ``model`` takes, as a file spells
    them (aliases), or None when ``loc`` leads to no model.

    ``loc`` is a pydantic error's location without its last part (the unknown key): field
    names, mapping keys and list indexes, and the tags pydantic puts in for a union
    (``events[0].set``, ``plant.overrides``, ``models.x.ModelFileSpec``).
    """
    tp: Any = model
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    while True:
        tp, tag = _stripped(tp)
        if get_origin(tp) in (Union, types.UnionType):
            tp = _member(get_args(tp), parts)
            if tp is None:
                return None
            continue
        if not parts:
            break
        part = parts.pop(0)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for name, f in tp.model_fields.items()
                          if part in (name, f.alias)), None)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) in (dict, Mapping):
            tp = get_args(tp)[1]
        elif get_origin(tp) in (list, Sequence) and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            return None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return None


def _stripped(tp: Any) -> tuple[Any, str | None]:
    """``tp`` without ``Annotated``, and the union tag its metadata gives, if any."""
    tag = None
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tag = next((m.tag for m in args[1:] if isinstance(m, Tag)), tag)
        tp = args[0]
    return tp, tag


def _member(members: Sequence[Any], parts: list[Any]) -> Any:
    """The member of a union ``parts`` goes on in: the one its first part names (a tag, a
    ``type`` literal or a class name; that part is then taken), else the only one that is a
    model or a mapping. None when that does not decide."""
    flat: list[Any] = []
    for member in members:  # a union inside a union (``ModelChoice | None``) counts as one
        inner = _stripped(member)[0]
        flat += get_args(inner) if get_origin(inner) in (Union, types.UnionType) else [member]
    members = flat
    for member in members:
        inner, tag = _stripped(member)
        names = {tag, getattr(inner, "__name__", None)}
        if isinstance(inner, type) and issubclass(inner, BaseModel) and "type" in inner.model_fields:
            names.update(get_args(inner.model_fields["type"].annotation))
        if parts and isinstance(parts[0], str) and parts[0] in names:
            parts.pop(0)
            return member
    nested = [m for m in members
              if (isinstance(_stripped(m)[0], type) and issubclass(_stripped(m)[0], BaseModel))
              or get_origin(_stripped(m)[0]) in (dict, Mapping)]
    return nested[0] if len(nested) == 1 else None

