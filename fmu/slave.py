"""The whole co2twin plant as a PythonFMU co-simulation slave (FMI 2.0).

The slave wraps :func:`co2twin.scenario.build` of the scenario packed in the FMU's
resources (``scenario.yaml``). One ``doStep(t, h)`` advances the simulation
from ``t`` to ``t + h`` with :meth:`cosim.Simulation.advance_to`, i.e. as many
internal steps as ``h`` spans (``h`` must be a multiple of the internal step).

Inputs follow the scenario until the host changes them: an input value that
differs from the last one applied is held from the next ``doStep`` on (zero-order
hold, as ``Simulation.set``). Parameters (electrode area, internal step, seed,
model choices) are read when initialisation mode is left; changing them rebuilds
the simulation. TensorFlow is never imported: surrogates run on NumPy.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pythonfmu import Fmi2Causality, Fmi2Slave, Fmi2Variability, Real, String
from pythonfmu.enums import Fmi2Initial, Fmi2Status

from cosim.errors import CosimError, FMUError

if TYPE_CHECKING:
    from cosim import Simulation

__all__ = ["INPUT_NAMES", "OUTPUT_SIGNALS", "SCENARIO_FILE", "Co2Twin", "FmuVariable", "variables"]

#: name of the scenario file in the FMU's resources
SCENARIO_FILE = "scenario.yaml"

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

#: model-choice String parameters (``models.<variable>``)
MODEL_VARIABLES: tuple[str, ...] = ("cell_voltage", "fe_formate", "outlet_co2_fraction", "anolyte_ph")


@dataclass(frozen=True)
class FmuVariable:
    """One FMU variable as build.py needs it for the model description."""

    name: str
    causality: str
    unit: str | None
    description: str


def _load_scenario(resources: str | None) -> Any:
    """The packed scenario, or the package's default one when run from a source tree."""
    from co2twin.scenario import load_scenario

    candidates = []
    if resources:
        candidates.append(Path(resources) / SCENARIO_FILE)
    candidates.append(Path(__file__).resolve().parent / "default_scenario.yaml")
    for path in candidates:
        if path.is_file():
            return load_scenario(path)
    raise FMUError(f"{candidates[0]}: scenario file missing from the FMU resources")


def variables(scenario: Any) -> list[FmuVariable]:
    """Every FMU variable with unit and description, in value-reference order."""
    from components.plant import INPUTS
    from co2twin.scenario import build

    sim = build(scenario)
    out = [FmuVariable(n, "input", sim.unit(INPUTS[n]), sim.port(INPUTS[n]).description)
           for n in INPUT_NAMES]
    out += [FmuVariable(s, "output", sim.unit(s), sim.port(s).description) for s in OUTPUT_SIGNALS]
    out += [
        FmuVariable("reactor.area_cm2", "parameter", "cm2", "cathode (electrode) area"),
        FmuVariable("step_size", "parameter", "s", "internal simulation step"),
        FmuVariable("seed", "parameter", None, "seed of random effects (sensor noise)"),
    ]
    out += [FmuVariable(f"models.{v}", "parameter", None,
                        f"model estimating {v}: physics, nn, hybrid or valco2t")
            for v in MODEL_VARIABLES]
    return out


class Co2Twin(Fmi2Slave):
    """co2twin plant: feed, flow cell, separation and power supply as one FMU."""

    author = "co2twin"
    description = "Digital twin of a CO2-to-formic-acid electroreduction pilot plant"
    version = "0.1.0"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _keep_entry_module_alive(self.resources)
        self._scenario = _load_scenario(self.resources)
        sc = self._scenario
        self._area = float(sc.plant.get("reactor", {}).get("area_cm2", _default_area()))
        self._step = float(sc.step)
        self._seed = float(sc.seed)
        self._models = {v: _choice_text(getattr(sc.models, v), sc.models.default)
                        for v in MODEL_VARIABLES}
        self._models_packed = dict(self._models)
        self._built_with: tuple[Any, ...] | None = None
        self._start_time = float(sc.start)
        self._sim: Simulation  # assigned by _build(), which also initialises it
        self._build()
        self._inputs = {n: float(self._sim.get(self._signal(n))) for n in INPUT_NAMES}
        self._applied = dict(self._inputs)
        self._refused: list[str] = []

        for n in INPUT_NAMES:
            self.register_variable(Real(
                n, causality=Fmi2Causality.input, variability=Fmi2Variability.continuous,
                getter=(lambda n=n: self._inputs[n]), setter=(lambda v, n=n: self._set_input(n, v)),
            ), nested=False)
        for s in OUTPUT_SIGNALS:
            self.register_variable(Real(
                s, causality=Fmi2Causality.output, variability=Fmi2Variability.continuous,
                getter=(lambda s=s: float(self._sim.get(s))),
            ), nested=False)
        self.register_variable(Real(
            "reactor.area_cm2", causality=Fmi2Causality.parameter,
            variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
            getter=lambda: self._area, setter=lambda v: self._set_param("_area", v, 1e-3, 1e6),
        ), nested=False)
        self.register_variable(Real(
            "step_size", causality=Fmi2Causality.parameter,
            variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
            getter=lambda: self._step, setter=lambda v: self._set_param("_step", v, 1e-6, 1e6),
        ), nested=False)
        self.register_variable(Real(
            "seed", causality=Fmi2Causality.parameter,
            variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
            getter=lambda: self._seed, setter=lambda v: self._set_param("_seed", v, 0, 2.0**53),
        ), nested=False)
        for v in MODEL_VARIABLES:
            self.register_variable(String(
                f"models.{v}", causality=Fmi2Causality.parameter,
                variability=Fmi2Variability.fixed, initial=Fmi2Initial.exact,
                getter=(lambda v=v: self._models[v]),
                setter=(lambda value, v=v: self._set_model(v, value)),
            ), nested=False)

    # -- building -----------------------------------------------------------------------
    @staticmethod
    def _signal(name: str) -> str:
        from components.plant import INPUTS

        return INPUTS[name]

    def _key(self) -> tuple[Any, ...]:
        return (self._area, self._step, self._seed, tuple(sorted(self._models.items())),
                self._start_time)

    def _build(self, inputs: dict[str, float] | None = None) -> None:
        """(Re)build and initialise the simulation from the scenario and the parameters.

        ``inputs``: inputs held constant from the start instead of the scenario's.
        """
        from co2twin.scenario import build

        sc = self._scenario
        plant = {k: dict(v) for k, v in sc.plant.items()}
        plant.setdefault("reactor", {})["area_cm2"] = self._area
        changed = {v: c for v, c in self._models.items() if c != self._models_packed[v]}
        models = sc.models
        if changed:
            data = sc.models.model_dump(by_alias=True)
            data.update(changed)
            models = type(sc.models).model_validate(data)
        duration = max(sc.duration, self._step)
        scenario = sc.model_copy(update={
            "plant": plant, "step": self._step, "seed": int(self._seed), "models": models,
            "start": self._start_time, "duration": duration,
        })
        try:
            sim = build(scenario)
            sim.record(["power.current"])
            for name, value in (inputs or {}).items():
                sim.set(self._signal(name), value)
            sim.initialize()
        except CosimError as exc:
            raise FMUError(f"{sc.source}: cannot build the simulation: {exc}") from None
        self._sim = sim
        self._built_with = self._key()

    # -- setters --------------------------------------------------------------------------
    def _set_input(self, name: str, value: float) -> None:
        """Take a new input value, or refuse it (logged; the next doStep is discarded).

        PythonFMU turns any exception raised here into fmi2Fatal and drops the
        instance, so a bad value is refused without raising.
        """
        port = self._sim.port(self._signal(name))
        v = float(value)
        if not port.contains(v):
            msg = (f"input {name}: expected a finite value in {port.bounds_text()}, found {value!r}; "
                   f"value refused, keeping {self._inputs[name]!r}")
            self.log(msg, Fmi2Status.error)
            self._refused.append(msg)
            return
        self._inputs[name] = v

    def _set_param(self, attr: str, value: float, low: float, high: float) -> None:
        v = float(value)
        if not (math.isfinite(v) and low <= v <= high):
            msg = f"parameter {attr[1:]}: expected a finite value in [{low:g}, {high:g}], found {value!r}"
            self.log(msg, Fmi2Status.error)
            self._refused.append(msg)
            return
        setattr(self, attr, v)

    def _set_model(self, variable: str, value: str) -> None:
        kinds = ("physics", "nn", "hybrid", "valco2t")
        if value not in kinds and not str(value).endswith(".keras"):
            msg = f"parameter models.{variable}: expected one of {', '.join(kinds)}, found {value!r}"
            self.log(msg, Fmi2Status.error)
            self._refused.append(msg)
            return
        self._models[variable] = str(value)

    # -- FMI calls --------------------------------------------------------------------------
    def setup_experiment(self, start_time: float, stop_time: float | None,
                         tolerance: float | None) -> None:
        self._start_time = float(start_time)

    def exit_initialization_mode(self) -> None:
        """Rebuild when parameters or inputs changed in initialisation mode.

        Inputs set before this point hold from the start time, exactly as a
        scenario with those constant inputs (the outputs at the start included).
        """
        changed = {n: v for n, v in self._inputs.items() if v != self._applied[n]}
        if changed or self._key() != self._built_with:
            self._build(changed)
            self._applied = {n: float(self._sim.get(self._signal(n))) for n in INPUT_NAMES}
            self._inputs = dict(self._applied)

    def _apply_inputs(self) -> None:
        for name, value in self._inputs.items():
            if value != self._applied[name]:
                self._sim.set(self._signal(name), value)
                self._applied[name] = value

    def do_step(self, current_time: float, step_size: float) -> bool:
        sim = self._sim
        if self._refused:
            self.log(f"doStep at t={current_time:g} s discarded: {'; '.join(self._refused)}",
                     Fmi2Status.discard)
            self._refused.clear()
            return False
        if abs(current_time - sim.time) > 1e-9 * max(1.0, abs(current_time)):
            self.log(f"doStep: current time {current_time!r} s differs from the FMU's time "
                     f"{sim.time!r} s", Fmi2Status.error)
            return False
        try:
            self._apply_inputs()
            sim.advance_to(sim.time + step_size if step_size > 0 else sim.time)
        except Exception as exc:  # noqa: BLE001 - raising here would be fmi2Fatal in PythonFMU
            self.log(f"doStep at t={current_time:g} s, h={step_size:g} s: {exc}", Fmi2Status.error)
            return False
        return True

    # -- FMU state ----------------------------------------------------------------------------
    def _get_fmu_state(self) -> dict[str, Any]:
        return {"sim": self._sim.get_state(), "inputs": dict(self._inputs),
                "applied": dict(self._applied)}

    def _set_fmu_state(self, state: dict[str, Any]) -> None:
        self._sim.set_state(state["sim"])
        self._inputs = dict(state["inputs"])
        self._applied = dict(state["applied"])


def _keep_entry_module_alive(resources: str | None) -> None:
    """Work around PythonFMU 0.7.0 dropping one reference to the entry module's dict.

    Its fmi2Instantiate releases a borrowed reference (``PyModule_GetDict``) of the
    module named in ``resources/slavemodule.txt`` once per instance, so the second
    instance in a process crashes in the import system. We add the reference back.
    """
    import ctypes

    if not resources:
        return
    marker = Path(resources) / "slavemodule.txt"
    if not marker.is_file():
        return
    module = sys.modules.get(marker.read_text().strip())
    if module is not None:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(vars(module)))


def _default_area() -> float:
    from components.reactor import Reactor

    return float(next(p.default for p in Reactor.parameters if p.name == "area_cm2"))


def _choice_text(choice: Any, default: str) -> str:
    """A model choice as the String parameter shows it."""
    if choice is None:
        return default
    if isinstance(choice, str):
        return choice
    return str(getattr(choice, "path", choice))
