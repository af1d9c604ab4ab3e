"""The scenario file's schema: what each key means, its type and its bounds.

Pydantic models only; checks that need the plant live in :mod:`co2twin.scenario_checks`,
loading and building in :mod:`co2twin.scenario`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from collections.abc import Mapping

from pydantic import (
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

__all__ = [
    "Scenario", "InputSpec", "CsvSpec", "RampSpec", "RecordSpec", "OutputSpec", "LimitSpec",
    "SetEvent", "RampEvent", "ProfileEvent", "ParameterEvent", "PumpEvent", "SupplyDropEvent",
    "PlainFaultEvent", "SensorEvent", "ModelsSpec", "ModelFileSpec", "ComponentSpec",
    "ConnectionSpec", "PLANT_TAGS", "NOT_IN_FILES",
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
    """Exactly one of ``constant``, ``steps``, ``ramp``, ``csv``; optional ``unit`` check."""

    constant: Finite | None = None
    steps: list[tuple[Seconds, Finite]] | None = Field(default=None, min_length=1)
    ramp: RampSpec | None = None
    csv: CsvSpec | None = None
    unit: str | None = None

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
    unit: str | None = None


class RampEvent(_EventBase):
    type: Literal["ramp"]
    target: Name
    to: Finite
    duration: NonNegative


class ProfileEvent(_EventBase):
    """Switch an input to a profile whose time 0 is the event time."""

    type: Literal["profile"]
    target: Name
    steps: list[tuple[Seconds, Finite]] | None = Field(default=None, min_length=1)
    csv: CsvSpec | None = None

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
    low: Finite | None = None
    high: Finite | None = None


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
