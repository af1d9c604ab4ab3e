"""A control test case: a scenario with a ``case:`` section, and the controllers it is run with.

The scenario is the plant and its disturbances (inputs, events, faults, seed); ``case:``
says what is asked (objective, planned set points, constraints, price), what a controller
may read and move, the KPI thresholds, and the controllers shipped with it. A test case
is data: the same object serves :func:`co2twin.control.run_case`, a Gymnasium environment
(:meth:`ControlCase.build` without a controller leaves the actuators free) and an MPC
(:meth:`ControlCase.profile` gives the known futures: price and set points).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from components.control import REQUIRED_METHODS

from cosim.errors import ScenarioError
from cosim.profiles import Constant, Profile, Ramp, Steps, Table
from cosim.simulation import Simulation
from cosim.units import converter
from ..controllers import actuator_target, in_unit, with_case_setpoints
from ..scenario import build, load_scenario
from ..scenario_checks import Semantics, read_csv_profile
from ..supply import CURRENT_REQUEST, MANAGER_SETPOINT, driven_input
from ..scenario_schema import (
    CaseSpec,
    ControllerSpec,
    InputSpec,
    OnOffSpec,
    OpenLoopSpec,
    PidSpec,
    PythonSpec,
    RatioSpec,
    Scenario,
)

__all__ = ["ControlCase", "load_case", "CONTROLLER_NAME"]

#: the component name of the controller under test in every run (its signals: controller.*)
CONTROLLER_NAME = "controller"

_SPEC: TypeAdapter[Any] = TypeAdapter(ControllerSpec)


@dataclass(frozen=True)
class ControlCase:
    """A validated test case (build it with :func:`load_case`)."""

    scenario: Scenario

    def __post_init__(self) -> None:
        if self.scenario.case is None:
            raise ScenarioError("expected a test case: a scenario with a case: section, found none",
                                self.scenario.source)

    # -- what the case says ----------------------------------------------------------------
    @property
    def spec(self) -> CaseSpec:
        """The ``case:`` section."""
        assert self.scenario.case is not None  # checked when the case was made
        return self.scenario.case

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def source(self) -> str:
        return self.scenario.source

    @property
    def actuators(self) -> list[str]:
        """The inputs (``component.port``) a controller may drive."""
        return [actuator_target(a, self.scenario.has_plant) for a in self.spec.actuators]

    @property
    def constraints(self) -> dict[str, tuple[float | None, float | None]]:
        """Signal -> (low, high) in the signal's unit (a ``unit:`` given is converted)."""
        out: dict[str, tuple[float | None, float | None]] = {}
        units = self.units()
        for signal, limit in self.spec.constraints.items():
            given = getattr(limit, "unit", None)
            convert = converter(given, units[signal]) if given and signal in units else float
            out[signal] = (None if limit.low is None else float(convert(limit.low)),
                           None if limit.high is None else float(convert(limit.high)))
        return out

    def profile(self, name: str) -> Profile:
        """A known future: ``price``, or the set point of a signal (in the signal's unit)."""
        spec = self.spec
        if name == "price" and spec.price is not None:
            return self._profile(spec.price, None)
        key = name.removesuffix(".setpoint")
        if key in spec.setpoints:
            unit = self.units().get(key)
            return self._profile(spec.setpoints[key] if unit is None
                                 else in_unit(spec.setpoints[key], unit), unit)
        known = (["price"] if spec.price is not None else []) + list(spec.setpoints)
        raise KeyError(f"{self.name}: no known profile {name!r}; known: {', '.join(known) or 'none'}")

    def _profile(self, spec: InputSpec, unit: str | None) -> Profile:
        if spec.constant is not None:
            return Constant(spec.constant)
        if spec.steps is not None:
            return Steps(tuple(spec.steps))
        if spec.ramp is not None:
            r = spec.ramp
            return Ramp(r.initial, r.to, self.scenario.start + r.at, r.duration)
        assert spec.csv is not None  # the schema lets exactly one kind through
        file = Path(spec.csv.path)
        file = file if file.is_absolute() else self.scenario.base_dir / file
        times, values = read_csv_profile(file, spec.csv.time_column, spec.csv.column)
        if spec.unit is not None and unit is not None and spec.unit != unit:
            values = [float(v) for v in converter(spec.unit, unit)(values)]
        return Table(tuple(times), tuple(values), spec.csv.interpolation, spec.csv.hold)

    def units(self) -> dict[str, str]:
        """Signal (``component.port``, inputs and outputs) -> its unit in this case's plant."""
        sem = Semantics(self.scenario)
        return {name: port.unit for name, port in {**sem.ports, **sem.outputs}.items()}

    # -- controllers -------------------------------------------------------------------------
    def controller(self, ref: Any) -> tuple[str, ControllerSpec]:
        """``(label, spec)`` of a controller reference.

        ``ref`` is the name of a controller shipped with the case, a YAML file holding one
        controller spec (``type: pid`` ...), ``module:Class`` (a Python controller allowed
        every measurement and actuator of the case), a spec, or a mapping of one.
        """
        if isinstance(ref, str) and ref in self.spec.controllers:
            return ref, self.spec.controllers[ref]
        if isinstance(ref, (str, Path)) and Path(ref).suffix.lower() in (".yaml", ".yml"):
            return Path(ref).stem, _spec_file(Path(ref))
        if isinstance(ref, str) and ":" in ref:
            spec = PythonSpec(type="python", python=ref, measurements=list(self.spec.measurements),
                              actuators=list(self.spec.actuators))
            return ref.rpartition(":")[2], spec
        if isinstance(ref, Mapping):
            return str(ref.get("type", "controller")), _validated(ref, "controller")
        if isinstance(ref, (PidSpec, OnOffSpec, RatioSpec, OpenLoopSpec, PythonSpec)):
            return ref.type, ref
        if all(callable(getattr(ref, m, None)) for m in REQUIRED_METHODS):
            # a class or an object with the controller signature, given from Python
            cls = ref if isinstance(ref, type) else type(ref)
            spec = PythonSpec.model_construct(
                type="python", python=f"{cls.__module__}:{cls.__qualname__}", sample_time=0.0,
                measurements=list(self.spec.measurements), actuators=list(self.spec.actuators),
                setpoints={}, parameters={})
            spec._factory = ref
            return cls.__name__, spec
        shipped = ", ".join(self.spec.controllers)
        raise ScenarioError(f"controller {ref!r}: expected one of the case's ({shipped}), a .yaml "
                            "file with a controller spec, or module:Class", self.source)

    def scenario_for(self, ref: Any) -> tuple[str, Scenario]:
        """The case's scenario with the controller under test (named :data:`CONTROLLER_NAME`),
        after every check: the controller plans, reads and drives only what the case allows."""
        label, spec = self.controller(ref)
        spec = with_case_setpoints(spec, self.spec)
        # first as the case's only controller: the checks of the case (allowed signals) name it
        trial = self.scenario.model_copy(update={"case": self.spec.model_copy(
            update={"controllers": {label if label.isidentifier() else "controller": spec},
                    "expected": {}})})
        problems = Semantics(trial).check()
        if problems:
            raise ScenarioError(problems, self.source)
        # then as the scenario's: the same plan, now wired (building it plans it again); the
        # case's own check that its actuators are free no longer applies, as they are not
        scenario = self.scenario.model_copy(
            update={"controllers": {**self.scenario.controllers, CONTROLLER_NAME: spec}})
        return label, scenario

    def build(self, controller: Any = None) -> Simulation:
        """The simulation of the case: with ``controller`` wired in, or (``None``) with the
        actuators left free for an external agent to set (``sim.set(actuator, value)``)."""
        if controller is None:
            return build(self.scenario)
        return build(self.scenario_for(controller)[1])

    def driven_by(self, sim: Simulation) -> dict[str, str]:
        """Actuator input -> the column recorded for its command in ``sim``: the output
        feeding it (the controller's), or the input itself when nothing does. With a
        supply the current's command is the energy manager's request (co2twin.supply)."""
        fed = {c.target: c.source for c in sim.connections}
        moved = {a: CURRENT_REQUEST for a in self.actuators if fed.get(a) == MANAGER_SETPOINT}
        return {a: fed.get(moved.get(a, a), moved.get(a, a)) for a in self.actuators}

    def settable(self, sim: Simulation) -> list[str]:
        """The input an agent sets (``sim.set``) for each actuator of the case built without a
        controller: the actuator itself, or with the solar supply, for the current, the energy
        manager's request (:func:`co2twin.supply.driven_input`)."""
        return [driven_input(a, sim.external_inputs) for a in self.actuators]


def _validated(data: Any, where: str) -> Any:
    try:
        return _SPEC.validate_python(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or '(top level)'}: {e['msg']}"
                    for e in exc.errors()]
        raise ScenarioError(problems, where) from None


def _spec_file(path: Path) -> Any:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc.strerror or exc})", str(path)) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid YAML: {exc}", str(path)) from None
    return _validated(data, str(path))


def load_case(path: str | Path) -> ControlCase:
    """Read and check a test case file (a scenario with a ``case:`` section)."""
    return ControlCase(load_scenario(path))
