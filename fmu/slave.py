"""The whole co2twin plant as a PythonFMU co-simulation slave (FMI 2.0).

The slave wraps :func:`co2twin.scenario.build` of the scenario packed in the FMU's
resources (``scenario.yaml``), with the trained models of the same resources folder.
TensorFlow is never imported: surrogates run on NumPy.

**The supply.** A packed scenario with a ``supply:`` section (``co2twin fmu build --supply``)
adds the inputs :data:`SUPPLY_INPUTS` (irradiance, price) and the outputs
:data:`SUPPLY_OUTPUT_SIGNALS` after every other variable (the plant's value references stay);
``current`` then drives the energy manager's request (co2twin.supply.CURRENT_REQUEST).

**Inputs** follow the scenario until the host changes them: a value that differs from the
last one applied is held from the next ``doStep`` on (zero-order hold, as
``Simulation.set``). **Parameters** (electrode area, internal step, seed, model choices)
are read when initialisation mode is left; changing them rebuilds the simulation.

**Communication steps.** The simulation runs on an internal grid ``start + k * step_size
/ m`` with ``m = 1`` at first. A ``doStep(t, h)`` whose end ``t + h`` lies on the grid
advances the engine to it (``Simulation.advance_to``): at the grid points the results are
exactly ``co2twin run``'s. An end between grid points refines the grid once and for all to
``step_size / m`` with the smallest ``m`` (a multiple of the one before, so every earlier
grid point and scheduled event stays on the grid) that puts ``t + h`` on it: the
simulation's state moves into the same scenario built at that step, components' rates
scaled so that each keeps its period in seconds, and the FMU is from then on
``co2twin run`` at the finer step. A partial step is thus integrated by the components'
own update over whole steps of the finer grid, never interpolated. ``m`` is at most
``1000 * step_size / min(step_size, h)`` and the internal step at least 1 µs; an ``h``
needing more (an irrational multiple of the step) is refused with fmi2Error, nothing
changed.

**Statuses.** PythonFMU turns any Python exception into fmi2Fatal and drops the instance,
so nothing here raises into it: a refused call is logged with the status it must return
(fmi2Error, fmi2Warning) and the C loader (``fmu/loader.c``) returns the most severe
status logged during the call. ``do_step`` returns False only when the simulation failed
and cannot continue (the loader then answers fmi2Error and ``fmi2Terminated`` true until
``fmi2Reset`` or ``fmi2SetFMUstate``). An input out of its port's bounds follows
``on_bad_input``: ``error`` (default) refuses the whole ``fmi2SetReal`` call with
fmi2Error; ``clamp`` sets the nearest bound, returns fmi2Warning, counts it in the output
``clamped_inputs`` and records it in the simulation's event log. Non-finite values never
get here (the loader refuses them).

**FMU state.** ``fmi2GetFMUstate`` takes a :class:`FmuState`; its bytes (``fmi2Serialize
FMUstate``) are a header line (magic, the FMU's GUID, the payload's length and CRC-32, all
checked by the loader before anything reaches Python) and the payload, a pickle that only
classes of this FMU's packages, NumPy and a few builtins may appear in.
A state restored into another instance of the same FMU (in another process too) continues
bit for bit.
"""
from __future__ import annotations

import io
import json
import math
import pickle
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pythonfmu import Fmi2Causality, Fmi2Slave, Fmi2Variability, Integer, Real, String
from pythonfmu.enums import Fmi2Initial, Fmi2Status

from components.dc_bus import FLOWS
from components.plant import INPUTS
from components.reactor import Reactor
from co2twin.scenario import build, load_scenario
from co2twin.supply import CURRENT_REQUEST
from cosim import Simulation
from cosim.errors import CosimError, FMUError

__all__ = [
    "BUILD_INFO", "INPUT_NAMES", "LOG_CATEGORIES", "ON_BAD_INPUT", "OUTPUT_SIGNALS", "SCENARIO_FILE",
    "STATE_MAGIC", "SUPPLY_INPUTS", "SUPPLY_OUTPUT_SIGNALS", "Co2Twin", "FmuState", "FmuVariable",
    "variables",
]

#: name of the scenario file in the FMU's resources
SCENARIO_FILE = "scenario.yaml"
#: build record in the FMU's resources (fmu/build.py writes it; ``guid`` among its keys)
BUILD_INFO = "co2twin_build.json"
#: first word of a serialised state's header line (fmu/loader.c checks the line too)
STATE_MAGIC = "co2twin-fmu-state/1"
#: what an out-of-bounds input does (parameter ``on_bad_input``)
ON_BAD_INPUT = ("error", "clamp")
#: internal steps per communication step at most, when the grid is refined
MAX_REFINEMENT = 1000
#: the finest internal step (s), as the parameter step_size's lower bound
MIN_STEP = 1e-6

#: log categories the FMU declares and uses (the loader gives each status its own)
LOG_CATEGORIES: dict[str, str] = {
    "logEvents": "what the FMU did on its own at fmi2OK: where it runs from, rebuilds, "
                 "internal step refinements",
    "logStatusWarning": "why a call returned fmi2Warning (an input clamped to its bounds)",
    "logStatusError": "why a call returned fmi2Error (a value refused, a failed step)",
    "logStatusFatal": "why a call returned fmi2Fatal (an unexpected exception in the FMU)",
}

#: FMU inputs: the plant's short input names (see ``components.plant.INPUTS``)
INPUT_NAMES: tuple[str, ...] = (
    "current", "gas_flow", "co2_fraction", "anolyte_flow", "catholyte_flow",
    "anolyte_conc", "catholyte_conc", "humidity", "ambient_temperature",
)

#: FMU outputs: simulation signals, exposed under the same names
OUTPUT_SIGNALS: tuple[str, ...] = (
    "power.current",
    "reactor.cell_voltage",
    "reactor.current_density",
    "reactor.fe_formate",
    "reactor.formate_production",
    "reactor.formate_rate",
    "reactor.h2_rate",
    "reactor.outlet_co2_fraction",
    "reactor.anolyte_ph",
    "reactor.cell_temperature",
    "reactor.power",
    "reactor.energy",
    "reactor.specific_energy",
    "reactor.energy_per_kg",
    "reactor.single_pass_conversion",
    "separation.tank_formate_conc",
    "separation.tank_formic_acid",
)

#: FMU inputs added when the packed scenario has a ``supply:`` section (``co2twin fmu build
#: --supply``): name -> the signal it drives. ``current`` then asks the energy manager
#: (co2twin.supply.CURRENT_REQUEST), which curtails it to what PV, battery and grid carry.
SUPPLY_INPUTS: dict[str, str] = {"irradiance": "pv.irradiance", "price": "ems.price"}

#: FMU outputs added with the supply: state of charge, capacity, grid import, every flow of
#: the DC bus (W) and the running totals that close its and the battery's energy balances
SUPPLY_OUTPUT_SIGNALS: tuple[str, ...] = (
    "battery.soc", "battery.capacity", "battery.state_of_health", "battery.power", "battery.voltage",
    "battery.temperature", "battery.equivalent_cycles", "battery.stored_energy", "battery.energy_in",
    "battery.energy_out", "battery.losses", "battery.fade_energy",
    "pv.power", "pv.poa_irradiance", "ems.current_setpoint", "ems.curtailed", "ems.price",
    "bus.load", "bus.grid_import", "bus.shortfall", *(f"bus.{name}" for name in FLOWS),
    "bus.pv_energy", "bus.load_energy", "bus.grid_energy", "bus.cost",
)

#: model-choice String parameters (``models.<variable>``)
MODEL_VARIABLES: tuple[str, ...] = ("cell_voltage", "fe_formate", "outlet_co2_fraction", "anolyte_ph")
MODEL_KINDS = ("physics", "nn", "hybrid", "valco2t")

_FIXED = ("parameter {name} is fixed: it can be set only before fmi2ExitInitializationMode "
          "(or after fmi2Reset)")

#: Real parameters: name -> (attribute, lower, upper, unit, description)
_REAL_PARAMETERS: dict[str, tuple[str, float, float, str | None, str]] = {
    "reactor.area_cm2": ("_area", 1e-3, 1e6, "cm2", "cathode (electrode) area"),
    "step_size": ("_step", MIN_STEP, 1e6, "s", "internal simulation step (refined when a "
                  "communication point falls between its grid points)"),
    "seed": ("_seed", 0.0, 2.0**53, None, "seed of random effects (sensor noise)"),
}


@dataclass(frozen=True)
class FmuVariable:
    """One FMU variable as build.py needs it for the model description."""

    name: str
    causality: str
    unit: str | None
    description: str
    lower: float | None = None
    upper: float | None = None


def _load_scenario(resources: str | None) -> Any:
    """The packed scenario, its models taken from the same resources folder.

    Without resources (a source tree) the package's default scenario and models.
    """
    candidates = []
    if resources:
        candidates.append(Path(resources) / SCENARIO_FILE)
    candidates.append(Path(__file__).resolve().parent / "default_scenario.yaml")
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise FMUError(f"{candidates[0]}: scenario file missing from the FMU resources")
    sc = load_scenario(path)
    trained = Path(resources) / "models" / "trained" if resources else None
    if sc.models.directory is None and trained is not None and trained.is_dir():
        # the instance's own trained models, never those of wherever `models` was imported from
        data = sc.model_dump(by_alias=True)
        data["models"]["directory"] = str(trained)
        sc = type(sc).model_validate({**data, "base_dir": sc.base_dir, "source": sc.source})
    return sc


def _finite_bound(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _input_signals(scenario: Any) -> dict[str, str]:
    """FMU input name -> the signal it drives (the supply's too, when the scenario has one)."""
    signals = {n: INPUTS[n] for n in INPUT_NAMES}
    if scenario.supply is not None:
        signals["current"] = CURRENT_REQUEST
        signals.update(SUPPLY_INPUTS)
    return signals


def _input_variable(sim: Simulation, name: str, signal: str) -> FmuVariable:
    port = sim.port(signal)
    return FmuVariable(name, "input", port.unit, port.description,
                       _finite_bound(port.lower), _finite_bound(port.upper))


def variables(scenario: Any) -> list[FmuVariable]:
    """Every FMU variable with unit, bounds and description, in value-reference order.

    A scenario with a supply adds :data:`SUPPLY_INPUTS` and :data:`SUPPLY_OUTPUT_SIGNALS`
    last, so the plant's variables keep their value references.
    """
    sim = build(scenario)
    signals = _input_signals(scenario)
    out = [_input_variable(sim, n, signals[n]) for n in INPUT_NAMES]
    out += [FmuVariable(s, "output", sim.unit(s), sim.port(s).description) for s in OUTPUT_SIGNALS]
    out.append(FmuVariable("clamped_inputs", "output", None,
                           "input values clamped to their bounds so far (on_bad_input = clamp)"))
    out += [FmuVariable(name, "parameter", unit, text, low, high)
            for name, (_, low, high, unit, text) in _REAL_PARAMETERS.items()]
    out += [FmuVariable(f"models.{v}", "parameter", None,
                        f"model estimating {v}: physics, nn, hybrid or valco2t")
            for v in MODEL_VARIABLES]
    out.append(FmuVariable("on_bad_input", "parameter", None,
                           "an input outside its bounds: error (refused, fmi2Error) or clamp "
                           "(nearest bound, fmi2Warning, counted in clamped_inputs)"))
    if scenario.supply is not None:
        out += [_input_variable(sim, n, signals[n]) for n in SUPPLY_INPUTS]
        out += [FmuVariable(s, "output", sim.unit(s), sim.port(s).description)
                for s in SUPPLY_OUTPUT_SIGNALS]
    return out


# -- FMU state --------------------------------------------------------------------------------
#: top-level modules whose classes may appear in a serialised state, and single builtins
_STATE_MODULES = ("cosim", "components", "models", "co2twin", "fmu", "numpy")
_STATE_GLOBALS = {("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
                  ("builtins", "slice"), ("collections", "OrderedDict"), ("copyreg", "_reconstructor"),
                  ("builtins", "object")}


class _StateUnpickler(pickle.Unpickler):
    """Unpickles only what a state of this FMU holds (no code from elsewhere runs)."""

    def find_class(self, module: str, name: str) -> Any:
        if module.partition(".")[0] in _STATE_MODULES or (module, name) in _STATE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a co2twin FMU state")


@dataclass
class FmuState:
    """An FMU state (``fmi2GetFMUstate``): the simulation's checkpoint and the slave's own.

    ``problem`` is set instead of ``data`` for bytes that are not a usable state;
    ``Co2Twin._set_fmu_state`` refuses it with fmi2Error.
    """

    guid: str
    data: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    _bytes: bytes | None = field(default=None, repr=False)

    def to_bytes(self) -> bytes:
        """``<magic> <guid> <length> <crc32>\n`` then the payload; ``b""`` if unpicklable."""
        if self._bytes is None:
            try:
                payload = pickle.dumps(self.data, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - b"" makes the loader report fmi2Error
                return b""
            head = f"{STATE_MAGIC} {self.guid} {len(payload)} {zlib.crc32(payload):08x}\n"
            self._bytes = head.encode() + payload
        return self._bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> FmuState:
        """The state in ``data``; never raises (a bad state comes back with ``problem`` set)."""
        data = bytes(data)
        head, newline, payload = data.partition(b"\n")
        words = head.decode("ascii", "replace").split(" ")
        if not newline or len(words) != 4 or words[0] != STATE_MAGIC:
            return cls("", problem=f"expected bytes starting {STATE_MAGIC!r}, the FMU's GUID, the "
                                   f"length and CRC-32 of the payload, found {data[:60]!r}")
        guid, length, crc = words[1:]
        if length != str(len(payload)) or crc != f"{zlib.crc32(payload):08x}":
            return cls(guid, problem=f"expected {length} bytes of payload with CRC-32 {crc}, found "
                                     f"{len(payload)} with {zlib.crc32(payload):08x} (truncated or altered)")
        try:
            loaded = _StateUnpickler(io.BytesIO(payload)).load()
        except Exception as exc:  # noqa: BLE001 - never raise into PythonFMU
            return cls(guid, problem=f"cannot read the state: {exc}")
        if not isinstance(loaded, dict):
            return cls(guid, problem=f"expected a mapping in the state, found {type(loaded).__name__}")
        return cls(guid, loaded)


def _denominator(x: float, tolerance: float, limit: int) -> int | None:
    """Smallest ``q <= limit`` among the continued-fraction convergents ``p/q`` of ``x`` with
    ``|x - p/q| <= tolerance``, or None."""
    p0, p1, q0, q1 = 0, 1, 1, 0
    r = x
    while True:
        a = math.floor(r)
        p0, p1 = p1, a * p1 + p0
        q0, q1 = q1, a * q1 + q0
        if q1 > limit:
            return None
        if abs(x - p1 / q1) <= tolerance:
            return q1
        frac = r - a
        if frac <= 1e-300:  # exact (or beyond what a float can say)
            return None
        r = 1.0 / frac


class Co2Twin(Fmi2Slave):
    """co2twin plant: feed, flow cell, separation and power supply as one FMU."""

    author = "co2twin"
    description = ("Digital twin of a CO2-to-formic-acid electroreduction pilot plant. Runs on "
                   "linux64 (x86_64) with a shared CPython library of the minor version it was "
                   "built with; see documentation/index.html")
    version = "0.1.0"
    log_categories = LOG_CATEGORIES

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guid = _guid(self.resources)
        self._scenario = _load_scenario(self.resources)
        sc = self._scenario
        self._area = float(sc.plant.get("reactor", {}).get("area_cm2", _default_area()))
        self._step = float(sc.step)
        self._seed = float(sc.seed)
        self._models = {v: _choice_text(getattr(sc.models, v), sc.models.default)
                        for v in MODEL_VARIABLES}
        self._models_packed = dict(self._models)
        self._start_time = float(sc.start)
        self._divisions = 1
        self._on_bad_input = "error"
        self._clamped = 0
        self._last_clamp: dict[str, float] = {}  # input -> the value last clamped (event log once)
        self._broken: str | None = None
        self._running = False  # past fmi2ExitInitializationMode: fixed parameters stay
        self._built_with: tuple[Any, ...] | None = None
        self._sim: Simulation  # assigned by _build(), which also initialises it
        #: FMU input -> the signal it drives (the supply's inputs when the scenario has one)
        self._signals = _input_signals(sc)
        self._build()
        self._inputs = {n: float(self._sim.get(signal)) for n, signal in self._signals.items()}
        self._applied = dict(self._inputs)

        for n in INPUT_NAMES:
            self.register_variable(Real(
                n, causality=Fmi2Causality.input, variability=Fmi2Variability.continuous,
                getter=(lambda n=n: self._inputs[n]), setter=(lambda v, n=n: self._set_reals({n: v})),
            ), nested=False)
        for s in OUTPUT_SIGNALS:
            self.register_variable(Real(
                s, causality=Fmi2Causality.output, variability=Fmi2Variability.continuous,
                getter=(lambda s=s: float(self._sim.get(s))),
            ), nested=False)
        self.register_variable(Integer(
            "clamped_inputs", causality=Fmi2Causality.output, variability=Fmi2Variability.discrete,
            getter=lambda: self._clamped,
        ), nested=False)
        for name, (attr, *_) in _REAL_PARAMETERS.items():
            self.register_variable(Real(
                name, causality=Fmi2Causality.parameter,
                variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
                getter=(lambda attr=attr: getattr(self, attr)),
                setter=(lambda v, name=name: self._set_reals({name: v})),
            ), nested=False)
        for v in MODEL_VARIABLES:
            self.register_variable(String(
                f"models.{v}", causality=Fmi2Causality.parameter,
                variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
                getter=(lambda v=v: self._models[v]),
                setter=(lambda value, v=v: self._set_strings({f"models.{v}": value})),
            ), nested=False)
        self.register_variable(String(
            "on_bad_input", causality=Fmi2Causality.parameter,
            variability=Fmi2Variability.tunable, initial=Fmi2Initial.exact,
            getter=lambda: self._on_bad_input,
            setter=lambda value: self._set_strings({"on_bad_input": value}),
        ), nested=False)
        if sc.supply is not None:  # last, so the plant's variables keep their value references
            self._register_supply()
        self._event(f"instance {self.instance_name}: scenario {sc.source}, models from "
                    f"{sc.models.directory or 'the models package'}; {_origins()}")

    def _register_supply(self) -> None:
        """The supply's inputs (:data:`SUPPLY_INPUTS`) and outputs (:data:`SUPPLY_OUTPUT_SIGNALS`)."""
        for n in SUPPLY_INPUTS:
            self.register_variable(Real(
                n, causality=Fmi2Causality.input, variability=Fmi2Variability.continuous,
                getter=(lambda n=n: self._inputs[n]), setter=(lambda v, n=n: self._set_reals({n: v})),
            ), nested=False)
        for s in SUPPLY_OUTPUT_SIGNALS:
            self.register_variable(Real(
                s, causality=Fmi2Causality.output, variability=Fmi2Variability.continuous,
                getter=(lambda s=s: float(self._sim.get(s))),
            ), nested=False)

    # -- logging: the status decides the category, and the loader the returned status --------
    def _event(self, msg: str) -> None:
        self.log(msg, Fmi2Status.ok, "logEvents")

    def _warn(self, msg: str) -> None:
        self.log(msg, Fmi2Status.warning, "logStatusWarning")

    def _error(self, msg: str) -> None:
        self.log(msg, Fmi2Status.error, "logStatusError")

    # -- building -------------------------------------------------------------------------------
    def _key(self) -> tuple[Any, ...]:
        return (self._area, self._step, self._seed, tuple(sorted(self._models.items())),
                self._start_time, self._divisions)

    def _build(self, inputs: dict[str, float] | None = None) -> None:
        """(Re)build and initialise the simulation from the scenario and the parameters.

        ``inputs``: inputs held constant from the start instead of the scenario's. The
        internal step is ``step_size / divisions``; rates scale with ``divisions``.
        """
        sc = self._scenario
        plant = {k: dict(v) for k, v in sc.plant.items()}
        plant.setdefault("reactor", {})["area_cm2"] = self._area
        changed = {v: c for v, c in self._models.items() if c != self._models_packed[v]}
        models = sc.models
        if changed:
            data = sc.models.model_dump(by_alias=True)
            data.update(changed)
            models = type(sc.models).model_validate(data)
        step = self._step / self._divisions
        duration = max(sc.duration, self._step)
        scenario = sc.model_copy(update={
            "plant": plant, "step": step, "seed": int(self._seed), "models": models,
            "start": self._start_time, "duration": duration,
            "rates": {name: every * self._divisions for name, every in sc.rates.items()},
        })
        try:
            sim = build(scenario)
            sim.record(["power.current"])
            for name, value in (inputs or {}).items():
                sim.set(self._signals[name], value)
            sim.initialize()
        except CosimError as exc:
            raise FMUError(f"{sc.source}: cannot build the simulation: {exc}") from None
        self._sim = sim
        self._built_with = self._key()

    def _refine(self, divisions: int, target: float) -> None:
        """Move the simulation onto the grid ``step_size / divisions`` (see the module docstring)."""
        old = self._sim
        state = old.get_state()
        factor = divisions // self._divisions
        self._divisions = divisions
        self._build()
        new = self._sim
        new.event_log[:] = old.event_log
        new.set_state({**state, "k": state["k"] * factor})
        self._event(f"t={new.time:g} s: internal step {old.step_size:g} s -> {new.step_size:g} s, "
                    f"so that the communication point {target!r} s lies on the internal grid")

    # -- values in ----------------------------------------------------------------------------------
    def _check_input(self, name: str, value: float) -> tuple[float | None, str]:
        """(value to set or None if refused, message): bounds and ``on_bad_input``."""
        port = self._sim.port(self._signals[name])
        if port.contains(value):
            return value, ""
        if not math.isfinite(value) or self._on_bad_input != "clamp":
            return None, (f"input {name}: expected a finite value in {port.bounds_text()}, found "
                          f"{value!r}; refused (on_bad_input = error), keeping {self._inputs[name]!r}")
        clamped = min(max(value, port.lower), port.upper)
        return clamped, (f"input {name}: {value!r} is outside {port.bounds_text()}; clamped to "
                         f"{clamped!r} (on_bad_input = clamp)")

    def _set_reals(self, values: dict[str, float]) -> bool:
        """Set Real inputs and parameters by name: all or nothing; False if refused."""
        staged: dict[str, float] = {}
        problems: list[str] = []
        warnings: list[tuple[str, str]] = []
        for name, raw in values.items():
            value = float(raw)
            if name in self._inputs:
                accepted, msg = self._check_input(name, value)
                if accepted is None:
                    problems.append(msg)
                    continue
                if msg:
                    warnings.append((name, msg))
                else:
                    self._last_clamp.pop(name, None)
                staged[name] = accepted
            elif name in _REAL_PARAMETERS:
                _, low, high, _, _ = _REAL_PARAMETERS[name]
                if self._running:
                    problems.append(_FIXED.format(name=name))
                    continue
                if not (math.isfinite(value) and low <= value <= high):
                    problems.append(f"parameter {name}: expected a finite value in [{low:g}, {high:g}], "
                                    f"found {value!r}; refused")
                    continue
                staged[name] = value
            else:
                problems.append(f"{name} cannot be set")
        if problems:
            self._error("; ".join(problems) + ("; no value of this call was set" if len(values) > 1 else ""))
            return False
        for name, value in staged.items():
            if name in self._inputs:
                self._inputs[name] = value
            else:
                setattr(self, _REAL_PARAMETERS[name][0], value)
        for name, msg in warnings:
            self._clamped += 1
            if self._last_clamp.get(name) != values[name]:  # a host re-setting it each step: once
                self._sim.event_log.append((self._sim.time, msg))
            self._last_clamp[name] = values[name]
            self._warn(msg)
        return True

    def _set_strings(self, values: dict[str, str]) -> bool:
        """Set String parameters by name: all or nothing; False if refused."""
        problems = []
        for name, value in values.items():
            if name == "on_bad_input":
                if value not in ON_BAD_INPUT:
                    problems.append(f"parameter on_bad_input: expected one of {', '.join(ON_BAD_INPUT)}, "
                                    f"found {value!r}")
            elif name.removeprefix("models.") in MODEL_VARIABLES:
                if self._running:
                    problems.append(_FIXED.format(name=name))
                elif value not in MODEL_KINDS and not str(value).endswith(".keras"):
                    problems.append(f"parameter {name}: expected one of {', '.join(MODEL_KINDS)} or a "
                                    f".keras file, found {value!r}")
            else:
                problems.append(f"{name} cannot be set")
        if problems:
            self._error("; ".join(problems) + "; refused")
            return False
        for name, value in values.items():
            if name == "on_bad_input":
                self._on_bad_input = str(value)
            else:
                self._models[name.removeprefix("models.")] = str(value)
        return True

    # -- the get/set calls: never raise (PythonFMU would answer fmi2Fatal) ----------------------
    def _variables(self, vrs: list[int], kind: type, call: str) -> list[Any] | None:
        found = [self.vars.get(vr) for vr in vrs]
        bad = [str(vr) for vr, var in zip(vrs, found, strict=True) if not isinstance(var, kind)]
        if bad:
            self._error(f"{call}: value reference(s) {', '.join(bad)} are not {kind.__name__} "
                        "variables of this FMU")
            return None
        return found

    def _get(self, vrs: list[int], kind: type, cast: Any, fallback: Any, call: str) -> list[Any]:
        found = self._variables(vrs, kind, call)
        if found is None:
            return [fallback] * len(vrs)
        try:
            return [cast(var.getter()) for var in found]
        except Exception as exc:  # noqa: BLE001 - an fmi2Error, never fmi2Fatal
            self._error(f"{call}: {exc}")
            return [fallback] * len(vrs)

    def get_real(self, vrs: list[int]) -> list[float]:
        return self._get(vrs, Real, float, math.nan, "fmi2GetReal")

    def get_integer(self, vrs: list[int]) -> list[int]:
        return self._get(vrs, Integer, int, 0, "fmi2GetInteger")

    def get_boolean(self, vrs: list[int]) -> list[bool]:
        return self._get(vrs, _NoBoolean, bool, False, "fmi2GetBoolean")

    def get_string(self, vrs: list[int]) -> list[str]:
        return self._get(vrs, String, str, "", "fmi2GetString")

    def set_real(self, vrs: list[int], values: list[float]) -> None:
        """All values of one call are checked before any is set."""
        found = self._variables(vrs, Real, "fmi2SetReal")
        if found is not None:
            self._set_reals({var.name: value for var, value in zip(found, values, strict=True)})

    def set_string(self, vrs: list[int], values: list[str]) -> None:
        found = self._variables(vrs, String, "fmi2SetString")
        if found is not None:
            self._set_strings({var.name: value for var, value in zip(found, values, strict=True)})

    def set_integer(self, vrs: list[int], values: list[int]) -> None:
        self._variables(vrs, _NoInteger, "fmi2SetInteger")

    def set_boolean(self, vrs: list[int], values: list[bool]) -> None:
        self._variables(vrs, _NoBoolean, "fmi2SetBoolean")

    # -- FMI calls ------------------------------------------------------------------------------------
    def setup_experiment(self, start_time: float, stop_time: float | None = None,
                         tolerance: float | None = None) -> None:
        self._start_time = float(start_time)

    def exit_initialization_mode(self) -> None:
        """Rebuild when parameters or inputs changed in initialisation mode.

        Inputs set before this point hold from the start time, exactly as a
        scenario with those constant inputs (the outputs at the start included).
        """
        self._running = True
        changed = {n: v for n, v in self._inputs.items() if v != self._applied[n]}
        if changed or self._key() != self._built_with:
            try:
                self._build(changed)
            except Exception as exc:  # noqa: BLE001 - an fmi2Error, never fmi2Fatal
                self._broken = str(exc)
                self._error(f"fmi2ExitInitializationMode: {exc}")
                return
            self._applied = {n: float(self._sim.get(signal)) for n, signal in self._signals.items()}
            self._inputs = dict(self._applied)
            self._event(f"rebuilt for the parameters and inputs set in initialisation mode "
                        f"(internal step {self._sim.step_size:g} s)")

    def _apply_inputs(self) -> None:
        for name, value in self._inputs.items():
            if value != self._applied[name]:
                self._sim.set(self._signals[name], value)
                self._applied[name] = value

    def _divisions_for(self, target: float, h: float) -> int | None:
        """The grid divisions that put ``target`` on the internal grid (see the module docstring)."""
        x = (target - self._start_time) / self._step
        tolerance = 1e-9 * max(1.0, abs(target)) / self._step
        on_grid = round(x * self._divisions) / self._divisions
        if abs(x - on_grid) <= tolerance:  # the usual case: already on the grid
            return self._divisions
        limit = math.floor(min(MAX_REFINEMENT * self._step / min(self._step, h), self._step / MIN_STEP))
        q = _denominator(x, tolerance, limit)
        if q is None:
            return None
        divisions = math.lcm(self._divisions, q)
        return divisions if divisions <= limit else None

    def _step_problem(self, current_time: float, step_size: float) -> tuple[str, int]:
        """Why a doStep must be refused with nothing changed ("" if not), and the grid divisions."""
        if not (math.isfinite(step_size) and step_size >= 0):
            return f"fmi2DoStep: expected a communication step h >= 0 s, found {step_size!r}", 0
        if abs(current_time - self._sim.time) > 1e-9 * max(1.0, abs(current_time)):
            return (f"fmi2DoStep: current time {current_time!r} s differs from the FMU's time "
                    f"{self._sim.time!r} s; nothing done"), 0
        if step_size == 0:
            return "", self._divisions
        target = current_time + step_size
        divisions = self._divisions_for(target, step_size)
        if divisions is None:
            return (f"fmi2DoStep: t + h = {target!r} s cannot be put on a grid of the internal step "
                    f"{self._step:g} s divided at most {MAX_REFINEMENT} times per communication step; "
                    "nothing done (choose h a rational multiple of step_size)"), 0
        return "", divisions

    def do_step(self, current_time: float, step_size: float) -> bool:
        """Advance by ``step_size``; False only when the simulation cannot continue."""
        if self._broken is not None:
            self._error(f"fmi2DoStep at t={current_time:g} s: the simulation cannot continue after "
                        f"{self._broken}; call fmi2Reset or restore an FMU state")
            return False
        problem, divisions = self._step_problem(current_time, step_size)
        if problem:
            self._error(problem)
            return True
        if step_size == 0:
            return True
        target = current_time + step_size
        try:
            if divisions != self._divisions:
                self._refine(divisions, target)
            self._apply_inputs()
            self._sim.advance_to(target)
        except Exception as exc:  # noqa: BLE001 - an fmi2Error with fmi2Terminated, never fmi2Fatal
            self._broken = f"the failure at t={current_time:g} s, h={step_size:g} s: {exc}"
            self._error(f"fmi2DoStep at t={current_time:g} s, h={step_size:g} s failed: {exc}")
            return False
        return True

    # -- FMU state ----------------------------------------------------------------------------------
    def _get_fmu_state(self) -> Any:
        if self._broken is not None:
            self._error(f"fmi2GetFMUstate: refused, the simulation failed ({self._broken})")
            return FmuState(self._guid, problem="taken from a failed simulation")
        return FmuState(self._guid, {
            "sim": self._sim.get_state(), "events": list(self._sim.event_log),
            "inputs": dict(self._inputs), "applied": dict(self._applied),
            "parameters": {"area": self._area, "step": self._step, "seed": self._seed,
                           "models": dict(self._models), "start_time": self._start_time,
                           "divisions": self._divisions},
            "on_bad_input": self._on_bad_input, "clamped": self._clamped,
        })

    def _set_fmu_state(self, state: Any) -> None:
        if not isinstance(state, FmuState) or state.problem or not state.data:
            why = state.problem if isinstance(state, FmuState) else f"{type(state).__name__} object"
            self._error(f"fmi2SetFMUstate: not a state of this FMU ({why}); nothing changed")
            return
        if state.guid != self._guid:
            self._error(f"fmi2SetFMUstate: the state comes from the FMU with GUID {state.guid}, "
                        f"this is {self._guid}; nothing changed")
            return
        d = state.data
        try:
            p = d["parameters"]
            self._area, self._step, self._seed = p["area"], p["step"], p["seed"]
            self._models, self._start_time = dict(p["models"]), p["start_time"]
            self._divisions = p["divisions"]
            if self._key() != self._built_with:
                self._build()
            self._sim.event_log[:] = d["events"]
            self._sim.set_state(d["sim"])
        except Exception as exc:  # noqa: BLE001 - an fmi2Error, never fmi2Fatal
            self._broken = f"a state that could not be restored: {exc}"
            self._error(f"fmi2SetFMUstate: {exc}")
            return
        self._inputs, self._applied = dict(d["inputs"]), dict(d["applied"])
        self._on_bad_input, self._clamped = d["on_bad_input"], d["clamped"]
        self._broken = None


class _NoInteger:
    """No settable Integer variable exists (``clamped_inputs`` is an output)."""


class _NoBoolean:
    """No Boolean variable exists."""


def _origins() -> str:
    """Where the code runs from: Python and the main packages (the first log message)."""
    places = [f"Python {sys.version.split()[0]} ({sys.prefix})"]
    for name in ("fmu", "numpy", "pandas", "pydantic"):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            places.append(f"{name} from {Path(file).parent.parent}")
    return ", ".join(places)


def _guid(resources: str | None) -> str:
    """The FMU's GUID from its build record ("" in a source tree)."""
    if not resources:
        return ""
    try:
        return str(json.loads((Path(resources) / BUILD_INFO).read_text()).get("guid", ""))
    except (OSError, ValueError):
        return ""


def _default_area() -> float:
    return float(next(p.default for p in Reactor.parameters if p.name == "area_cm2"))


def _choice_text(choice: Any, default: str) -> str:
    """A model choice as the String parameter shows it."""
    if choice is None:
        return default
    if isinstance(choice, str):
        return choice
    return str(getattr(choice, "path", choice))
