"""Scenarios that arrive over HTTP or through the queue: untrusted until checked here.

What such a scenario may do, on top of co2twin's own schema and checks:

* name files (CSV profiles, trained models, model folders) only by paths relative to one of the
  service's configured data folders: no absolute path, no ``..``, no ``~``, no backslash, no
  symbolic link that leads out of the folder. The path checks run before co2twin opens anything.
* load an FMU (native code) only if its SHA-256 digest is allowlisted, and a ``python:``
  controller (Python code) only if its module is allowlisted (``pkg.*`` allows a package);
* stay within the caps of :class:`~co2twin.service.config.Limits` (text size, values, simulated
  duration, steps, rows);
* never get a file's contents back in an error message: problems about files keep where and
  what was expected, and lose what was found (:func:`sanitise`).

``output:`` is dropped (results go to the database) and said so in the notes.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from collections.abc import Mapping

import yaml

from co2twin.scenario import Scenario, parse_scenario
from cosim.errors import ScenarioError

from .config import ServiceConfig
from .errors import Invalid, Refused

__all__ = ["Checked", "load_untrusted", "read_yaml_text", "sanitise", "check_caps", "file_digest"]

#: keys whose text value names a file or folder
PATH_KEYS = frozenset({"path", "directory", "valco2t_dir", "file", "csv_path"})
#: keys whose text is free text, never a path
TEXT_KEYS = frozenset({"name", "description", "label", "unit", "objective", "what", "title"})
#: a text value ending like this is taken for a file name, whatever its key
FILE_SUFFIXES = (".csv", ".keras", ".fmu", ".yaml", ".yml", ".json", ".py", ".parquet", ".h5",
                 ".txt", ".so", ".dll", ".dylib", ".zip", ".pkl", ".pickle", ".npz", ".npy")
_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_MAX_PROBLEM = 400
_WITHHELD = "something else (a file's contents are not shown to remote clients)"


@dataclass
class Checked:
    """A validated untrusted scenario and what the service changed or noted about it."""

    scenario: Scenario
    notes: list[str] = field(default_factory=list)
    #: the mapping that was validated (paths resolved): what a worker re-validates
    data: dict[str, Any] = field(default_factory=dict)


# -- YAML ------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML (plain data only) that refuses duplicate keys."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "expected a text key, found a mapping or list as key",
                    key_node.start_mark) from None
            if duplicate:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"expected each key once, found {str(key)[:60]!r} again "
                    f"(line {mark.line + 1})", mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_text(text: str, config: ServiceConfig, *, source: str = "scenario") -> Any:
    """Parse scenario text (YAML, or JSON, which is YAML) within the size cap; plain data only."""
    size = len(text.encode("utf-8", "replace"))
    cap = config.limits.max_scenario_bytes
    if size > cap:
        raise Refused(f"{source}: expected a scenario of at most {cap:,} bytes, found {size:,}")
    if "\x00" in text:
        raise Invalid(f"{source}: expected YAML text, found a NUL character")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem = "expected plain YAML data, found a tag that constructs an object"
        raise Invalid(f"{source}: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise Invalid(f"{source}: invalid YAML ({type(exc).__name__})") from None
    except RecursionError:
        raise Invalid(f"{source}: expected nesting a few hundred levels deep at most") from None


# -- the walk ----------------------------------------------------------------------------------
class _Walk:
    """Copies the data (aliases expanded, within the node budget), checking and resolving every
    file reference, FMU and Python controller on the way."""

    def __init__(self, config: ServiceConfig, source: str) -> None:
        self.config = config
        self.source = source
        self.budget = config.limits.max_nodes
        self.refused: list[str] = []
        self.dirs = [Path(d).resolve() for d in config.data_dirs]

    def copy(self, value: Any, where: str, key: str = "") -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise Refused(f"{self.source}: expected at most {self.config.limits.max_nodes:,} "
                          "values in a scenario, found more (aliases of aliases?)")
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise Invalid(f"{self.source}: {where or '(top level)'}: expected text keys")
                out[k] = self.copy(v, f"{where}.{k}" if where else str(k), str(k))
            self._mapping(out, where)
            return out
        if isinstance(value, (list, tuple)):
            return [self.copy(v, f"{where}[{i}]", key) for i, v in enumerate(value)]
        if isinstance(value, str) and self._is_path(key, value, where):
            return self.path(value, where)
        if isinstance(value, float) and not math.isfinite(value):
            return value  # the schema reports it, with its place
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        # dates, bytes and other YAML scalars: the schema expects none of them
        raise Invalid(f"{self.source}: {where}: expected a number, text, list or mapping, "
                      f"found {type(value).__name__}")

    @staticmethod
    def _is_path(key: str, value: str, where: str) -> bool:
        if key in TEXT_KEYS:
            return False
        if key in PATH_KEYS:
            return True
        return value.strip().lower().endswith(FILE_SUFFIXES)

    def path(self, value: str, where: str) -> str:
        """``value`` resolved inside a data folder (absolute), or a refusal noted."""
        shown = value if len(value) <= 120 else value[:117] + "..."
        posix, windows = PurePosixPath(value), PureWindowsPath(value)
        why = None
        if not value.strip():
            why = "expected a file name, found empty text"
        elif "\x00" in value or "\\" in value:
            why = f"expected a relative path with / separators, found {shown!r}"
        elif posix.is_absolute() or windows.is_absolute() or windows.drive or value.startswith("~"):
            why = (f"expected a path relative to a data folder of the service, found the absolute "
                   f"path {shown!r}")
        elif ".." in posix.parts:
            why = f"expected a path inside a data folder of the service, found {shown!r} (with ..)"
        elif not self.dirs:
            why = (f"this service has no data folders, so a scenario sent to it may name no file; "
                   f"found {shown!r}")
        if why is not None:
            self.refused.append(f"{where}: {why}")
            return value
        for folder in self.dirs:
            candidate = folder / posix
            if not (candidate.exists() or candidate.is_symlink()):
                continue
            resolved = candidate.resolve()
            if not resolved.is_relative_to(folder):
                self.refused.append(f"{where}: expected a file inside the data folders, found "
                                    f"{shown!r}, which leads outside them (a symbolic link)")
                return value
            return str(resolved)
        self.refused.append(f"{where}: expected a file in the service's data folders, found no "
                            f"{shown!r} there")
        return value

    def _mapping(self, value: dict[Any, Any], where: str) -> None:
        """FMUs and Python controllers: allowlisted, or refused."""
        kind = value.get("type")
        if kind == "fmu" or any(isinstance(v, str) and v.lower().endswith(".fmu")
                                for k, v in value.items() if k in PATH_KEYS):
            path = value.get("path")
            if isinstance(path, str) and Path(path).is_absolute() and Path(path).is_file():
                digest = file_digest(Path(path))
                if digest not in self.config.allow_fmus:
                    self.refused.append(
                        f"{where}: an FMU is native code; this one (sha256 {digest}) is not in "
                        "the service's allowlist (allow_fmus)")
        module = value.get("python")
        if kind == "python" or module is not None:
            if not isinstance(module, str) or ":" not in module:
                return  # the schema reports the malformed spec
            name = module.partition(":")[0]
            if not _allowed_module(name, self.config.allow_python):
                self.refused.append(
                    f"{where}.python: a Python controller runs code in the service; module "
                    f"{name[:80]!r} is not in the service's allowlist (allow_python)")


def _allowed_module(name: str, allowed: frozenset[str]) -> bool:
    if not _MODULE.match(name):
        return False
    if name in allowed:
        return True
    parts = name.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts)))


def file_digest(path: Path) -> str:
    """SHA-256 of a file, hex (what ``allow_fmus`` lists)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- messages ----------------------------------------------------------------------------------
#: what marks a problem as quoting a file's contents (a line, its header, its bytes, a model file)
_FILE_CONTENT = re.compile(r"\bline \d+|found columns|byte 0x[0-9a-fA-F]{2}|malformed|UTF-8|"
                           r"\.keras\b|\.h5\b|\.fmu\b|card\b|\.json\b|data row", re.I)


def sanitise(problem: str, config: ServiceConfig | None = None, *, withhold: bool = True) -> str:
    """A problem line safe to show a remote client: data folders' absolute paths made relative,
    and, for a problem about a file's contents, what was found in the file withheld (the
    problem keeps the file, the line, the column and what was expected)."""
    text = str(problem)
    if config is not None:
        for folder in sorted((str(Path(d).resolve()) for d in config.data_dirs), key=len,
                             reverse=True):
            text = text.replace(folder + "/", "").replace(folder, ".")
    if withhold and _FILE_CONTENT.search(text):
        # the file's text, if any, comes after "found": keep what was expected and where
        cut = re.search(r"(,|:|;)?\s*found\b", text)
        if cut is not None:
            text = text[:cut.start()] + ", found " + _WITHHELD
        text = re.sub(r"\(([^()]*)\)\s*$", lambda m: "" if "line" not in m.group(1) else m.group(0),
                      text)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= _MAX_PROBLEM else text[:_MAX_PROBLEM - 3] + "..."


# -- caps ---------------------------------------------------------------------------------------
def check_caps(scenario: Scenario, config: ServiceConfig, *, realtime_speed: float | None = None,
               source: str = "scenario") -> None:
    """Refuse a scenario whose simulated duration, steps or recorded rows exceed the caps."""
    limits = config.limits
    problems = []
    if scenario.duration > limits.max_duration_s:
        problems.append(f"duration: expected at most {limits.max_duration_s:g} s per request, "
                        f"found {scenario.duration:g} s")
    if scenario.steps > limits.max_steps:
        problems.append(f"step: expected at most {limits.max_steps:,} steps per request, found "
                        f"{scenario.steps:,} (duration {scenario.duration:g} s / step "
                        f"{scenario.step:g} s)")
    rows = scenario.steps // max(1, scenario.record.every) + 1
    if rows > limits.max_rows:
        problems.append(f"record.every: expected at most {limits.max_rows:,} recorded rows per "
                        f"experiment, found {rows:,}; raise record.every")
    if realtime_speed and scenario.duration / realtime_speed > limits.max_realtime_s:
        problems.append(f"pace: a run paced at {realtime_speed:g}x would take "
                        f"{scenario.duration / realtime_speed:g} s of wall time; expected at most "
                        f"{limits.max_realtime_s:g} s")
    if problems:
        raise Refused([f"{source}: {p}" for p in problems])


# -- the whole check -----------------------------------------------------------------------------
def load_untrusted(scenario: str | Mapping[str, Any], config: ServiceConfig, *,
                   source: str = "scenario", realtime_speed: float | None = None) -> Checked:
    """Check and validate an untrusted scenario (YAML text or a parsed mapping).

    Raises :class:`Refused` (a file outside the data folders, an FMU or Python controller not
    allowlisted, a cap exceeded) or :class:`Invalid` (the schema or the plant's checks), each
    listing every problem, sanitised.
    """
    if isinstance(scenario, str):
        data = read_yaml_text(scenario, config, source=source)
    else:
        size = len(json.dumps(scenario, default=str))
        if size > config.limits.max_scenario_bytes:
            raise Refused(f"{source}: expected a scenario of at most "
                          f"{config.limits.max_scenario_bytes:,} bytes, found {size:,}")
        data = scenario
    if not isinstance(data, Mapping):
        raise Invalid(f"{source}: expected a mapping (name: ..., duration: ..., step: ...), found "
                      f"{type(data).__name__}")
    notes = []
    data = dict(data)
    if "output" in data:
        del data["output"]
        notes.append("output: ignored (the service writes results to its database)")
    walk = _Walk(config, source)
    copied = walk.copy(data, "")
    if walk.refused:
        raise Refused([f"{source}: {sanitise(p, config, withhold=False)}" for p in walk.refused])
    base = walk.dirs[0] if walk.dirs else Path("/nonexistent-co2twin-data")
    try:
        checked = parse_scenario(copied, source=source, base_dir=base)
    except ScenarioError as exc:
        raise Invalid([f"{source}: {sanitise(p, config)}" for p in exc.problems]) from None
    except RecursionError:
        raise Invalid(f"{source}: expected nesting a few hundred levels deep at most") from None
    check_caps(checked, config, realtime_speed=realtime_speed, source=source)
    return Checked(checked, notes, copied)
