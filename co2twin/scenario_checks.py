"""Scenario checks that need the plant: names, bounds, units, grid alignment, CSV coverage.

Also the reader of CSV profiles, whose problems name the file and line.
"""
from __future__ import annotations

import csv
import difflib
import fnmatch
import math
import re
from itertools import pairwise
from pathlib import Path
from typing import Any
from collections.abc import Sequence

from components.plant import INPUTS, STAGES, build_plant, resolve_input

from cosim.component import Component
from cosim.errors import FMUError, ScenarioError, WiringError
from cosim.graph import Connection, Graph, check_connection, split_signal
from cosim.ports import Port
from cosim.profiles import Table
from cosim.units import UnitError, converter
from .outputs import output_file_problems
from .controllers import Plan, actuator_target, plan_controllers, with_case_setpoints
from .surrogates import load_models
from .supply import checked_wiring
from .supply_schema import CLASSES as SUPPLY_CLASSES
from .scenario_schema import (
    MAX_RECORD_BYTES,
    MAX_STEPS,
    CaseSpec,
    CsvSpec,
    InputSpec,
    ParameterEvent,
    PlainFaultEvent,
    ProfileEvent,
    PumpEvent,
    RampEvent,
    Scenario,
    SensorEvent,
    SetEvent,
    SupplyDropEvent,
)

__all__ = ["Semantics", "read_csv_profile", "recorded_signals"]


def recorded_signals(scenario: Scenario) -> list[str]:
    """The signals a run of ``scenario`` records (``record.signals`` applied)."""
    sem = Semantics(scenario)
    names = list(sem.outputs) + [n for n in sem.ports if n not in sem.fed and n not in sem.redirected]
    if scenario.record.signals == "all":
        return names
    return [n for n in names
            if any(fnmatch.fnmatchcase(n, pattern) for pattern in scenario.record.signals)]


class Semantics:
    """Cross-checks against the plant: names, bounds, units, grid alignment, file coverage.

    ``timing=False`` (start, duration or step failed the schema) skips the checks
    that compare times with the run; ``event_index`` maps the events checked to
    their index in the file when some events failed the schema; ``supply_failed`` (the
    ``supply:`` section failed the schema as a whole) leaves the supply's signals unchecked.
    """

    def __init__(
        self, scenario: Scenario, *, timing: bool = True, event_index: list[int] | None = None,
        connection_index: list[int] | None = None, supply_failed: bool = False,
    ) -> None:
        self.s = scenario
        self.timing = timing
        self.event_index = event_index
        self.connection_index = connection_index
        self.problems: list[str] = []
        #: YAML path of each value with a ``unit:`` other than its signal's -> the signal's unit
        #: (checked convertible): :func:`co2twin.scenario.parse_scenario` converts them
        self.port_units: dict[str, str] = {}
        #: component name -> class: the plant's stages, then the scenario's components
        self.stages: dict[str, type[Component]] = dict(STAGES) if scenario.has_plant else {}
        #: inputs the scenario drives that a run drives elsewhere: the supply's energy manager
        #: takes the current request (co2twin.supply.attach_supply), so the current set point
        #: is recorded there
        self.redirected: set[str] = set()
        supply = scenario.supply is not None and scenario.has_plant
        if supply:  # PV, battery, manager and bus join the plant (co2twin.supply)
            self.stages.update(SUPPLY_CLASSES)
            self.redirected.add("power.current_setpoint")
        #: scenario components whose file could not be read (their ports are unknown)
        self.broken: set[str] = set(SUPPLY_CLASSES) if supply_failed else set()
        self.supply_failed = supply_failed
        self._components()
        self.ports: dict[str, Port] = {}
        for cname, cls in self.stages.items():
            for port in cls.inputs:
                self.ports[f"{cname}.{port.name}"] = port
        self.outputs = {
            f"{cname}.{p.name}": p for cname, cls in self.stages.items() for p in cls.outputs
        }
        self.wiring = build_plant()[1] if scenario.has_plant else []
        if supply:
            self.wiring += checked_wiring()
        self._controllers()  # the controllers: section joins stages, ports and wiring; case: checked
        #: fed input -> its source
        self.fed = {c.target: c.source for c in self.wiring}
        self._connections()

    def add(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def check(self) -> list[str]:
        s = self.s
        if self.timing:
            self._timing()
        self._plant()
        for cname, every in s.rates.items():
            if cname in self.broken:
                continue
            if cname not in self.stages:
                self.add(f"rates.{cname}",
                         f"unknown component; expected one of {', '.join(self.stages)}")
            elif self.timing and every > s.steps:
                self.add(f"rates.{cname}", f"expected at most the run's {s.steps:,} steps, "
                         f"found {every:,}")
        driven: dict[str, str] = {}
        for name, spec in s.inputs.items():
            target = resolve_input(name)
            if target in driven:
                self.add(f"inputs.{name}", f"drives {target}, which inputs.{driven[target]} "
                         "already drives; expected each input once")
                continue
            driven[target] = name
            self._input(f"inputs.{name}", name, spec)
        for i, event in enumerate(s.events):
            index = self.event_index[i] if self.event_index is not None else i
            self._event(f"events[{index}]", event)
        if s.record.signals != "all":
            self._record()
        for name, limit in s.limits.items():
            self._limit(f"limits.{name}", name, limit)
        self._models()
        if s.output is not None:
            # inside the working directory, a suffix that is the format's (co2twin.outputs)
            for problem in output_file_problems(s.output.file, s.output.format):
                self.add("output.file", problem)
        return self.problems

    def _components(self) -> None:
        """Each FMU's model description, its parameters, a name the plant does not use."""
        from fmu.importer import FMUComponent

        for cname, spec in self.s.components.items():
            path = f"components.{cname}"
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", cname):
                self.add(path, "expected a name of letters, digits and underscores (it prefixes "
                         "the component's signals: name.port)")
                self.broken.add(cname)
                continue
            if cname in self.stages:
                self.add(path, f"the plant already has a component named {cname!r} "
                         f"(plant: {', '.join(STAGES)}); choose another name")
                continue
            file = Path(spec.path)
            if not file.is_absolute():
                file = self.s.base_dir / file
            try:
                cls = FMUComponent.subclass(file, measured=spec.measured)
            except FMUError as exc:
                text = str(exc)
                key = "measured" if "measured names no input or output" in text else "path"
                self.add(f"{path}.{key}", text)
                self.broken.add(cname)
                continue
            declared = {p.name: p for p in cls.parameters}
            for pname, value in spec.parameters.items():
                param = declared.get(pname)
                if param is None:
                    self.add(f"{path}.parameters.{pname}", "unknown parameter; expected one of "
                             + (", ".join(declared) or "none"))
                elif not param.contains(value):
                    self.add(f"{path}.parameters.{pname}",
                             f"expected a value in {param.bounds_text()}, found {value!r}")
            self.stages[cname] = cls

    def _connections(self) -> None:
        """Endpoints exist (output -> input), units match, each input fed once, no undelayed cycle."""
        fed = {c.target: str(c.source) for c in self.wiring}
        valid: list[Connection] = []
        for i, spec in enumerate(self.s.connections):
            index = self.connection_index[i] if self.connection_index is not None else i
            path = f"connections[{index}]"
            conn = Connection(spec.source, spec.target, delayed=spec.delayed)
            try:
                ends = {split_signal(conn.source)[0], split_signal(conn.target)[0]}
            except WiringError:
                ends = set()
            if ends & self.broken:
                continue
            found = check_connection(self.stages, conn)
            for problem in found:
                self.add(path, problem)
            if conn.target in fed:
                self.add(path, f"{conn.target} is already fed by {fed[conn.target]}; expected "
                         "each input fed once")
                continue
            fed[conn.target] = conn.source
            if not found:
                valid.append(conn)
                self.fed[conn.target] = conn.source
        if len(valid) == len(self.s.connections):
            try:
                Graph(self.stages, self.wiring + valid)
            except WiringError as exc:
                self.add("connections", str(exc).removeprefix("wiring rejected:\n").strip()
                         .removeprefix("- "))

    def _models(self) -> None:
        """Every chosen model loads, its inputs are fed, its card agrees with its use."""
        if not self.s.has_plant:
            return
        try:
            load_models(self.s, keep=True)
        except ScenarioError as exc:
            self.problems += exc.problems

    def _timing(self) -> None:
        """Whole steps, a bounded number of them, a finite end, a recording that fits."""
        s = self.s
        ratio = s.duration / s.step
        if not math.isfinite(s.end):
            self.add("duration", f"expected the run to end at a finite time, found start "
                     f"{s.start:g} s + duration {s.duration:g} s")
            self.timing = False
            return
        if not ratio <= MAX_STEPS:
            self.add("duration", f"expected at most {MAX_STEPS:,} steps, found {ratio:.3g} steps "
                     f"of {s.step:g} s in {s.duration:g} s")
            self.timing = False
            return
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio) or round(ratio) < 1:
            self.add("duration", f"expected a whole number of steps of {s.step:g} s, found "
                     f"{s.duration:g} s ({ratio:g} steps)")
            return
        steps, every = s.steps, s.record.every
        if every > steps or steps % every:
            self.add("record.every", f"expected a divisor of the run's {steps:,} steps (so the "
                     f"last row is the end of the run), found {every:,}")
        rows = steps // every + 1
        if s.record.signals == "all":
            n_signals = len(self.outputs) + len(set(self.ports) - set(self.fed))
        else:
            n_signals = len(s.record.signals)
        if rows * n_signals * 8 > MAX_RECORD_BYTES:
            self.add("record", f"{rows:,} rows of {n_signals} signals would take "
                     f"{rows * n_signals * 8 / 2**30:.0f} GiB; expected at most "
                     f"{MAX_RECORD_BYTES / 2**30:.0f} GiB: raise record.every or record fewer signals")

    def _plant(self) -> None:
        if self.s.plant is False:  # not has_plant, spelled so that the type narrows
            return
        for cname, params in self.s.plant.items():
            cls = STAGES.get(cname)
            if cls is None:
                self.add(f"plant.{cname}", f"unknown component; expected one of {', '.join(STAGES)}")
                continue
            declared = {p.name: p for p in cls.parameters}
            for pname, value in params.items():
                spec = declared.get(pname)
                if spec is None:
                    self.add(f"plant.{cname}.{pname}", "unknown parameter; expected one of "
                             + ", ".join(declared))
                elif not spec.contains(value):
                    self.add(f"plant.{cname}.{pname}", f"expected a value in {spec.bounds_text()}, "
                             f"found {value!r}")

    def _target(self, path: str, name: str) -> Any:
        target = resolve_input(name)
        port = self.ports.get(target)
        if port is None and target.partition(".")[0] in self.broken:
            return None
        if port is None:
            self.add(path, f"unknown input {name!r}; expected one of {', '.join(INPUTS)} "
                     "(or component.port of an unconnected input)")
            return None
        if target in self.fed:
            self.add(path, f"{target} is fed by another component ({self.fed[target]}) and "
                     "cannot be driven")
            return None
        return port

    def _on_grid(self, path: str, t: float) -> None:
        """Event times: on the step grid, at or after the start and before the end.

        An event at the end time would never apply (no step follows it).
        """
        if not self.timing:
            return
        s = self.s
        if not (s.start <= t < s.end):
            self.add(path, f"expected a time within [{s.start:g}, {s.end:g}) s, found {t:g}")
            return
        k = (t - s.start) / s.step
        if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
            self.add(path, f"expected a multiple of the step ({s.step:g} s) from the start, found {t:g}")

    def _values(self, path: str, port: Any, values: list[tuple[str, float]],
                unit: str | None = None) -> None:
        """Each value (in ``unit``, else the port's) within the port's bounds."""
        convert = converter(unit, port.unit) if unit is not None else None
        for where, value in values:
            inside = convert(value) if convert is not None else value
            if not port.contains(inside):
                shown = repr(value) if convert is None or unit == port.unit else (
                    f"{value!r} {unit} ({inside:g} {port.unit})")
                self.add(f"{path}{where}", f"expected a value in {port.bounds_text()}, found {shown}")

    def _unit(self, path: str, port: Any, unit: str | None) -> bool:
        """Whether ``unit`` (if given) converts to the port's unit; a problem if it does not."""
        if unit is None:
            return True
        try:
            converter(unit, port.unit)
        except UnitError as exc:
            self.add(f"{path}.unit", f"expected a unit convertible to {port.unit!r} (the "
                     f"signal's unit), found {unit!r}: {exc}")
            return False
        if unit != port.unit:
            self.port_units[path] = port.unit
        return True

    def _limit(self, path: str, name: str, limit: Any) -> None:
        """A known signal, a unit that converts to its own, and low <= high (both converted)."""
        port = self.outputs.get(name) or self.ports.get(name)
        if port is None:
            if name.partition(".")[0] not in self.broken:
                near = difflib.get_close_matches(name, [*self.outputs, *self.ports], n=3)
                hint = (f" (did you mean {', '.join(near)}?)" if near else "")
                if name.partition(".")[0] in SUPPLY_CLASSES and self.s.supply is None:
                    hint = " (the supply's signals need a supply: section)"
                self.add(path, f"unknown signal {name!r}; expected component.port{hint}")
            if limit.unit is not None:
                return
        elif not self._unit(path, port, limit.unit):
            return
        convert = converter(limit.unit, port.unit) if port is not None and limit.unit else float
        if limit.low is not None and limit.high is not None and \
                convert(limit.low) > convert(limit.high):
            self.add(path, f"expected low <= high, found low {limit.low:g} "
                     f"above high {limit.high:g}")

    def _steps(self, path: str, port: Any, steps: list[tuple[float, float]],
               unit: str | None = None) -> None:
        times = [t for t, _ in steps]
        for i, (a, b) in enumerate(pairwise(times)):
            if b <= a:
                self.add(f"{path}[{i + 1}]", f"expected a time after {a:g} s, found {b:g}")
        self._values(path, port, [(f"[{i}]", v) for i, (_, v) in enumerate(steps)], unit)

    def _covers(self, path: str, table: Table, lo: float, hi: float, offset: float = 0.0,
                what: str = "the run") -> None:
        """A CSV table without ``hold`` must cover ``[lo, hi]`` (table time + ``offset``)."""
        if not self.timing or table.hold:
            return
        first, last = table.times[0] + offset, table.times[-1] + offset
        if first > lo or last < hi:
            self.add(path, f"expected the table to cover {what} [{lo:g}, {hi:g}] s, found "
                     f"[{first:g}, {last:g}] s (set hold: true to hold the end values)")

    def _input(self, path: str, name: str, spec: InputSpec) -> None:
        port = self._target(path, name)
        if port is None or not self._unit(path, port, spec.unit):
            return
        unit = spec.unit
        if spec.constant is not None:
            self._values(path + ".constant", port, [("", spec.constant)], unit)
        elif spec.steps is not None:
            self._steps(path + ".steps", port, spec.steps, unit)
        elif spec.ramp is not None:
            r = spec.ramp
            self._values(path + ".ramp", port, [(".from", r.initial), (".to", r.to)], unit)
        elif spec.csv is not None:  # the schema lets exactly one kind through
            table = self._csv(path + ".csv", port, spec.csv, unit)
            if table is not None:
                self._covers(path + ".csv", table, self.s.start, self.s.end)

    def _csv(self, path: str, port: Any, spec: CsvSpec, unit: str | None = None) -> Table | None:
        file = Path(spec.path)
        if not file.is_absolute():
            file = self.s.base_dir / file
        try:
            times, values, lines = _read_csv(file, spec.time_column, spec.column)
        except ScenarioError as exc:
            self.add(path, "; ".join(exc.problems))
            return None
        self._values(f"{path} ({file.name}", port,
                     [(f" line {line}, column {spec.column!r})", v)
                      for line, v in zip(lines, values, strict=True)], unit)
        return Table(tuple(times), tuple(values), spec.interpolation, spec.hold)

    #: the only value fields that each kind of sensor fault uses
    _SENSOR_FIELDS = {"sensor_drift": {"rate"}, "sensor_bias": {"offset"},
                      "sensor_noise": {"std"}, "sensor_freeze": set(), "sensor_clear": set()}

    def _event(self, path: str, event: Any) -> None:
        self._on_grid(path + ".at", event.at)
        if isinstance(event, (SetEvent, RampEvent, ProfileEvent)):
            self._input_event(path, event)
        elif isinstance(event, ParameterEvent):
            self._parameter_event(path, event)
        elif isinstance(event, (PumpEvent, SupplyDropEvent, PlainFaultEvent)):
            if not self.s.has_plant:
                self.add(path + ".type", f"{event.type} acts on the plant, and this scenario "
                         "has none (plant: false)")
        elif isinstance(event, SensorEvent):
            self._sensor_event(path, event)

    def _input_event(self, path: str, event: SetEvent | RampEvent | ProfileEvent) -> None:
        """The target is a drivable input; values, unit and CSV coverage fit it."""
        port = self._target(path + ".target", event.target)
        if port is None or not self._unit(path, port, event.unit):
            return
        if isinstance(event, SetEvent):
            self._values(path + ".value", port, [("", event.value)], event.unit)
        elif isinstance(event, RampEvent):
            self._values(path + ".to", port, [("", event.to)], event.unit)
        elif event.steps is not None:
            self._steps(path + ".steps", port, event.steps, event.unit)
        elif event.csv is not None:  # the schema lets exactly one of steps, csv through
            table = self._csv(path + ".csv", port, event.csv, event.unit)
            if table is not None:  # the table's time 0 is the event time
                self._covers(path + ".csv", table, event.at, self.s.end, offset=event.at,
                             what="the run from the event on")

    def _parameter_event(self, path: str, event: ParameterEvent) -> None:
        """The target is a known, tunable parameter and the value is within its bounds."""
        cname, _, pname = event.target.partition(".")
        cls = self.stages.get(cname)
        spec = next((p for p in cls.parameters if p.name == pname), None) if cls else None
        if cname in self.broken:
            return
        if spec is None:
            self.add(path + ".target",
                     f"unknown parameter {event.target!r}; expected component.parameter")
        elif not spec.tunable:
            tunable = [f"{c}.{p.name}" for c, k in self.stages.items() for p in k.parameters
                       if p.tunable]
            self.add(path + ".target", f"{event.target} cannot change during a run; "
                     f"tunable: {', '.join(tunable)}")
        elif not spec.contains(event.value):
            self.add(path + ".value",
                     f"expected a value in {spec.bounds_text()}, found {event.value!r}")

    def _sensor_event(self, path: str, event: SensorEvent) -> None:
        """The target is a measured output; only the value fields of its kind are given."""
        port = self.outputs.get(event.target)
        if port is None and event.target.partition(".")[0] in self.broken:
            pass
        elif port is None or not port.measured:
            measured = [n for n, p in self.outputs.items() if p.measured]
            self.add(path + ".target", f"expected a measured signal ({', '.join(measured)}), "
                     f"found {event.target!r}")
        allowed = self._SENSOR_FIELDS[event.type]
        for key in sorted({"rate", "offset", "std"} & event.model_fields_set - allowed):
            self.add(f"{path}.{key}", f"unknown key for {event.type} (it takes "
                     f"{', '.join(sorted(allowed)) or 'no value'})")

    def _record(self) -> None:
        names = list(self.outputs) + [n for n in self.ports if n not in self.fed]
        for i, pattern in enumerate(self.s.record.signals):
            if pattern.partition(".")[0] in self.broken:
                continue
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                self.add(f"record.signals[{i}]", f"expected a signal name or pattern that matches "
                         f"a signal, found {pattern!r}")

    # -- controllers: and case: (co2twin.controllers, co2twin.control) ---------------------
    def _controllers(self) -> None:
        """Each controller planned against the plant and the components (co2twin.controllers);
        those that plan join the stages, ports and wiring, so every other check sees them."""
        s = self.s
        driven = [resolve_input(n) for n in s.inputs] + [c.target for c in s.connections]
        plans, problems = plan_controllers(
            s.controllers, self.stages, has_plant=s.has_plant,
            fed={c.target: c.source for c in self.wiring}, base_dir=s.base_dir, driven=driven)
        for path, text in problems:
            self.add(f"controllers.{path}", text)
        for name, plan in plans.items():
            if plan.cls is None:
                self.broken.add(name)
                continue
            self._join(name, plan)
        if s.case is not None:
            self._case(s.case)

    def _join(self, name: str, plan: Plan) -> None:
        """A planned controller's class, ports and wiring join the scenario's; its profiles fit."""
        assert plan.cls is not None
        self.stages[name] = plan.cls
        self.ports.update({f"{name}.{p.name}": p for p in plan.cls.inputs})
        self.outputs.update({f"{name}.{p.name}": p for p in plan.cls.outputs})
        self.wiring += plan.wires
        self._control_profiles(f"controllers.{name}", plan)

    def _control_profiles(self, path: str, plan: Plan) -> None:
        assert plan.cls is not None
        for signal, (where, spec) in plan.drives.items():
            port = plan.cls.input_port(signal.partition(".")[2])
            self._profile(f"{path}.{where}", port, spec)

    def _profile(self, path: str, port: Port, spec: InputSpec) -> None:
        """A profile that drives ``port`` (not a scenario input): values, unit, CSV coverage."""
        if not self._unit(path, port, spec.unit):
            return
        if spec.constant is not None:
            self._values(path + ".constant", port, [("", spec.constant)], spec.unit)
        elif spec.steps is not None:
            self._steps(path + ".steps", port, spec.steps, spec.unit)
        elif spec.ramp is not None:
            r = spec.ramp
            self._values(path + ".ramp", port, [(".from", r.initial), (".to", r.to)], spec.unit)
        elif spec.csv is not None:
            table = self._csv(path + ".csv", port, spec.csv, spec.unit)
            if table is not None:
                self._covers(path + ".csv", table, self.s.start, self.s.end)

    def _case(self, case: CaseSpec) -> None:
        """A test case: its signals exist, its actuators are free, its controllers plan and keep
        to the signals the case allows, its thresholds have what they need."""
        s = self.s
        measured = {n for n, p in self.outputs.items() if p.measured}
        for i, signal in enumerate(case.measurements):
            if signal not in measured:
                self.add(f"case.measurements[{i}]", f"expected a measured signal "
                         f"({', '.join(sorted(measured))}), found {signal!r}")
        actuators = self._case_actuators(case)
        for signal, spec in case.setpoints.items():
            port = self.outputs.get(signal)
            if signal not in measured or port is None:
                self.add(f"case.setpoints.{signal}", f"expected a measured signal "
                         f"({', '.join(sorted(measured))}), found {signal!r}")
            else:
                self._profile(f"case.setpoints.{signal}", port, spec)
        for signal, limit in case.constraints.items():
            self._limit(f"case.constraints.{signal}", signal, limit)
        if case.price is not None:
            self._profile("case.price", Port("price", "1", description="price per kWh"), case.price)
        for name, dist in case.disturbances.items():
            for j, inp in enumerate(dist.inputs):
                if inp not in s.inputs:
                    self.add(f"case.disturbances.{name}.inputs[{j}]", f"expected one of the "
                             f"scenario's inputs ({', '.join(s.inputs) or 'none'}), found {inp!r}")
            for j, index in enumerate(dist.events):
                if index >= len(s.events):
                    self.add(f"case.disturbances.{name}.events[{j}]", f"expected the index of an "
                             f"event (0 to {len(s.events) - 1}), found {index}")
        self._thresholds(case)
        self._case_controllers(case, set(case.measurements), set(actuators))

    def _case_actuators(self, case: CaseSpec) -> list[str]:
        """The inputs the case's actuators name; each free: fed by nothing, driven by no input
        or event of the scenario (the controller under test drives it)."""
        s = self.s
        actuators = [actuator_target(a, s.has_plant) for a in case.actuators]
        by_input = {resolve_input(n): n for n in s.inputs}
        by_event = {resolve_input(e.target): i for i, e in enumerate(s.events)
                    if isinstance(e, (SetEvent, RampEvent, ProfileEvent))}
        fed = {c.target: c.source for c in self.wiring}
        for i, (name, target) in enumerate(zip(case.actuators, actuators, strict=True)):
            path = f"case.actuators[{i}]"
            if target not in self.ports:
                self.add(path, f"unknown input {name!r}; expected one of {', '.join(INPUTS)} "
                         "(or component.port of an input)")
            elif target in fed:
                self.add(path, f"{target} is fed by {fed[target]}; a test case's actuators are "
                         "free for the controller under test")
            elif target in by_input:
                self.add(path, f"{target} is driven by inputs.{by_input[target]}; a test case "
                         "leaves its actuators to the controller (remove that input: without a "
                         "controller the input's start value holds)")
            elif target in by_event:
                self.add(path, f"{target} is set by events[{by_event[target]}]; a test case "
                         "leaves its actuators to the controller")
        return actuators

    def _thresholds(self, case: CaseSpec) -> None:
        supply = (self.s.supply is not None or self.supply_failed,
                  "a supply (the scenario's supply: section)")
        needs = {"energy_cost": (case.price is not None, "a price (case.price)"),
                 "grid_cost": supply, "solar_fraction": supply,
                 "time_outside_s": (bool(case.constraints), "constraints (case.constraints)"),
                 "integral_outside": (bool(case.constraints), "constraints (case.constraints)")}
        for kpi in ("tracking_iae", "tracking_ise", "overshoot_pct", "settling_time_s"):
            needs[kpi] = (bool(case.setpoints), "set points (case.setpoints)")
        for kpi, bound in case.kpis.items():
            has, what = needs.get(kpi, (True, ""))
            if not has:
                self.add(f"case.kpis.{kpi}", f"this KPI needs {what}, and the case has none")
            if bound.min is not None and bound.max is not None and bound.min > bound.max:
                self.add(f"case.kpis.{kpi}", f"expected min <= max, found min {bound.min:g} above "
                         f"max {bound.max:g}")
        for goal in (case.objective.minimise, case.objective.maximise):
            if goal is not None and not needs.get(goal, (True, ""))[0]:
                self.add("case.objective", f"{goal} needs {needs[goal][1]}, and the case has none")

    def _case_controllers(self, case: CaseSpec, allowed: set[str], actuators: set[str]) -> None:
        """Each shipped controller plans (with the case's set points) and keeps to the case."""
        s = self.s
        driven = [resolve_input(n) for n in s.inputs] + [c.target for c in s.connections]
        fed = {c.target: c.source for c in self.wiring}
        for name, shipped in case.controllers.items():
            path = f"case.controllers.{name}"
            spec = with_case_setpoints(shipped, case)
            plans, problems = plan_controllers({name: spec}, self.stages, has_plant=s.has_plant,
                                               fed=fed, base_dir=s.base_dir, driven=driven)
            for where, text in problems:
                self.add(f"case.controllers.{where}", text)
            plan = plans.get(name)
            if plan is None:
                continue
            for signal in plan.reads:
                if signal not in allowed:
                    self.add(path, f"reads {signal}, which the case does not allow; allowed "
                             f"measurements: {', '.join(sorted(allowed))}")
            for target in plan.writes:
                if target not in actuators:
                    self.add(path, f"drives {target}, which the case does not allow; allowed "
                             f"actuators: {', '.join(sorted(actuators))}")
            if plan.cls is not None:
                self._control_profiles(path, plan)
        for name in case.expected:
            if name not in case.controllers:
                self.add(f"case.expected.{name}", f"expected one of the case's controllers "
                         f"({', '.join(case.controllers)}), found {name!r}")


def read_csv_profile(path: Path, time_column: str, column: str) -> tuple[list[float], list[float]]:
    """Read two numeric columns of a CSV profile; every problem raises :class:`ScenarioError`.

    Problems name the file and the line (as a text editor counts them).
    """
    times, values, _ = _read_csv(path, time_column, column)
    return times, values


def _read_csv(path: Path, time_column: str, column: str) -> tuple[list[float], list[float], list[int]]:
    """:func:`read_csv_profile`, plus the line number of each row."""
    try:
        if not path.exists():
            raise ScenarioError(f"expected a CSV file, found nothing at {str(path)!r}")
        if not path.is_file():
            raise ScenarioError(f"expected a CSV file, found something else at {str(path)!r}")
        # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in (time_column, column) if c not in header]
            if missing:
                raise ScenarioError(
                    f"{path.name}: expected column(s) {', '.join(map(repr, missing))}, "
                    f"found columns: {', '.join(map(repr, header)) or 'none'}{_delimiter_hint(header)}"
                )
            times: list[float] = []
            values: list[float] = []
            lines: list[int] = []
            for row in reader:
                line = reader.line_num
                for col, out in ((time_column, times), (column, values)):
                    cell = row[col]
                    try:
                        number = float(cell)
                    except (TypeError, ValueError):
                        shown = "a missing cell" if cell is None else repr(cell)
                        raise ScenarioError(
                            f"{path.name} line {line}, column {col!r}: expected a number, "
                            f"found {shown}"
                        ) from None
                    if not math.isfinite(number):
                        raise ScenarioError(
                            f"{path.name} line {line}, column {col!r}: expected a finite "
                            f"number, found {cell!r}"
                        )
                    out.append(number)
                lines.append(line)
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path.name}: expected UTF-8 text, found byte {exc.object[exc.start]:#04x} "
            f"at offset {exc.start}") from None
    except csv.Error as exc:
        raise ScenarioError(f"{path.name}: expected a CSV file, found malformed CSV ({exc})") from None
    except OSError as exc:
        raise ScenarioError(f"{path.name}: cannot read the file ({exc.strerror or exc})") from None
    if not times:
        raise ScenarioError(f"{path.name}: expected at least one data row, found none")
    for line, (a, b) in zip(lines[1:], pairwise(times), strict=True):
        if b <= a:
            raise ScenarioError(
                f"{path.name} line {line}, column {time_column!r}: expected a time after "
                f"{a:g}, found {b:g}")
    return times, values, lines


def _delimiter_hint(header: Sequence[str]) -> str:
    """A hint when the header read as one column holds another delimiter (spreadsheets in
    many locales write ';', with ',' as the decimal mark)."""
    if len(header) != 1:
        return ""
    for delimiter, name in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
        if delimiter in header[0]:
            return (f"; the file seems to use {name} as delimiter; co2twin reads ',' (comma-"
                    "separated values with '.' as the decimal mark): export it as such")
    return ""
