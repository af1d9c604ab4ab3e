"""Scenario files: YAML in, a validated :class:`Scenario` out, then a run.

Loading never executes anything from the file (safe YAML, no Python tags),
rejects duplicate keys and unknown keys, and gathers every problem into one
:class:`~cosim.errors.ScenarioError` whose lines name the file, the YAML path
(``inputs.current.steps[2]``), what was expected and what was found.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from components.plant import FAULTS, INPUTS, LIMITS, STAGES, build_plant, resolve_input

from .errors import ScenarioError, SimulationError, WiringError
from .events import (
    Event,
    RampInput,
    SensorFault,
    SetInput,
    SetParameter,
    SwitchProfile,
)
from .profiles import Constant, Profile, Ramp, Steps, Table
from .recorder import FORMATS
from .simulation import Simulation

__all__ = ["Scenario", "load_scenario", "parse_scenario", "build", "run", "json_schema"]

MAX_FILE_BYTES = 5_000_000
MAX_YAML_NODES = 200_000
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
    Union[SetEvent, RampEvent, ProfileEvent, ParameterEvent, PumpEvent, SupplyDropEvent,
          PlainFaultEvent, SensorEvent],
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


class Scenario(_Strict):
    """A validated scenario. Build it with :func:`load_scenario` or :func:`parse_scenario`."""

    name: Name
    description: str = ""
    start: Seconds = 0.0
    duration: Positive
    step: Positive
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    plant: dict[Name, dict[Name, Finite]] = {}
    rates: dict[Name, Every] = {}
    inputs: dict[Name, InputSpec] = {}
    events: list[EventSpec] = []
    record: RecordSpec = RecordSpec()
    output: OutputSpec | None = None
    limits: dict[Name, LimitSpec] = {}

    #: directory that relative CSV paths are read from (not part of the file)
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<scenario>", exclude=True)

    @property
    def steps(self) -> int:
        return round(self.duration / self.step)

    @property
    def end(self) -> float:
        return self.start + self.duration


# -- loading ------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys and documents that expand too far.

    Numbers in exponent form without a dot (``1e5``, ``1e999``) are numbers, as
    in YAML 1.2, not text: ``1e999`` is then rejected as "not finite" rather than
    as "not a number".
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *anchor`` merges; explicit keys may override merged ones
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable mapping key {key!r}", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"expected each key once, found {key!r} again (duplicate key)",
                    key_node.start_mark
                )
            seen.add(key)
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


def _read_yaml(text: str, source: str) -> Any:
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _count_nodes(node, [MAX_YAML_NODES])
            return loader.construct_document(node)
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
    data = _read_yaml(text, source)
    return parse_scenario(data, source=source, base_dir=path.parent)


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
    for key in _NOT_IN_FILES:  # fields of Scenario that come from the loader, not the file
        if key in data:
            problems.append(f"{key}: unknown key")
            del data[key]
    extra = {"base_dir": Path(base_dir), "source": source}
    try:
        scenario = Scenario.model_validate({**data, **extra})
    except ValidationError as exc:
        errors = exc.errors()
        problems += [_describe(err) for err in errors]
        partial, timing, event_index = _without_errors(data, errors)
        try:
            scenario = Scenario.model_validate({**partial, **extra})
        except ValidationError:
            scenario = None
        if scenario is not None:
            problems += _Semantics(scenario, timing=timing, event_index=event_index).check()
        raise ScenarioError(problems, source) from None
    problems += _Semantics(scenario).check()
    if problems:
        raise ScenarioError(problems, source)
    return scenario


_NOT_IN_FILES = ("base_dir", "source")
_SECTIONS = ("inputs", "plant", "limits", "rates")
_TIMING = ("start", "duration", "step")


def _without_errors(
    data: dict[str, Any], errors: list[Mapping[str, Any]]
) -> tuple[dict[str, Any], bool, list[int]]:
    """``data`` without the entries that failed the schema, so the rest can still be checked.

    Returns the pruned data, whether the run's timing (start, duration, step)
    is trustworthy, and the original index of each event kept.
    """
    data = dict(data)
    copied: set[str] = set()
    dropped_events: set[int] = set()
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
            if head not in copied:
                data[head] = section = {
                    k: dict(v) if isinstance(v, Mapping) else v for k, v in section.items()
                }
                copied.add(head)
            inner = section.get(loc[1])
            if (head == "plant" and len(loc) >= 3 and isinstance(inner, dict)
                    and loc[2] != "[key]" and loc[2] in inner):
                del inner[loc[2]]
            else:
                section.pop(loc[1], None)
        elif head == "events" and len(loc) >= 2 and isinstance(loc[1], int) \
                and isinstance(section, list):
            dropped_events.add(loc[1])
        else:
            data.pop(head, None)
    event_index: list[int] = []
    if isinstance(data.get("events"), list):
        event_index = [i for i in range(len(data["events"])) if i not in dropped_events]
        data["events"] = [data["events"][i] for i in event_index]
    data.setdefault("name", "?")
    if not timing or "duration" not in data or "step" not in data:
        timing = False
        data.update(start=0.0, duration=1.0, step=1.0)
    return data, timing, event_index


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
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: required key missing"
    if kind == "union_tag_invalid":
        tag = found.get("type") if isinstance(found, Mapping) else found
        return f"{where}.type: expected one of {ctx.get('expected_tags', '?')}, found {_shown(tag)}"
    if kind == "union_tag_not_found":
        return f"{where}.type: required key missing (it says which kind of event this is)"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{where}: expected a mapping, found {_shown(found)}"
    if kind in ("list_type", "tuple_type"):
        return f"{where}: expected a list, found {_shown(found)}"
    if kind == "too_short":
        return (f"{where}: expected at least {ctx.get('min_length')} item(s), "
                f"found {ctx.get('actual_length')}: {_shown(found)}")
    if kind == "too_long":
        return (f"{where}: expected at most {ctx.get('max_length')} item(s), "
                f"found {ctx.get('actual_length')}: {_shown(found)}")
    if kind == "string_too_short":
        return (f"{where}: expected text of at least {ctx.get('min_length')} character(s), "
                f"found {_shown(found)}")
    if kind == "string_too_long":
        return (f"{where}: expected text of at most {ctx.get('max_length')} characters, "
                f"found {_shown(found)}")
    msg = err["msg"]
    msg = re.sub(r"^(Input should be |Value error, |Assertion failed, )", "expected ", msg).strip()
    if not msg.startswith("expected"):
        msg = f"expected {msg[0].lower()}{msg[1:]}" if msg else "expected a valid value"
    return f"{where}: {msg}, found {_shown(found)}"


# -- checks that need the plant -----------------------------------------------------------
class _Semantics:
    """Cross-checks against the plant: names, bounds, units, grid alignment, file coverage.

    ``timing=False`` (start, duration or step failed the schema) skips the checks
    that compare times with the run; ``event_index`` maps the events checked to
    their index in the file when some events failed the schema.
    """

    def __init__(
        self, scenario: Scenario, *, timing: bool = True, event_index: list[int] | None = None
    ) -> None:
        self.s = scenario
        self.timing = timing
        self.event_index = event_index
        self.problems: list[str] = []
        self.ports = {}
        for cname, cls in STAGES.items():
            for port in cls.inputs:
                self.ports[f"{cname}.{port.name}"] = port
        self.outputs = {
            f"{cname}.{p.name}": p for cname, cls in STAGES.items() for p in cls.outputs
        }
        _, connections = build_plant()
        self.fed = {c.target for c in connections}

    def add(self, path: str, text: str) -> None:
        self.problems.append(f"{path}: {text}")

    def check(self) -> list[str]:
        s = self.s
        if self.timing:
            self._timing()
        self._plant()
        for cname, every in s.rates.items():
            if cname not in STAGES:
                self.add(f"rates.{cname}", f"unknown component; expected one of {', '.join(STAGES)}")
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
            if name not in self.outputs and name not in self.ports:
                self.add(f"limits.{name}", "unknown signal; expected component.port")
            if limit.low is not None and limit.high is not None and limit.low > limit.high:
                self.add(f"limits.{name}", f"expected low <= high, found low {limit.low:g} "
                         f"above high {limit.high:g}")
        if s.output is not None:
            fmt = s.output.format or Path(s.output.file).suffix.lstrip(".").lower()
            if fmt not in FORMATS:
                self.add("output.file", f"expected a .parquet or .csv file (or output.format), "
                         f"found {s.output.file!r}")
        return self.problems

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
            n_signals = len(self.outputs) + len(set(self.ports) - self.fed)
        else:
            n_signals = len(s.record.signals)
        if rows * n_signals * 8 > MAX_RECORD_BYTES:
            self.add("record", f"{rows:,} rows of {n_signals} signals would take "
                     f"{rows * n_signals * 8 / 2**30:.0f} GiB; expected at most "
                     f"{MAX_RECORD_BYTES / 2**30:.0f} GiB: raise record.every or record fewer signals")

    def _plant(self) -> None:
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
        if port is None:
            self.add(path, f"unknown input {name!r}; expected one of {', '.join(INPUTS)} "
                     "(or component.port of an unconnected input)")
            return None
        if target in self.fed:
            self.add(path, f"{target} is fed by another component and cannot be driven")
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

    def _values(self, path: str, port: Any, values: list[tuple[str, float]]) -> None:
        for where, value in values:
            if not port.contains(value):
                self.add(f"{path}{where}", f"expected a value in {port.bounds_text()}, found {value!r}")

    def _unit(self, path: str, port: Any, unit: str | None) -> None:
        if unit is not None and unit != port.unit:
            self.add(f"{path}.unit", f"expected {port.unit!r} (the port's unit; no conversion), "
                     f"found {unit!r}")

    def _steps(self, path: str, port: Any, steps: list[tuple[float, float]]) -> None:
        times = [t for t, _ in steps]
        for i, (a, b) in enumerate(zip(times, times[1:])):
            if b <= a:
                self.add(f"{path}[{i + 1}]", f"expected a time after {a:g} s, found {b:g}")
        self._values(path, port, [(f"[{i}]", v) for i, (_, v) in enumerate(steps)])

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
        if port is None:
            return
        self._unit(path, port, spec.unit)
        if spec.constant is not None:
            self._values(path + ".constant", port, [("", spec.constant)])
        elif spec.steps is not None:
            self._steps(path + ".steps", port, spec.steps)
        elif spec.ramp is not None:
            r = spec.ramp
            self._values(path + ".ramp", port, [(".from", r.initial), (".to", r.to)])
        else:
            table = self._csv(path + ".csv", port, spec.csv)
            if table is not None:
                self._covers(path + ".csv", table, self.s.start, self.s.end)

    def _csv(self, path: str, port: Any, spec: CsvSpec) -> Table | None:
        file = Path(spec.path)
        if not file.is_absolute():
            file = self.s.base_dir / file
        try:
            times, values, lines = _read_csv(file, spec.time_column, spec.column)
        except ScenarioError as exc:
            self.add(path, "; ".join(exc.problems))
            return None
        self._values(f"{path} ({file.name}", port,
                     [(f" line {line}, column {spec.column!r})", v) for line, v in zip(lines, values)])
        return Table(tuple(times), tuple(values), spec.interpolation, spec.hold)

    #: the only value fields that each kind of sensor fault uses
    _SENSOR_FIELDS = {"sensor_drift": {"rate"}, "sensor_bias": {"offset"},
                      "sensor_noise": {"std"}, "sensor_freeze": set(), "sensor_clear": set()}

    def _event(self, path: str, event: Any) -> None:
        s = self.s
        self._on_grid(path + ".at", event.at)
        if isinstance(event, (SetEvent, RampEvent, ProfileEvent)):
            port = self._target(path + ".target", event.target)
            if port is None:
                return
            if isinstance(event, SetEvent):
                self._unit(path, port, event.unit)
                self._values(path + ".value", port, [("", event.value)])
            elif isinstance(event, RampEvent):
                self._values(path + ".to", port, [("", event.to)])
            elif event.steps is not None:
                self._steps(path + ".steps", port, event.steps)
            else:
                table = self._csv(path + ".csv", port, event.csv)
                if table is not None:  # the table's time 0 is the event time
                    self._covers(path + ".csv", table, event.at, s.end, offset=event.at,
                                 what="the run from the event on")
        elif isinstance(event, ParameterEvent):
            cname, _, pname = event.target.partition(".")
            cls = STAGES.get(cname)
            spec = next((p for p in cls.parameters if p.name == pname), None) if cls else None
            if spec is None:
                self.add(path + ".target", f"unknown parameter {event.target!r}; expected component.parameter")
            elif not spec.tunable:
                tunable = [f"{c}.{p.name}" for c, k in STAGES.items() for p in k.parameters if p.tunable]
                self.add(path + ".target", f"{event.target} cannot change during a run; "
                         f"tunable: {', '.join(tunable)}")
            elif not spec.contains(event.value):
                self.add(path + ".value", f"expected a value in {spec.bounds_text()}, found {event.value!r}")
        elif isinstance(event, SensorEvent):
            port = self.outputs.get(event.target)
            if port is None or not port.measured:
                measured = [n for n, p in self.outputs.items() if p.measured]
                self.add(path + ".target", f"expected a measured signal ({', '.join(measured)}), "
                         f"found {event.target!r}")
            allowed = self._SENSOR_FIELDS[event.type]
            for key in sorted({"rate", "offset", "std"} & event.model_fields_set - allowed):
                self.add(f"{path}.{key}", f"unknown key for {event.type} (it takes "
                         f"{', '.join(sorted(allowed)) or 'no value'})")

    def _record(self) -> None:
        import fnmatch

        names = list(self.outputs) + [n for n in self.ports if n not in self.fed]
        for i, pattern in enumerate(self.s.record.signals):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                self.add(f"record.signals[{i}]", f"expected a signal name or pattern that matches "
                         f"a signal, found {pattern!r}")


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
                    f"found columns: {', '.join(map(repr, header)) or 'none'}"
                )
            times, values, lines = [], [], []
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
    for line, a, b in zip(lines[1:], times, times[1:]):
        if b <= a:
            raise ScenarioError(
                f"{path.name} line {line}, column {time_column!r}: expected a time after "
                f"{a:g}, found {b:g}")
    return times, values, lines


# -- from scenario to simulation ----------------------------------------------------------
def _profile(scenario: Scenario, spec: InputSpec | ProfileEvent) -> Profile:
    if getattr(spec, "constant", None) is not None:
        return Constant(spec.constant)
    if spec.steps is not None:
        return Steps(tuple(spec.steps))
    if getattr(spec, "ramp", None) is not None:
        r = spec.ramp
        return Ramp(r.initial, r.to, scenario.start + r.at, r.duration)
    file = Path(spec.csv.path)
    if not file.is_absolute():
        file = scenario.base_dir / file
    times, values = read_csv_profile(file, spec.csv.time_column, spec.csv.column)
    return Table(tuple(times), tuple(values), spec.csv.interpolation, spec.csv.hold)


def _event(scenario: Scenario, spec: Any) -> Event:
    at = spec.at
    if isinstance(spec, SetEvent):
        return SetInput(at, resolve_input(spec.target), spec.value)
    if isinstance(spec, RampEvent):
        return RampInput(at, resolve_input(spec.target), spec.to, spec.duration)
    if isinstance(spec, ProfileEvent):
        label = "steps" if spec.steps is not None else f"CSV {spec.csv.path}"
        return SwitchProfile(at, resolve_input(spec.target), _profile(scenario, spec), label)
    if isinstance(spec, ParameterEvent):
        return SetParameter(at, spec.target, spec.value)
    if isinstance(spec, PumpEvent):
        return FAULTS[spec.type](at, spec.pump)
    if isinstance(spec, SupplyDropEvent):
        return FAULTS[spec.type](at, spec.fraction)
    if isinstance(spec, PlainFaultEvent):
        return FAULTS[spec.type](at)
    mode = spec.type.removeprefix("sensor_")
    return SensorFault(at, spec.target, mode, rate=spec.rate, offset=spec.offset, std=spec.std)


def build(scenario: Scenario) -> Simulation:
    """The simulation a scenario describes, ready to initialise or run."""
    try:
        components, connections = build_plant(scenario.plant)
        sim = Simulation(
            components, connections, step=scenario.step, start=scenario.start,
            rates=scenario.rates, seed=scenario.seed,
        )
        for name, spec in scenario.inputs.items():
            sim.drive(resolve_input(name), _profile(scenario, spec))
        for spec in scenario.events:
            sim.schedule(_event(scenario, spec))
        sim.record(None if scenario.record.signals == "all" else scenario.record.signals,
                   every=scenario.record.every)
    except (WiringError, SimulationError) as exc:
        raise ScenarioError(str(exc), scenario.source) from None
    return sim


def run(scenario: Scenario | str | Path, *, progress: bool | None = None) -> Any:
    """Run a scenario (object or file) and return its results as a DataFrame."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    sim = build(scenario)
    frame = sim.run(scenario.end, progress=progress)
    frame.attrs["scenario"] = {
        "name": scenario.name, "source": scenario.source, "seed": scenario.seed,
        "step_s": scenario.step, "duration_s": scenario.duration,
        "limits": operating_limits(scenario),
    }
    return frame


def operating_limits(scenario: Scenario) -> dict[str, list[float | None]]:
    """The plant's operating limits with the scenario's overrides."""
    limits = {k: list(v) for k, v in LIMITS.items()}
    for name, spec in scenario.limits.items():
        low, high = limits.get(name, [None, None])
        limits[name] = [spec.low if spec.low is not None else low,
                        spec.high if spec.high is not None else high]
    return limits


def json_schema() -> dict[str, Any]:
    """JSON Schema of scenario files, for editors' completion and checking."""
    schema = Scenario.model_json_schema(by_alias=True)
    for key in _NOT_IN_FILES:
        schema["properties"].pop(key, None)
    # an input may be a bare number (a constant) as well as a mapping
    inputs = schema["properties"]["inputs"]
    inputs["additionalProperties"] = {
        "anyOf": [{"type": "number"}, inputs["additionalProperties"]],
    }
    schema["title"] = "co2twin scenario"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
