"""A scenario's ``controllers:`` section: each spec planned against the plant, then built.

Planning resolves the measured signal and the actuator, types the controller's ports
with their units and bounds (:meth:`components.control.Controller.typed`), gathers the
parameters and the wiring::

    measured signal ──(delayed)──▶ name.measurement      name.output ──▶ actuator input
    feed-forward signal ─(delayed)▶ name.feedforward      set point profile ──▶ name.setpoint

The measurement arrives through a delayed connection: the controller samples the value
at the start of its step (as a sampled controller on the plant does), which also breaks
the loop the controller closes. The scenario checks (:mod:`co2twin.scenario_checks`)
report the planning problems with the rest; :func:`build_controllers` instantiates them.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.control import ANTI_WINDUP, KINDS, Controller, PythonController, load_class
from components.plant import INPUTS, resolve_input

from cosim.component import Component
from cosim.errors import ScenarioError, WiringError
from cosim.graph import Connection
from cosim.ports import Port
from cosim.profiles import Profile
from cosim.units import UnitError, converter
from .scenario_schema import (
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

__all__ = [
    "SPEC_PARAMETERS", "Plan", "actuator_target", "build_controllers", "in_unit", "plan_controllers",
    "with_case_setpoints",
]

#: parameter of each controller class -> where the scenario sets it (for messages)
_PARAMETER_PATHS = {
    "kp": "gains.kp", "ki": "gains.ki", "kd": "gains.kd", "out_min": "limits.low",
    "out_max": "limits.high", "max_rate": "limits.rate", "ff_gain": "feedforward.gain",
}


@dataclass
class Plan:
    """One controller, resolved: its typed class, parameters, wiring and profiles."""

    name: str
    kind: str
    cls: type[Controller] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    wires: list[Connection] = field(default_factory=list)
    #: input signal ``name.port`` -> (YAML path below the controller, profile spec)
    drives: dict[str, tuple[str, InputSpec]] = field(default_factory=dict)
    #: measured signals it reads, and the inputs (component.port) it drives
    reads: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    #: the user's class (or an object given from Python)
    python: Any = None
    python_parameters: dict[str, Any] = field(default_factory=dict)


def actuator_target(name: str, has_plant: bool) -> str:
    """The input ``component.port`` an actuator name means (plant input names resolved)."""
    return resolve_input(name) if has_plant else name


def with_case_setpoints(spec: ControllerSpec, case: CaseSpec | None) -> ControllerSpec:
    """``spec`` with the test case's set point of its measurement where it gives none."""
    if case is None:
        return spec
    if isinstance(spec, (PidSpec, OnOffSpec)) and spec.setpoint is None \
            and spec.measurement in case.setpoints:
        return spec.model_copy(update={"setpoint": case.setpoints[spec.measurement]})
    if isinstance(spec, PythonSpec):
        extra = {s: p for s, p in case.setpoints.items()
                 if s in spec.measurements and s not in spec.setpoints}
        if extra:
            return spec.model_copy(update={"setpoints": {**spec.setpoints, **extra}})
    return spec


class _Planner:
    """Plans the controllers of one section against the components' classes."""

    def __init__(self, specs: Mapping[str, ControllerSpec], stages: Mapping[str, type[Component]],
                 *, has_plant: bool, fed: Mapping[str, str], base_dir: Path) -> None:
        self.specs = specs
        self.stages = stages
        self.has_plant = has_plant
        self.fed = fed
        self.base_dir = base_dir
        self.outputs = {f"{c}.{p.name}": p for c, cls in stages.items() for p in cls.outputs}
        self.inputs = {f"{c}.{p.name}": p for c, cls in stages.items() for p in cls.inputs}
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, text: str) -> None:
        self.problems.append((path, text))

    # -- signals ---------------------------------------------------------------------------
    def measured(self, path: str, signal: str) -> Port | None:
        """The port of measured output ``signal``, or None after reporting why not."""
        port = self.outputs.get(signal)
        measured = [n for n, p in self.outputs.items() if p.measured]
        if port is None:
            self.add(path, f"unknown signal {signal!r}; expected a measured output "
                     f"({', '.join(measured) or 'none'})")
            return None
        if not port.measured:
            self.add(path, f"{signal} is not a measured signal: a controller reads sensors, as on "
                     f"the plant; measured: {', '.join(measured)}")
            return None
        return port

    def actuator(self, path: str, name: str, own: str) -> tuple[str, Port] | None:
        """The input an actuator name means and the port whose unit and bounds it takes."""
        target = actuator_target(name, self.has_plant)
        cname, dot, pname = target.partition(".")
        if cname == own:
            self.add(path, f"a controller cannot drive its own input {target}")
            return None
        if cname in self.specs and cname not in self.stages:  # a cascade: another controller's set point
            return self._cascade(path, target, cname, pname)
        port = self.inputs.get(target)
        if port is None:
            names = ", ".join(INPUTS) if self.has_plant else "component.port"
            self.add(path, f"unknown input {name!r}; expected one of {names} (or component.port of "
                     "an input, or another controller's setpoint)")
            return None
        if target in self.fed:
            self.add(path, f"{target} is fed by {self.fed[target]}; a controller drives an input "
                     "that nothing else feeds")
            return None
        return target, port

    def _cascade(self, path: str, target: str, cname: str, pname: str) -> tuple[str, Port] | None:
        inner = self.specs[cname]
        if pname != "setpoint" or not isinstance(inner, (PidSpec, OnOffSpec)):
            self.add(path, f"{target}: a controller drives another one only through the setpoint "
                     "of a pid or onoff controller (a cascade)")
            return None
        if inner.setpoint is not None:
            self.add(path, f"{target} is driven by controllers.{cname}.setpoint already; leave "
                     "that out to make a cascade")
            return None
        source = self.outputs.get(inner.measurement)
        if source is None:
            return None  # reported with the inner controller
        return target, dataclasses.replace(source, start=min(max(0.0, source.lower), source.upper))

    # -- each kind ---------------------------------------------------------------------------
    def plan(self, name: str, spec: ControllerSpec) -> Plan:
        plan = Plan(name, spec.type)
        if isinstance(spec, PythonSpec):
            self._python(plan, spec)
            return plan
        roles: dict[str, tuple[Any, ...]] = {}
        if not isinstance(spec, OpenLoopSpec):
            port = self.measured("measurement", spec.measurement)
            if port is not None:
                roles["measurement"] = (port.unit, port.lower, port.upper)
                plan.reads.append(spec.measurement)
                plan.wires.append(Connection(spec.measurement, f"{name}.measurement", delayed=True))
        act = self.actuator("actuator", spec.actuator, name)
        if act is not None:
            target, port = act
            roles["output"] = (port.unit, port.lower, port.upper, port.start)
            plan.writes.append(target)
            plan.wires.append(Connection(f"{name}.output", target))
        if isinstance(spec, PidSpec) and spec.feedforward is not None:
            port = self.measured("feedforward.signal", spec.feedforward.signal)
            if port is not None:
                roles["feedforward"] = (port.unit, port.lower, port.upper)
                plan.reads.append(spec.feedforward.signal)
                plan.wires.append(Connection(spec.feedforward.signal, f"{name}.feedforward", delayed=True))
        plan.parameters = _parameters(spec)
        self._profiles(plan, spec)
        expected = {"output"} if isinstance(spec, OpenLoopSpec) else {"measurement", "output"}
        if isinstance(spec, PidSpec) and spec.feedforward is not None:
            expected.add("feedforward")
        if "output" in roles:
            # the parameters are checked against the actuator even when another signal failed
            placeholder = ("1", -math.inf, math.inf)
            plan.cls = KINDS[spec.type].typed(**{r: roles.get(r, placeholder) for r in expected})
            self._check_parameters(plan)
        if not expected <= set(roles):
            plan.cls = None
        return plan

    def _profiles(self, plan: Plan, spec: ControllerSpec) -> None:
        name = plan.name
        if isinstance(spec, (PidSpec, OnOffSpec)) and spec.setpoint is not None:
            plan.drives[f"{name}.setpoint"] = ("setpoint", spec.setpoint)
        if isinstance(spec, PidSpec):
            if spec.manual is not None:
                plan.drives[f"{name}.manual"] = ("manual", spec.manual)
            if spec.manual_output is not None:
                plan.drives[f"{name}.manual_output"] = ("manual_output", spec.manual_output)
        if isinstance(spec, OpenLoopSpec):
            plan.drives[f"{name}.value"] = ("output", spec.output)

    def _check_parameters(self, plan: Plan) -> None:
        """Each parameter within its (typed) bounds; then the class accepts them together."""
        assert plan.cls is not None
        declared = {p.name: p for p in plan.cls.parameters}
        bad = False
        for pname, value in plan.parameters.items():
            spec = declared[pname]
            if not spec.contains(value):
                where = " (the actuator's range)" if pname in ("out_min", "out_max") else ""
                self.add(_PARAMETER_PATHS.get(pname, pname),
                         f"expected a value in {spec.bounds_text()}{where}, found {value!r}")
                bad = True
        if not bad:
            try:
                plan.cls(**plan.parameters)
            except WiringError as exc:
                self.add("limits" if "out_min" in str(exc) else "(controller)", str(exc))

    def _python(self, plan: Plan, spec: PythonSpec) -> None:
        name = plan.name
        measured: list[tuple[str, Port]] = []
        for i, signal in enumerate(spec.measurements):
            port = self.measured(f"measurements[{i}]", signal)
            if port is not None:
                measured.append((signal, port))
                plan.reads.append(signal)
        setpoints: list[tuple[str, Port]] = []
        for signal in spec.setpoints:
            if signal not in spec.measurements:
                self.add(f"setpoints.{signal}", f"expected one of the measurements "
                         f"({', '.join(spec.measurements) or 'none'}), found {signal!r}")
                continue
            port = self.outputs.get(signal)
            if port is not None:
                setpoints.append((signal, port))
        actuators: list[tuple[str, Port]] = []
        for i, actuator in enumerate(spec.actuators):
            act = self.actuator(f"actuators[{i}]", actuator, name)
            if act is not None:
                actuators.append((actuator, act[1]))
                plan.writes.append(act[0])
        if len(measured) < len(spec.measurements) or len(actuators) < len(spec.actuators):
            return
        try:
            cls = PythonController.for_signals(measured, actuators, setpoints)
        except WiringError as exc:
            self.add("(controller)", str(exc))
            return
        try:
            plan.python = spec._factory if spec._factory is not None \
                else load_class(spec.python, [self.base_dir])
        except WiringError as exc:
            self.add("python", str(exc))
            return
        plan.cls = cls
        plan.parameters = {"sample_time": spec.sample_time}
        plan.python_parameters = dict(spec.parameters)
        for signal in plan.reads:
            plan.wires.append(Connection(signal, f"{name}.{cls.port_for(signal)}", delayed=True))
        for signal, profile in spec.setpoints.items():
            plan.drives[f"{name}.{cls.port_for(signal + '.setpoint')}"] = (f"setpoints.{signal}", profile)
        for actuator, target in zip(spec.actuators, plan.writes, strict=True):
            plan.wires.append(Connection(f"{name}.{cls.port_for(actuator)}", target))
        try:
            make_python(plan)
        except WiringError as exc:
            self.add("parameters", str(exc))
            plan.cls = None


def make_python(plan: Plan) -> Any:
    """A fresh instance of the user's class with the scenario's parameters (or a copy of the
    object given from Python, so that every run starts from the same object)."""
    assert plan.python is not None
    if not isinstance(plan.python, type):
        return copy.deepcopy(plan.python)
    try:
        return plan.python(**plan.python_parameters)
    except Exception as exc:  # the user's constructor: whatever it raises is reported
        raise WiringError(f"{plan.python.__name__}({_kwargs(plan.python_parameters)}) failed: "
                          f"{type(exc).__name__}: {exc}") from None


def _kwargs(params: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) <= 80 else text[:77] + "..."


def _in_port_units(plan: Plan) -> list[tuple[str, str]]:
    """Convert the plan's profiles given with a ``unit:`` into their ports' units (a CSV
    profile is converted when it is read); problems for units that do not convert."""
    if plan.cls is None:
        return []
    problems: list[tuple[str, str]] = []
    for signal, (path, spec) in list(plan.drives.items()):
        port = plan.cls.input_port(signal.partition(".")[2])
        try:
            plan.drives[signal] = (path, in_unit(spec, port.unit))
        except UnitError as exc:
            problems.append((f"{plan.name}.{path}.unit", f"expected a unit convertible to "
                             f"{port.unit!r} (the signal's unit), found {spec.unit!r}: {exc}"))
            del plan.drives[signal]
    return problems


def in_unit(spec: InputSpec, unit: str) -> InputSpec:
    """``spec`` with its values in ``unit`` (a CSV profile keeps its own: it converts when read).

    Raises :class:`cosim.units.UnitError` when the spec's unit does not convert.
    """
    if spec.unit is None or spec.unit == unit:
        return spec
    convert = converter(spec.unit, unit)
    if spec.csv is not None:
        return spec
    update: dict[str, Any] = {"unit": unit}
    if spec.constant is not None:
        update["constant"] = float(convert(spec.constant))
    if spec.steps is not None:
        update["steps"] = [(t, float(convert(v))) for t, v in spec.steps]
    if spec.ramp is not None:
        update["ramp"] = spec.ramp.model_copy(update={"initial": float(convert(spec.ramp.initial)),
                                                      "to": float(convert(spec.ramp.to))})
    return spec.model_copy(update=update)


#: a controller spec's numeric fields (dotted as in the file) -> the class parameter each sets:
#: what an ensemble's variants may vary (``controllers.<name>.<field>``) and set per variant
SPEC_PARAMETERS: dict[str, str] = {
    "gains.kp": "kp", "gains.ki": "ki", "gains.kd": "kd",
    "limits.low": "out_min", "limits.high": "out_max", "limits.rate": "max_rate",
    "setpoint_weight": "setpoint_weight", "derivative_weight": "derivative_weight",
    "derivative_filter": "derivative_filter", "tracking_time": "tracking_time",
    "bias": "bias", "feedforward.gain": "ff_gain",
    "hysteresis": "hysteresis", "on_value": "on_value", "off_value": "off_value", "ratio": "ratio",
}


def _parameters(spec: ControllerSpec) -> dict[str, Any]:
    """The controller class's parameters from a spec (those the spec sets)."""
    params: dict[str, Any] = {"sample_time": getattr(spec, "sample_time", 0.0)}
    limits = getattr(spec, "limits", None)
    if limits is not None:
        if limits.low is not None:
            params["out_min"] = limits.low
        if limits.high is not None:
            params["out_max"] = limits.high
        if limits.rate is not None:
            params["max_rate"] = limits.rate
    if isinstance(spec, PidSpec):
        params.update(
            kp=spec.gains.kp, ki=spec.gains.ki, kd=spec.gains.kd,
            setpoint_weight=spec.setpoint_weight, derivative_weight=spec.derivative_weight,
            derivative_filter=spec.derivative_filter, bias=spec.bias,
            anti_windup=ANTI_WINDUP[spec.anti_windup],
        )
        if spec.tracking_time is not None:
            params["tracking_time"] = spec.tracking_time
        if spec.feedforward is not None:
            params["ff_gain"] = spec.feedforward.gain
    elif isinstance(spec, OnOffSpec):
        params.update(hysteresis=spec.hysteresis, on_value=spec.on_value, off_value=spec.off_value,
                      action=1.0 if spec.action == "on_below" else -1.0)
    elif isinstance(spec, RatioSpec):
        params.update(ratio=spec.ratio, bias=spec.bias)
    elif isinstance(spec, OpenLoopSpec):
        params = {}
    return params


def plan_controllers(
    specs: Mapping[str, ControllerSpec],
    stages: Mapping[str, type[Component]],
    *,
    has_plant: bool,
    fed: Mapping[str, str],
    base_dir: Path,
    driven: Iterable[str] = (),
) -> tuple[dict[str, Plan], list[tuple[str, str]]]:
    """Plan every controller; problems as ``(path below the section, text)``.

    ``stages`` are the other components' classes, ``fed`` the inputs their wiring feeds
    (input -> source), ``driven`` the inputs that the scenario's inputs and connections
    drive (a set point left out of a controller must be driven by one of them).
    """
    planner = _Planner(specs, stages, has_plant=has_plant, fed=fed, base_dir=base_dir)
    plans: dict[str, Plan] = {}
    problems: list[tuple[str, str]] = []
    writers: dict[str, str] = {}
    for name, spec in specs.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            problems.append((name, "expected a name of letters, digits and underscores (it prefixes "
                             "the controller's signals: name.port)"))
            continue
        if name in stages:
            problems.append((name, f"a component is already named {name!r}; choose another name"))
            continue
        planner.problems = []
        plan = planner.plan(name, spec)
        problems += [(f"{name}.{p}" if not p.startswith("(") else name, t) for p, t in planner.problems]
        for i, target in enumerate(plan.writes):
            if target in writers:
                where = "actuator" if not isinstance(spec, PythonSpec) else f"actuators[{i}]"
                problems.append((f"{name}.{where}", f"{target} is driven by controllers.{writers[target]} "
                                 "already; expected each input driven once"))
                # reported here: the wiring checks need not report it again
                plan.wires = [w for w in plan.wires if w.target != target]
            else:
                writers[target] = name
        problems += _in_port_units(plan)
        plans[name] = plan
    fed_by_controllers = {w.target for p in plans.values() for w in p.wires}
    driven = set(driven) | fed_by_controllers
    for name in plans:
        spec = specs[name]
        if isinstance(spec, (PidSpec, OnOffSpec)) and spec.setpoint is None \
                and f"{name}.setpoint" not in driven:
            problems.append((f"{name}.setpoint", "required: a profile (like an input), the test case's "
                             f"set point of {spec.measurement}, or a connection into {name}.setpoint"))
    return plans, problems


def build_controllers(
    scenario: Scenario,
    components: Mapping[str, Component],
    make_profile: Callable[[InputSpec, str | None], Profile],
) -> tuple[dict[str, Component], list[Connection], dict[str, InputSpec]]:
    """The scenario's controllers as components, their connections and the profiles that drive
    their inputs (set points, modes). The scenario has been validated; a problem left raises
    :class:`ScenarioError`."""
    if not scenario.controllers:
        return {}, [], {}
    stages = {name: type(comp) for name, comp in components.items()}
    driven = [resolve_input(n) for n in scenario.inputs] + [c.target for c in scenario.connections]
    fed = {c.target: c.source for c in scenario.connections}
    plans, problems = plan_controllers(scenario.controllers, stages, has_plant=scenario.has_plant,
                                       fed=fed, base_dir=scenario.base_dir, driven=driven)
    if problems:
        raise ScenarioError([f"controllers.{p}: {t}" for p, t in problems], scenario.source)
    forecasts = _forecasts(scenario, components, make_profile)
    out: dict[str, Component] = {}
    wires: list[Connection] = []
    drives: dict[str, InputSpec] = {}
    for name, plan in plans.items():
        assert plan.cls is not None
        try:
            if plan.python is not None and issubclass(plan.cls, PythonController):
                out[name] = plan.cls(make_python(plan), forecasts=forecasts, **plan.parameters)
            else:
                out[name] = plan.cls(**plan.parameters)
        except WiringError as exc:
            raise ScenarioError(f"controllers.{name}: {exc}", scenario.source) from None
        wires += plan.wires
        drives.update({signal: spec for signal, (_, spec) in plan.drives.items()})
    return out, wires, drives


def _forecasts(scenario: Scenario, components: Mapping[str, Component],
               make_profile: Callable[[InputSpec, str | None], Profile]
               ) -> dict[str, Callable[[float], float]]:
    """What a planning controller may know ahead: the case's price and planned set points,
    and the set points the section gives (in the signals' units)."""
    units = {f"{c}.{p.name}": p.unit for c, comp in components.items() for p in comp.outputs}
    known: dict[str, Callable[[float], float]] = {}

    def profile(signal: str, spec: InputSpec) -> Callable[[float], float]:
        unit = units.get(signal)
        spec = in_unit(spec, unit) if unit is not None else spec
        return make_profile(spec, unit).value

    case = scenario.case
    if case is not None:
        if case.price is not None:
            known["price"] = make_profile(case.price, None).value
        for signal, spec in case.setpoints.items():
            known[f"{signal}.setpoint"] = profile(signal, spec)
    for ctl in scenario.controllers.values():
        if isinstance(ctl, PythonSpec):
            for signal, spec in ctl.setpoints.items():
                known.setdefault(f"{signal}.setpoint", profile(signal, spec))
    return known
