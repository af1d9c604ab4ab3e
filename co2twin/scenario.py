"""Scenario files: YAML in, a validated :class:`Scenario` out, then a run.

Loading never executes anything from the file (safe YAML, no Python tags),
rejects duplicate keys and unknown keys, and gathers every problem into one
:class:`~cosim.errors.ScenarioError` whose lines name the file, the YAML path
(``inputs.current.steps[2]``), what was expected and what was found.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar
from collections.abc import Callable, Mapping

import yaml
from pydantic import ValidationError

from components.plant import FAULTS, LIMITS, build_plant, resolve_input

from cosim.errors import FMUError, ScenarioError, SimulationError, WiringError
from cosim.events import (
    Event,
    RampInput,
    SensorFault,
    SetInput,
    SetParameter,
    SwitchProfile,
)
from cosim.graph import Connection
from cosim.profiles import Constant, Profile, Ramp, Steps, Table
from cosim.units import converter
from .controllers import build_controllers
from .kpi import limit_rows
from .scenario_checks import Semantics, read_csv_profile
from .surrogates import models_for_build
from .supply import attach_supply, redirect_current
from .scenario_schema import (
    CONTROLLER_TYPES,
    NOT_IN_FILES,
    PLANT_TAGS,
    CsvSpec,
    EventSpec,
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
    keys_at,
    unknown_key,
)
from cosim.simulation import Simulation

__all__ = ["Scenario", "add_derived_columns", "add_limit_flags", "build", "envelopes", "json_schema",
           "load_scenario", "parse_scenario", "run", "run_attrs", "shorten_paths", "validate"]

_T = TypeVar("_T")

MAX_FILE_BYTES = 5_000_000
MAX_YAML_NODES = 200_000


# -- loading ------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and documents that expand too far.

    Every duplicate key of the document is gathered in ``duplicates`` (one line
    each, with where the key first appeared), so all of them are reported at once.
    Numbers in exponent form without a dot (``1e5``, ``1e999``) are numbers, as
    in YAML 1.2, not text: ``1e999`` is then rejected as "not finite" rather than
    as "not a number".
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, int, str]] = []  # (line, column, problem)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *anchor`` merges; explicit keys may override merged ones
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable mapping key {key!r}", key_node.start_mark
                ) from None
            if first is not None:
                mark = key_node.start_mark
                self.duplicates.append((mark.line, mark.column,
                    f"line {mark.line + 1}, column {mark.column + 1}: expected each key once, "
                    f"found {key!r} again (duplicate key; first at line {first.line + 1})"))
                continue
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _count_nodes(node: Any, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ScenarioError(
            f"expected at most {MAX_YAML_NODES:,} YAML nodes, found a document that expands "
            "to more (aliases of aliases?)"
        )
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            _count_nodes(child, budget)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _count_nodes(key, budget)
            _count_nodes(value, budget)


def _read_yaml(text: str, source: str, duplicates: list[str] | None = None) -> Any:
    """The data of YAML ``text`` (safe; ``source`` names it in errors).

    A key given twice is an error: with ``duplicates`` (a list) its lines are added there
    and the data returned (the later value kept), so that the caller reports them with the
    file's other problems; without, they are raised at once.
    """
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _count_nodes(node, [MAX_YAML_NODES])
            data = loader.construct_document(node)
            found = [text for *_, text in sorted(loader.duplicates)]
            if found and duplicates is None:
                raise ScenarioError(found, source)
            if duplicates is not None:
                duplicates += found
            return data
        finally:
            loader.dispose()
    except ScenarioError as exc:
        raise ScenarioError(exc.problems, source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or str(exc)
        tag = re.search(r"could not determine a constructor for the tag '([^']*)'", problem)
        if tag:
            shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise ScenarioError(
                f"{where}expected plain YAML data, found the tag {shown!r} "
                "(tags that construct objects are not allowed)", source) from None
        if "duplicate key" in problem:
            raise ScenarioError(f"{where}{problem}", source) from None
        raise ScenarioError(f"{where}invalid YAML: {problem}", source) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"invalid YAML: {exc}", source) from None
    except RecursionError:
        raise ScenarioError("invalid YAML: expected nesting a few hundred levels deep at most, "
                            "found deeper nesting or an alias that contains itself", source) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file; raise :class:`ScenarioError` on any problem."""
    path = Path(path)
    source = str(path)
    try:
        if not path.exists():
            raise ScenarioError("no such file", source)
        if not path.is_file():
            raise ScenarioError("not a regular file, expected a YAML file", source)
        size = path.stat().st_size
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc.strerror or exc})", source) from None
    if size > MAX_FILE_BYTES:
        raise ScenarioError(
            f"file is {size:,} bytes; a scenario is at most {MAX_FILE_BYTES:,} bytes", source
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc.strerror or exc})", source) from None
    if b"\x00" in raw:
        raise ScenarioError(
            f"expected a YAML text file, found binary data (a NUL byte at offset {raw.index(0)})",
            source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"expected a YAML file in UTF-8, found byte {raw[exc.start]:#04x} at offset "
            f"{exc.start} that is not UTF-8", source) from None
    duplicates: list[str] = []
    data = _read_yaml(text, source, duplicates)
    return _with_duplicates(duplicates, lambda: parse_scenario(data, source=source,
                                                              base_dir=path.parent), source)


def _with_duplicates(duplicates: list[str], parse: Callable[[], _T], source: str) -> _T:
    """``parse()``'s result; when the file repeated keys, a :class:`ScenarioError` listing the
    duplicates and every problem ``parse`` finds in the rest of the file."""
    if not duplicates:
        return parse()
    try:
        parse()
    except ScenarioError as exc:
        raise ScenarioError([*duplicates, *exc.problems], source) from None
    raise ScenarioError(duplicates, source)


def parse_scenario(
    data: Any, *, source: str = "<scenario>", base_dir: str | Path = "."
) -> Scenario:
    """Validate already-parsed data (a mapping) as a scenario.

    Every problem is reported at once: when part of the file fails the schema,
    the parts that passed are still checked against the plant.
    """
    if data is None:
        raise ScenarioError("expected a mapping with name, duration, step, found an empty document",
                            source)
    if not isinstance(data, Mapping):
        raise ScenarioError(
            f"expected a mapping (name: ..., duration: ..., step: ...) at the top level, "
            f"found {_kind(data)}",
            source,
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ScenarioError(f"expected text keys at the top level, found {bad_keys[0]!r}", source)
    problems: list[str] = []
    data = dict(data)
    for key in NOT_IN_FILES:  # fields of Scenario that come from the loader, not the file
        if key in data:
            problems.append(unknown_key(key, key, _file_keys(())))
            del data[key]
    extra = {"base_dir": Path(base_dir), "source": source}
    try:
        scenario = Scenario.model_validate({**data, **extra})
    except ValidationError as exc:
        errors = [_untagged(_with_keys(err)) for err in exc.errors()]
        problems += [_describe(err) for err in errors]
        partial, timing, index = _without_errors(data, errors)
        rest: Scenario | None
        try:
            rest = Scenario.model_validate({**partial, **extra})
        except ValidationError:
            rest = None
        if rest is not None:
            problems += Semantics(rest, timing=timing, event_index=index["events"],
                                  connection_index=index["connections"],
                                  supply_failed="supply" in data and "supply" not in partial).check()
        raise ScenarioError(problems, source) from None
    semantics = Semantics(scenario)
    problems += semantics.check()
    if problems:
        raise ScenarioError(problems, source)
    return _in_port_units(scenario, semantics.port_units)


def _in_port_units(scenario: Scenario, units: Mapping[str, str]) -> Scenario:
    """The scenario with every value that came with a ``unit:`` converted to its signal's unit.

    ``units``: YAML path (``inputs.gas_flow``, ``events[2]``, ``limits.x.y``) -> the
    signal's unit, for the values the checks found convertible. CSV profiles keep
    their unit here: their values are read, and converted, when the run is built.
    """
    if not units:
        return scenario
    inputs = {name: _converted(spec, units.get(f"inputs.{name}"))
              for name, spec in scenario.inputs.items()}
    events = [_converted(event, units.get(f"events[{i}]"))
              for i, event in enumerate(scenario.events)]
    limits = {name: _converted(spec, units.get(f"limits.{name}"))
              for name, spec in scenario.limits.items()}
    return scenario.model_copy(update={"inputs": inputs, "events": events, "limits": limits})


def _converted(spec: Any, to: str | None) -> Any:
    """``spec`` (an input, event or limit) with its values in unit ``to``."""
    if to is None or spec.unit is None or getattr(spec, "csv", None) is not None:
        return spec
    convert = converter(spec.unit, to)
    update: dict[str, Any] = {"unit": to}
    for field in ("constant", "value", "to", "low", "high"):
        if getattr(spec, field, None) is not None:
            update[field] = convert(getattr(spec, field))
    if getattr(spec, "steps", None) is not None:
        update["steps"] = [(t, convert(v)) for t, v in spec.steps]
    ramp = getattr(spec, "ramp", None)
    if ramp is not None:
        update["ramp"] = ramp.model_copy(update={"initial": convert(ramp.initial),
                                                 "to": convert(ramp.to)})
    return spec.model_copy(update=update)


def _file_keys(loc: tuple[Any, ...]) -> list[str] | None:
    """The keys a scenario file may give at ``loc`` (pydantic's, union tags included)."""
    keys = keys_at(Scenario, loc)
    return [k for k in keys if k not in NOT_IN_FILES] if keys is not None and not loc else keys


def _with_keys(err: Any) -> Any:
    """An unknown key's error with the keys taken at its place (``ctx["expected"]``), found
    while its location still has the tags that say which kind of event or controller it is."""
    if err["type"] != "extra_forbidden":
        return err
    keys = _file_keys(tuple(err["loc"])[:-1])
    return {**err, "ctx": {**(err.get("ctx") or {}), "expected": keys}}


def _untagged(err: Any) -> Any:
    """The error without the tag of ``plant``'s union in its location."""
    loc = tuple(err["loc"])
    if len(loc) >= 2 and loc[0] == "plant" and loc[1] in PLANT_TAGS:
        return {**err, "loc": loc[:1] + loc[2:]}
    # a controller's type tag (controllers.x.pid.gains -> controllers.x.gains)
    head = 1 if loc[:1] == ("controllers",) else 2 if loc[:2] == ("case", "controllers") else 0
    if head and len(loc) > head + 2 and loc[head + 1] in CONTROLLER_TYPES:
        return {**err, "loc": loc[:head + 1] + loc[head + 2:]}
    return err


_SECTIONS = ("inputs", "plant", "limits", "rates", "models", "components", "controllers", "supply")
_LISTS = ("events", "connections")
_TIMING = ("start", "duration", "step")


def _without_errors(
    data: dict[str, Any], errors: list[Mapping[str, Any]]
) -> tuple[dict[str, Any], bool, dict[str, list[int]]]:
    """``data`` without the entries that failed the schema, so the rest can still be checked.

    Returns the pruned data, whether the run's timing (start, duration, step)
    is trustworthy, and the original index of each event and connection kept.
    """
    data = dict(data)
    copied: set[str] = set()
    dropped: dict[str, set[int]] = {key: set() for key in _LISTS}
    timing = True
    for err in errors:
        loc = tuple(err["loc"])
        if not loc:
            continue
        head = loc[0]
        if head in _TIMING:
            timing = False
        section = data.get(head)
        if head in _SECTIONS and len(loc) >= 2 and isinstance(section, Mapping):
            if head not in copied:  # copied once, so the caller's data stays as it was
                data[head] = {
                    k: dict(v) if isinstance(v, Mapping) else v for k, v in section.items()
                }
                copied.add(head)
            own: dict[Any, Any] = data[head]
            inner = own.get(loc[1])
            if (head == "plant" and len(loc) >= 3 and isinstance(inner, dict)
                    and loc[2] != "[key]" and loc[2] in inner):
                del inner[loc[2]]
            else:
                own.pop(loc[1], None)
        elif head in _LISTS and len(loc) >= 2 and isinstance(loc[1], int) \
                and isinstance(section, list):
            dropped[head].add(loc[1])
        else:
            data.pop(head, None)
    index: dict[str, list[int]] = {key: [] for key in _LISTS}
    for key in _LISTS:
        if isinstance(data.get(key), list):
            index[key] = [i for i in range(len(data[key])) if i not in dropped[key]]
            data[key] = [data[key][i] for i in index[key]]
    data.setdefault("name", "?")
    if not timing or "duration" not in data or "step" not in data:
        timing = False
        data.update(start=0.0, duration=1.0, step=1.0)
    return data, timing, index


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {value[:40]!r}"
    return f"{type(value).__name__} {value!r}"[:80]


def _path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and part.startswith("function-"):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


_MAPPING_TYPES = ("dict_type", "model_type", "model_attributes_type")

#: pydantic error type -> our message; fields: ``where``, ``found`` and the error's context
_MESSAGES = {
    "missing": "{where}: required key missing",
    "union_tag_not_found": "{where}.type: required key missing (it says which kind of event this is)",
    **dict.fromkeys(_MAPPING_TYPES, "{where}: expected a mapping, found {found}"),
    "list_type": "{where}: expected a list, found {found}",
    "tuple_type": "{where}: expected a list, found {found}",
    "too_short": "{where}: expected at least {min_length} item(s), found {actual_length}: {found}",
    "too_long": "{where}: expected at most {max_length} item(s), found {actual_length}: {found}",
    "string_too_short": "{where}: expected text of at least {min_length} character(s), found {found}",
    "string_too_long": "{where}: expected text of at most {max_length} characters, found {found}",
}


class _Fields(dict[str, Any]):
    """Fields of a message; a context entry pydantic did not give reads as None."""

    def __missing__(self, key: str) -> None:
        return None


def _describe(err: Mapping[str, Any]) -> str:
    loc = tuple(err["loc"])
    if len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int) and len(loc) > 2:
        loc = loc[:2] + loc[3:]  # drop the discriminator tag pydantic inserts
    kind = err["type"]
    ctx = err.get("ctx") or {}
    found = err.get("input")
    where = _path(loc)
    if loc and loc[-1] == "[key]":  # a mapping key failed, e.g. an empty input name
        where, found = f"{_path(loc[:-2])} (a key)", loc[-2]
    if kind == "extra_forbidden":
        return unknown_key(where, loc[-1] if loc else "", ctx.get("expected"))
    if kind == "union_tag_invalid":
        tag = found.get("type") if isinstance(found, Mapping) else found
        return f"{where}.type: expected one of {ctx.get('expected_tags', '?')}, found {_shown(tag)}"
    if kind in _MAPPING_TYPES and loc == ("plant",):
        return (f"{where}: expected a mapping of parameter overrides, or false for no "
                f"plant, found {_shown(found)}")
    if kind in _MESSAGES:
        return _MESSAGES[kind].format_map(_Fields(ctx, where=where, found=_shown(found)))
    msg = err["msg"]
    msg = re.sub(r"^(Input should be |Value error, |Assertion failed, )", "expected ", msg).strip()
    if not msg.startswith("expected"):
        msg = f"expected {msg[0].lower()}{msg[1:]}" if msg else "expected a valid value"
    return f"{where}: {msg}, found {_shown(found)}"


# -- from scenario to simulation ----------------------------------------------------------
def _profile(scenario: Scenario, spec: InputSpec | ProfileEvent, unit: str | None = None) -> Profile:
    """The profile of an input or a profile event (the schema lets exactly one kind through).

    ``unit``: the driven port's, which a CSV profile's values are converted to.
    """
    if isinstance(spec, InputSpec) and spec.constant is not None:
        return Constant(spec.constant)
    if spec.steps is not None:
        return Steps(tuple(spec.steps))
    if isinstance(spec, InputSpec) and spec.ramp is not None:
        r = spec.ramp
        return Ramp(r.initial, r.to, scenario.start + r.at, r.duration)
    if spec.csv is None:  # only a spec built around the schema's checks gets here
        raise ScenarioError("expected one of constant, steps, ramp, csv, found none",
                            scenario.source)
    return _csv_profile(scenario, spec.csv, spec.unit, unit)


def _csv_profile(scenario: Scenario, csv: CsvSpec, unit: str | None, to: str | None) -> Table:
    file = Path(csv.path)
    if not file.is_absolute():
        file = scenario.base_dir / file
    times, values = read_csv_profile(file, csv.time_column, csv.column)
    if unit is not None and to is not None and unit != to:
        values = [float(v) for v in converter(unit, to)(values)]
    return Table(tuple(times), tuple(values), csv.interpolation, csv.hold)


def _event(scenario: Scenario, spec: EventSpec, sim: Simulation) -> Event:
    """The engine event of an event in the file: input change, parameter change or fault."""
    if isinstance(spec, (SetEvent, RampEvent, ProfileEvent)):
        return _input_event(scenario, spec, sim)
    if isinstance(spec, ParameterEvent):
        return SetParameter(spec.at, spec.target, spec.value)
    if isinstance(spec, SensorEvent):
        mode = spec.type.removeprefix("sensor_")
        return SensorFault(spec.at, spec.target, mode, rate=spec.rate, offset=spec.offset,
                           std=spec.std)
    return _plant_fault(spec)


def _input_event(scenario: Scenario, spec: SetEvent | RampEvent | ProfileEvent,
                 sim: Simulation) -> Event:
    target = resolve_input(spec.target)
    if isinstance(spec, SetEvent):
        return SetInput(spec.at, target, spec.value)
    if isinstance(spec, RampEvent):
        return RampInput(spec.at, target, spec.to, spec.duration)
    label = "steps" if spec.steps is not None or spec.csv is None else f"CSV {spec.csv.path}"
    return SwitchProfile(spec.at, target, _profile(scenario, spec, sim.unit(target)), label)


def _plant_fault(spec: PumpEvent | SupplyDropEvent | PlainFaultEvent) -> Event:
    """A plant fault: :data:`components.plant.FAULTS` makes it, with the value it takes."""
    if isinstance(spec, PumpEvent):
        return FAULTS[spec.type](spec.at, spec.pump)
    if isinstance(spec, SupplyDropEvent):
        return FAULTS[spec.type](spec.at, spec.fraction)
    return FAULTS[spec.type](spec.at)


def build(scenario: Scenario) -> Simulation:
    """The simulation a scenario describes, ready to initialise or run."""
    components: dict[str, Any] = {}
    connections: list[Connection] = []
    try:
        if scenario.plant is not False:  # has_plant, spelled so that the type narrows
            components, connections = build_plant(scenario.plant, models=models_for_build(scenario))
        components.update(_components(scenario))
        connections += [Connection(c.source, c.target, delayed=c.delayed)
                        for c in scenario.connections]
        if scenario.supply is not None:  # PV, battery and DC bus feed the power supply
            # first, so that controllers may read the supply's signals
            scenario = attach_supply(scenario, components, connections)
        controllers, wires, drives = build_controllers(  # the controllers: section
            scenario, components, lambda spec, unit: _profile(scenario, spec, unit))
        components.update(controllers)
        connections += redirect_current(wires) if scenario.supply is not None else wires
        sim = Simulation(
            components, connections, step=scenario.step, start=scenario.start,
            rates=scenario.rates, seed=scenario.seed,
        )
        for name, spec in scenario.inputs.items():
            target = resolve_input(name)
            sim.drive(target, _profile(scenario, spec, sim.unit(target)))
        for target, spec in drives.items():  # the controllers' set points and modes
            sim.drive(target, _profile(scenario, spec, sim.unit(target)))
        for event in scenario.events:
            sim.schedule(_event(scenario, event, sim))
        sim.record(None if scenario.record.signals == "all" else scenario.record.signals,
                   every=scenario.record.every)
    except (WiringError, SimulationError) as exc:
        _close(components.values())
        raise ScenarioError(str(exc), scenario.source) from None
    return sim


def _components(scenario: Scenario) -> dict[str, Any]:
    """The scenario's FMU components, instantiated (not yet initialised)."""
    from fmu.importer import FMUComponent

    out: dict[str, Any] = {}
    for name, spec in scenario.components.items():
        path = Path(spec.path)
        if not path.is_absolute():
            path = scenario.base_dir / path
        try:
            # instance_name given, so that no FMU parameter can be taken for it
            out[name] = FMUComponent(path, measured=spec.measured, instance_name=None,
                                     **spec.parameters)
        except (FMUError, WiringError) as exc:
            _close(out.values())
            raise ScenarioError(f"components.{name}: {exc}", scenario.source) from None
    return out


def _close(components: Any) -> None:
    """Free what components hold outside Python (FMU instances), when they can."""
    for comp in components:
        close = getattr(comp, "close", None)
        if callable(close):
            close()


def run(scenario: Scenario | str | Path, *, progress: bool | None = None) -> Any:
    """Run a scenario (object or file) and return its results as a DataFrame."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    sim = build(scenario)
    try:
        frame = sim.run(scenario.end, progress=progress)
    finally:
        _close(sim.components.values())
    frame.attrs["scenario"] = run_attrs(scenario, sim)
    add_derived_columns(frame, scenario)
    return frame


def run_attrs(scenario: Scenario, sim: Simulation) -> dict[str, Any]:
    """What a run's results say of their scenario: ``frame.attrs["scenario"]``, and the
    metadata of a results file (in memory or streamed alike)."""
    return {
        "name": scenario.name, "source": scenario.source, "seed": scenario.seed,
        "step_s": scenario.step, "duration_s": scenario.duration,
        "every": scenario.record.every,
        "limits": operating_limits(scenario),
        "models": scenario.models.model_dump(mode="json"),
        "envelopes": envelopes(sim),
        "controllers": list(scenario.controllers),
    }


def add_derived_columns(frame: Any, scenario: Scenario) -> None:
    """Columns computed from the recorded ones, row by row, after the run.

    Row by row, so that a chunk of rows gets the same columns as the whole run:
    :mod:`co2twin.streaming` applies this to each chunk it streams to a file, and a
    streamed file then equals an in-memory run written whole.
    """
    add_limit_flags(frame, operating_limits(scenario))


def add_limit_flags(frame: Any, limits: Mapping[str, Any]) -> None:
    """A ``<signal>:outside_limits`` column (1 outside, else 0) per limited signal recorded
    (judged on the true value where a sensor fault hides it; 0 where the signal is
    undefined, as :func:`co2twin.kpi.limit_rows` judges)."""
    for name, (low, high) in limits.items():
        if name not in frame.columns:
            continue
        outside, _ = limit_rows(frame, name, low, high)
        frame[f"{name}:outside_limits"] = outside.astype(float)
        frame.attrs["units"][f"{name}:outside_limits"] = "1"


def envelopes(sim: Simulation) -> dict[str, Any]:
    """The training envelope of each surrogate the reactor ran on: variable ->
    ``{"model": which, "inputs": {signal: [low, high]}}`` (paths shortened)."""
    models = getattr(sim.components.get("reactor"), "models", None)
    out: dict[str, Any] = {}
    for variable, surrogate in getattr(models, "surrogates", {}).items():
        lower, upper = getattr(surrogate, "lower", None), getattr(surrogate, "upper", None)
        if lower is None or upper is None:
            continue
        out[variable] = {"model": shorten_paths(surrogate.describe()), "inputs": {
            name: [float(lo), float(hi)]
            for name, lo, hi in zip(surrogate.inputs, lower, upper, strict=True)}}
    return out


def shorten_paths(text: str) -> str:
    """``text`` with paths inside co2twin's installation (``.../site-packages/``) or the
    working directory written relative to it: ``models/trained/fe_formate.hybrid.keras``."""
    import models

    for root in (Path(models.__file__).resolve().parent.parent, Path.cwd()):
        text = text.replace(f"{root}{os.sep}", "")
    return text


def operating_limits(scenario: Scenario) -> dict[str, list[float | None]]:
    """The plant's operating limits with the scenario's overrides."""
    limits = {k: list(v) for k, v in LIMITS.items()} if scenario.has_plant else {}
    for name, spec in scenario.limits.items():
        low, high = limits.get(name, [None, None])
        limits[name] = [spec.low if spec.low is not None else low,
                        spec.high if spec.high is not None else high]
    return limits


def json_schema() -> dict[str, Any]:
    """JSON Schema of scenario files, for editors' completion and checking."""
    schema = Scenario.model_json_schema(by_alias=True)
    for key in NOT_IN_FILES:
        schema["properties"].pop(key, None)
    # an input may be a bare number (a constant) as well as a mapping
    inputs = schema["properties"]["inputs"]
    inputs["additionalProperties"] = {
        "anyOf": [{"type": "number"}, inputs["additionalProperties"]],
    }
    schema["title"] = "co2twin scenario"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def validate(scenario: str | Path | Mapping[str, Any]) -> Scenario:
    """Check a scenario file (path) or already-parsed mapping without running it.

    Returns the validated :class:`Scenario`; raises one :class:`ScenarioError`
    that lists every problem found.
    """
    if isinstance(scenario, Mapping):
        return parse_scenario(scenario)
    return load_scenario(scenario)
