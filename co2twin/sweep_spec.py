"""Sweep and Monte Carlo specs: ``sweep:`` in YAML, checked with a JSON Schema, expanded to variants.

A spec names a base scenario (a file, or the scenario inline) and how variants differ from it,
each change a dotted path into the scenario (``inputs.current``, ``plant.reactor.area_cm2``,
``seed``):

- ``grid``: path -> list of values; every combination (cartesian product);
- ``lists``: path -> list of values, all the same length; taken together, row by row (zipped);
- ``distributions``: path -> a distribution (uniform, normal, lognormal, triangular, loguniform);
  ``samples`` draws with ``seed``, by plain Monte Carlo (``sampling: random``) or SALib's Sobol or
  Morris designs (``sampling: sobol | morris``), which the sensitivity analysis needs.

The blocks combine as a product: every grid point x every list row x every sample. Variants are
ordered group-major (a group is one grid point and list row), sample-minor, so variant
``g * samples_per_group + s`` is sample ``s`` of group ``g``.

Paths under ``models.`` (``models.directory``, ``models.default``, ``models.<variable>``) change
which surrogates the plant runs on, which one ensemble cannot vary: they may appear in ``grid``
and ``lists`` only, each group then gets its own scenario, and no chunk spans two groups
(:data:`PER_SCENARIO`). A grid over ``models.directory`` with networks trained on different
seeds is the surrogates' uncertainty. In a scenario with the solar supply, ``supply.pv.peak_power``,
``supply.battery.capacity`` and the like size it (:mod:`co2twin.variant_paths`); such a
scenario's chunks run one variant at a time (:mod:`co2twin.variant_runs`), in chunks of
:data:`RUN_CHUNK` unless ``chunk_size`` says otherwise.

Every problem is reported at once, each line naming the file, the field (``sweep.grid.x``), what
was expected and what was found.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Mapping, Sequence

from cosim.errors import ScenarioError

if TYPE_CHECKING:
    from .scenario_schema import Scenario

__all__ = ["SweepSpec", "load_sweep_spec", "parse_sweep_spec", "set_path", "SPEC_SCHEMA", "PER_SCENARIO",
           "DISTRIBUTIONS", "MAX_VARIANTS", "RUN_CHUNK"]

#: the default chunk of a sweep whose variants run one at a time (the solar supply:
#: :mod:`co2twin.variant_runs`): each variant is a whole run, seconds, so small chunks let the
#: workers share them and a retry or a resume loses little (an ensemble's chunk of 1000 would
#: be one worker's whole sweep)
RUN_CHUNK = 10


#: more variants than this are refused: the client holds the plan (a few hundred bytes a variant)
MAX_VARIANTS = 5_000_000

#: spec keys that do not change what a chunk writes
_NOT_IN_DIGEST = ("name", "description", "retries", "bands", "sensitivity")

#: path prefixes that change the scenario's structure: one scenario per group, not per variant
PER_SCENARIO = ("models.",)

#: distribution -> its parameters, in the order the docs give them
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"),
    "triangular": ("low", "mode", "high"),
}

_NUMBER = {"type": "number"}
_VALUE = {"type": ["number", "string", "boolean", "object", "array"],
          "description": "a value for the scenario path"}
_PATH = "^[A-Za-z_][A-Za-z0-9_]*(\\[[0-9]+\\])?(\\.[A-Za-z0-9_:\\-]+)*$"
_VALUES = {"type": "array", "minItems": 1, "items": _VALUE,
           "description": "a non-empty list of values"}


def _dist_schema() -> dict[str, Any]:
    cases = [{"if": {"properties": {"dist": {"const": name}}, "required": ["dist"]},
              "then": {"required": list(params),
                       "properties": {"dist": True, **{p: _NUMBER for p in params}},
                       "additionalProperties": False,
                       "description": f"{name}: {', '.join(params)}"}}
             for name, params in DISTRIBUTIONS.items()]
    return {
        "type": "object", "required": ["dist"],
        "description": "a distribution: {dist: uniform|normal|lognormal|triangular|loguniform, ...}",
        "properties": {"dist": {"enum": list(DISTRIBUTIONS)}},
        "allOf": cases,
    }


#: the spec file's JSON Schema (Draft 2020-12)
SPEC_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["sweep"], "additionalProperties": False,
    "description": "a mapping with one key, sweep",
    "properties": {"sweep": {
        "type": "object", "required": ["scenario"], "additionalProperties": False,
        "description": "a mapping: scenario, grid, lists, distributions, samples, ...",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string"},
            "scenario": {"type": ["string", "object"], "minLength": 1,
                         "description": "a scenario file (relative to the spec) or a scenario inline"},
            "grid": {"type": "object", "propertyNames": {"pattern": _PATH},
                     "additionalProperties": _VALUES,
                     "description": "scenario path -> list of values (every combination)"},
            "lists": {"type": "object", "propertyNames": {"pattern": _PATH},
                      "additionalProperties": _VALUES,
                      "description": "scenario path -> list of values (zipped, same lengths)"},
            "distributions": {"type": "object", "propertyNames": {"pattern": _PATH},
                              "additionalProperties": _dist_schema(),
                              "description": "scenario path -> distribution"},
            "samples": {"type": "integer", "minimum": 1,
                        "description": "an integer >= 1 (Monte Carlo samples; Sobol: base N; "
                                       "Morris: trajectories)"},
            "sampling": {"enum": ["random", "sobol", "morris"]},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "morris_levels": {"type": "integer", "minimum": 2, "maximum": 100},
            "keep": {
                "type": "object", "additionalProperties": False,
                "description": "a mapping: signals, every, kpis",
                "properties": {
                    "signals": {"type": "array", "items": {"type": "string", "minLength": 1},
                                "description": "a list of signal names"},
                    "every": {"type": "integer", "minimum": 1},
                    "kpis": {"type": "array", "items": {"type": "string", "minLength": 1},
                             "description": "a list of KPI names"},
                },
            },
            "chunk_size": {"type": "integer", "minimum": 1, "maximum": 10_000_000,
                           "description": "variants per chunk (default 1000 for ensembles, "
                                          f"{RUN_CHUNK} where each variant runs on its own)"},
            "retries": {"type": "integer", "minimum": 0, "maximum": 100},
            "bands": {
                "type": "object", "additionalProperties": False,
                "description": "a mapping: signals, percentiles",
                "properties": {
                    "signals": {"type": "array", "minItems": 1,
                                "items": {"type": "string", "minLength": 1}},
                    "percentiles": {"type": "array", "minItems": 1,
                                    "items": {"type": "number", "minimum": 0, "maximum": 100}},
                },
            },
            "sensitivity": {
                "type": "object", "additionalProperties": False,
                "description": "a mapping: kpis",
                "properties": {"kpis": {"type": "array", "minItems": 1,
                                        "items": {"type": "string", "minLength": 1}}},
            },
        },
    }},
}


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: the base scenario's data and the variants' definition.

    ``variants()`` expands it (the same list on every call: sampling is seeded).
    """

    name: str
    source: str
    scenario_data: dict[str, Any]
    base_dir: Path
    grid: dict[str, list[Any]] = field(default_factory=dict)
    lists: dict[str, list[Any]] = field(default_factory=dict)
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: int = 1
    sampling: str = "random"
    seed: int = 0
    morris_levels: int = 4
    signals: list[str] = field(default_factory=list)
    every: int = 1
    kpis: list[str] | None = None
    chunk_size: int = 1000
    #: how the chunks run: ``"ensemble"``, or ``"one run per variant: <why>"``
    #: (:func:`co2twin.variant_runs.one_at_a_time`), decided when the spec is checked
    mode: str = "ensemble"
    retries: int = 2
    bands: list[str] = field(default_factory=list)
    percentiles: list[float] = field(default_factory=lambda: [5.0, 50.0, 95.0])
    sensitivity: list[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> list[dict[str, Any]]:
        """The grid points x list rows: one mapping path -> value each (one empty one if none)."""
        grid = [dict(zip(self.grid, values, strict=True))
                for values in itertools.product(*self.grid.values())]
        n_rows = len(next(iter(self.lists.values()))) if self.lists else 1
        rows = [{p: v[i] for p, v in self.lists.items()} for i in range(n_rows)]
        return [{**g, **r} for g in grid for r in rows]

    @property
    def n_per_group(self) -> int:
        """Variants per group: the distribution samples (1 without distributions)."""
        if not self.distributions:
            return 1
        d = len(self.distributions)
        if self.sampling == "sobol":
            return self.samples * (d + 2)
        if self.sampling == "morris":
            return self.samples * (d + 1)
        return self.samples

    @property
    def n_variants(self) -> int:
        return self.n_groups * self.n_per_group

    @property
    def n_groups(self) -> int:
        n = math.prod(len(v) for v in self.grid.values())
        return n * (len(next(iter(self.lists.values()))) if self.lists else 1)

    def unit_samples(self) -> Any:
        """The sampling design in the unit hypercube, (n_per_group, d): what SALib analyses."""
        import numpy as np

        d = len(self.distributions)
        if d == 0:
            return np.zeros((1, 0))
        if self.sampling == "random":
            return np.random.default_rng(self.seed).random((self.samples, d))
        problem = self.problem()
        if self.sampling == "sobol":
            from SALib.sample import sobol

            return sobol.sample(problem, self.samples, calc_second_order=False, seed=self.seed)
        from SALib.sample import morris

        levels = self.morris_levels
        grid = morris.sample(problem, self.samples, num_levels=levels, seed=self.seed)
        # Morris' levels include 0 and 1, where a normal's quantile is infinite: use the middle
        # of each level's slice of probability instead (an affine map, so the design stays one)
        return (grid * (levels - 1) + 0.5) / levels

    def problem(self) -> dict[str, Any]:
        """SALib's problem definition of the distributions, in the unit hypercube (each input is
        sampled as a probability and mapped through its distribution's quantile function)."""
        names = list(self.distributions)
        return {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}

    def sample_values(self) -> Any:
        """The distribution samples in the scenario's values, (n_per_group, d)."""
        import numpy as np

        u = self.unit_samples()
        out = np.empty_like(u, dtype=float)
        for j, spec in enumerate(self.distributions.values()):
            out[:, j] = quantile(spec, u[:, j])
        return out

    def variants(self) -> list[dict[str, Any]]:
        """Every variant, a mapping of dotted scenario paths to values, in sweep order."""
        values = self.sample_values()
        paths = list(self.distributions)
        per_sample = [{p: float(v) for p, v in zip(paths, row, strict=True)} for row in values]
        return [{**g, **s} for g in self.groups for s in per_sample]

    @property
    def per_scenario(self) -> list[str]:
        """The grid and list paths that change the scenario's structure (``models.``)."""
        return [p for p in (*self.grid, *self.lists) if p.startswith(PER_SCENARIO)]

    def digest(self) -> str:
        """SHA-256 of everything that decides the variants and what each chunk writes (not the
        name, retries, bands or sensitivity: changing those still resumes the same chunks)."""
        decisive = {k: v for k, v in self.raw.items() if k not in _NOT_IN_DIGEST}
        if isinstance(decisive.get("scenario"), str):  # a file: its content counts, not its name
            del decisive["scenario"]
        text = json.dumps({"spec": decisive, "scenario": self.scenario_data, "files": self._file_digests()},
                          sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def _file_digests(self) -> dict[str, str]:
        """SHA-256 of each file the variants read (CSV profiles, model files named in ``models:``
        or a ``models.*`` grid or list): editing one must not resume onto chunks run on the old."""
        named: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, Mapping):
                csv = node.get("csv")
                if isinstance(csv, Mapping) and isinstance(csv.get("path"), str):
                    named.append(csv["path"])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(self.scenario_data.get("inputs", {}))
        walk(self.scenario_data.get("events", []))
        models = self.scenario_data.get("models", {})
        named += [v for v in (models.values() if isinstance(models, Mapping) else []) if isinstance(v, str)]
        for key in self.per_scenario:
            named += [v for v in (*self.grid.get(key, ()), *self.lists.get(key, ())) if isinstance(v, str)]
        found: dict[str, str] = {}
        for name in dict.fromkeys(named):
            file = self.base_dir / name
            if file.is_file():  # a word such as `hybrid` names no file
                found[name] = hashlib.sha256(file.read_bytes()).hexdigest()
        return found


def quantile(spec: Mapping[str, Any], u: Any) -> Any:
    """The inverse CDF of the distribution ``spec`` at probabilities ``u``."""
    import numpy as np
    from scipy import stats

    kind = spec["dist"]
    if kind == "uniform":
        return spec["low"] + u * (spec["high"] - spec["low"])
    if kind == "loguniform":
        lo, hi = math.log(spec["low"]), math.log(spec["high"])
        return np.exp(lo + u * (hi - lo))
    if kind == "normal":
        return stats.norm.ppf(u, loc=spec["mean"], scale=spec["std"])
    if kind == "lognormal":
        return stats.lognorm.ppf(u, s=spec["sigma"], scale=spec["median"])
    width = spec["high"] - spec["low"]
    c = (spec["mode"] - spec["low"]) / width if width > 0 else 0.5
    return stats.triang.ppf(u, c, loc=spec["low"], scale=width)


def set_path(data: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of scenario ``data`` with the dotted ``path`` set to ``value`` (mappings on the way
    created): how a ``models.`` path of a group changes its scenario."""
    out = dict(data)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        child = node.get(key)
        node[key] = dict(child) if isinstance(child, Mapping) else {}
        node = node[key]
    node[keys[-1]] = value
    return out


# -- loading -----------------------------------------------------------------------------
def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep spec file; raise :class:`ScenarioError` naming every problem."""
    from .scenario import _with_duplicates

    path = Path(path)
    duplicates: list[str] = []
    data = _read_file(path, duplicates)
    return _with_duplicates(duplicates, lambda: parse_sweep_spec(data, source=str(path),
                                                                 base_dir=path.parent), str(path))


def parse_sweep_spec(data: Any, *, source: str = "<sweep>", base_dir: str | Path = ".") -> SweepSpec:
    """Check already-parsed data as a sweep spec (schema, then meaning, then the base scenario).

    Every problem is reported at once: the later checks run on the parts that passed the
    schema, and a line says what could not be checked, and why.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(SPEC_SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    problems = _dedupe([line for e in errors for line in _lines(e)])
    sweep, failed = _passed(data, errors)
    if sweep is None:  # no sweep: mapping to check further
        raise ScenarioError(problems, source)
    problems += _meaning(sweep, failed)
    base_dir = Path(base_dir)
    read = len(problems)
    scenario_data, scenario_dir, scenario_source = _scenario_data(
        sweep.get("scenario", {}), base_dir, source, problems)
    readable = "scenario" in sweep and len(problems) == read
    why = "sweep.scenario has errors" if "scenario" in data["sweep"] else "sweep.scenario is missing"
    keep = sweep.get("keep", {})
    bands = sweep.get("bands", {})
    sensitivity = sweep.get("sensitivity")
    spec = SweepSpec(
        name=sweep.get("name") or Path(source).stem, source=source,
        scenario_data=scenario_data, base_dir=scenario_dir,
        grid=dict(sweep.get("grid", {})), lists=dict(sweep.get("lists", {})),
        distributions={k: dict(v) for k, v in sweep.get("distributions", {}).items()},
        samples=sweep.get("samples", 1), sampling=sweep.get("sampling", "random"),
        seed=sweep.get("seed", 0), morris_levels=sweep.get("morris_levels", 4),
        signals=list(keep.get("signals", [])), every=keep.get("every", 1),
        kpis=list(keep["kpis"]) if "kpis" in keep else None,
        chunk_size=sweep.get("chunk_size", 1000), retries=sweep.get("retries", 2),
        bands=list(bands.get("signals", [])),
        percentiles=[float(p) for p in bands.get("percentiles", [5, 50, 95])],
        sensitivity=list(sensitivity["kpis"]) if sensitivity else None,
        raw=json.loads(json.dumps(sweep, default=str)),
    )
    base = None
    if readable:
        found, base = _against_scenario(spec, scenario_source)
        problems += found
    else:
        problems += _not_checked(spec, why)
    if problems or base is None:
        raise ScenarioError(problems, source)
    return _with_mode(spec, base, chunk_given="chunk_size" in sweep)


def _with_mode(spec: SweepSpec, base: Scenario, *, chunk_given: bool) -> SweepSpec:
    """``spec`` with how its chunks run (:func:`co2twin.variant_runs.one_at_a_time`), and the
    chunk size of runs one at a time where the spec gives none."""
    from .variant_runs import one_at_a_time

    why = one_at_a_time(base, [*spec.grid, *spec.lists, *spec.distributions])
    if why is None:
        return spec
    return replace(spec, mode=f"one run per variant: {why}",
                   chunk_size=spec.chunk_size if chunk_given else RUN_CHUNK)


def _read_file(path: Path, duplicates: list[str] | None = None) -> Any:
    """The YAML data of ``path``, read as scenario files are (safe, duplicate keys refused:
    raised, or with ``duplicates`` added there, as :func:`co2twin.scenario._read_yaml` does)."""
    # the scenario loader's YAML reader: the same safety rules and messages for both files
    from .scenario import MAX_FILE_BYTES, _read_yaml

    source = str(path)
    try:
        if not path.is_file():
            raise ScenarioError("no such file" if not path.exists() else "expected a YAML file, "
                                "found a directory or special file", source)
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioError(f"expected at most {MAX_FILE_BYTES:,} bytes, found "
                                f"{path.stat().st_size:,}", source)
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read the file ({exc.strerror or exc})", source) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"expected a YAML file in UTF-8, found a byte that is not UTF-8 at "
                            f"offset {exc.start}", source) from None
    return _read_yaml(text, source, duplicates)


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _field(path: Sequence[Any]) -> str:
    """``sweep.grid.inputs.current`` or ``sweep.bands.percentiles[1]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _kind(value: Any) -> str:
    """How a found value reads in a message: ``the number 5.0``, ``a list of 3``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({value})"
    kinds = ((int, float, "the number {!r}"), (str, "the text {!r}"), (list, "a list of {}"),
             (dict, "a mapping"))
    for *types, text in kinds:
        if isinstance(value, tuple(types)):
            return text.format(len(value) if isinstance(value, list) else value)
    return type(value).__name__


_SIGNS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">"}


def _lines(error: Any) -> list[str]:
    """The lines of a JSON Schema error: one per unknown key (with the keys taken there), else
    :func:`_describe`'s one."""
    from .scenario_schema import unknown_key

    found = error.instance
    if error.validator == "additionalProperties" and isinstance(found, dict):
        allowed = list(error.schema.get("properties", {}))
        path = list(error.absolute_path)
        return [unknown_key(_field([*path, key]), key, allowed) for key in found if key not in allowed]
    return [_describe(error)]


def _describe(error: Any) -> str:
    """One line for a JSON Schema error: the field, what was expected, what was found."""
    where = _field(list(error.absolute_path))
    found, kind = error.instance, error.validator
    wanted = error.schema.get("description") if isinstance(error.schema, dict) else None
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        expected, found_text = f"the key {missing!r}", "none"
    elif kind == "type":
        types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        expected = wanted or " or ".join(types)
    elif kind == "enum":
        expected = f"one of {', '.join(map(str, error.validator_value))}"
    elif kind in _SIGNS:
        expected = f"a number {_SIGNS[kind]} {error.validator_value}"
    elif kind in ("minItems", "minLength"):
        expected = wanted or "something non-empty"
    elif kind in ("pattern", "propertyNames"):
        expected = "a dotted scenario path such as inputs.current or plant.reactor.area_cm2"
    else:
        expected = f"{wanted or 'a valid value'} ({error.message})"
    if kind != "required":
        found_text = _kind(found)
    return f"{where}: expected {expected}, found {found_text}"


def _passed(data: Any, errors: Sequence[Any]) -> tuple[dict[str, Any] | None, set[str]]:
    """The ``sweep:`` mapping without the parts that failed the schema, so that the later checks
    see only what passed, and the keys of ``sweep:`` that had a part fail. (None, ...) when
    there is no ``sweep:`` mapping."""
    if not isinstance(data, Mapping) or not isinstance(data.get("sweep"), Mapping):
        return None, set()
    sweep = dict(data["sweep"])
    failed: set[str] = set()
    for error in errors:
        path = list(error.absolute_path)
        if len(path) < 2 or path[0] != "sweep":
            continue  # an unknown or missing key of sweep: (or the top level): nothing to drop
        key = path[1]
        failed.add(key)
        block = sweep.get(key)
        if key in ("grid", "lists", "distributions") and isinstance(block, Mapping):
            # the entry that failed; a bad path's error stands at the block, with the path found
            entry = path[2] if len(path) > 2 else error.instance
            if isinstance(entry, str) and entry in block:
                sweep[key] = {k: v for k, v in block.items() if k != entry}
                continue
        sweep.pop(key, None)
    return sweep, failed


def _not_checked(spec: SweepSpec, why: str) -> list[str]:
    """One line naming the parts of ``spec`` that the base scenario checks, as not checked."""
    parts = [f"sweep.{block}" for block in ("grid", "lists", "distributions") if getattr(spec, block)]
    parts += [f"sweep.{name}" for name, given in (("keep.signals", spec.signals),
              ("keep.kpis", spec.kpis), ("sensitivity.kpis", spec.sensitivity)) if given]
    return [f"{', '.join(parts)}: not checked: {why}"] if parts else []


def _meaning(sweep: Mapping[str, Any], failed: set[str]) -> list[str]:
    """What the schema cannot say: equal list lengths, sensible distributions, one block per path.

    ``failed``: the keys of ``sweep`` that had a part fail the schema (and were left out, in
    part or whole); what they leave out is not reported again as missing.
    """
    problems: list[str] = []
    grid, lists, dists = (sweep.get(k, {}) for k in ("grid", "lists", "distributions"))
    if not (grid or lists or dists) and not failed & {"grid", "lists", "distributions"}:
        problems.append("sweep: expected at least one of grid, lists, distributions, found none "
                        "(nothing varies)")
    lengths = {p: len(v) for p, v in lists.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{p}: {n}" for p, n in lengths.items())
        problems.append(f"sweep.lists: expected lists of one length (they are zipped), found {shown}")
    seen: dict[str, str] = {}
    for block in ("grid", "lists", "distributions"):
        for path in sweep.get(block, {}):
            if path in seen:
                problems.append(f"sweep.{block}.{path}: expected each path in one block, found it "
                                f"in {seen[path]} too")
            seen.setdefault(path, block)
    for path, spec in dists.items():
        problems += _distribution_problems(f"sweep.distributions.{path}", spec)
        if path.startswith(PER_SCENARIO):
            problems.append(f"sweep.distributions.{path}: expected a path one ensemble can vary; "
                            "models.* chooses the surrogates: put it in grid or lists")
    if dists and "samples" not in sweep and "samples" not in failed:
        problems.append("sweep.samples: expected the number of samples of the distributions, "
                        "found none")
    sampling = sweep.get("sampling", "random")
    if sampling != "random" and not dists and "distributions" not in failed:
        problems.append(f"sweep.sampling: {sampling} samples distributions; expected "
                        "sweep.distributions, found none")
    n = sweep.get("samples", 1)
    if sampling == "sobol" and n & (n - 1):
        problems.append(f"sweep.samples: Sobol sampling expected a power of 2, found {n}")
    if "sensitivity" in sweep and sampling not in ("sobol", "morris") and "sampling" not in failed:
        problems.append("sweep.sensitivity: expected sampling: sobol or morris (the analysis needs "
                        f"their designs), found sampling: {sampling}")
    if not problems:
        total = math.prod(len(v) for v in grid.values()) * (len(next(iter(lists.values())))
                                                             if lists else 1)
        d = len(dists)
        total *= n * {"random": 1, "sobol": d + 2, "morris": d + 1}[sampling] if dists else 1
        if total > MAX_VARIANTS:
            problems.append(f"sweep: expected at most {MAX_VARIANTS:,} variants, found {total:,}")
    return problems


def _distribution_problems(where: str, spec: Mapping[str, Any]) -> list[str]:
    kind = spec["dist"]
    low, high = spec.get("low", 0.0), spec.get("high", 0.0)
    if kind in ("uniform", "loguniform", "triangular") and not low < high:
        return [f"{where}: expected low < high, found low {low}, high {high}"]
    if kind == "loguniform" and low <= 0:
        return [f"{where}: loguniform expected low > 0, found {low}"]
    if kind == "triangular" and not low <= spec["mode"] <= high:
        return [f"{where}: expected low <= mode <= high, found mode {spec['mode']} outside "
                f"[{low}, {high}]"]
    if kind == "normal" and not spec["std"] > 0:
        return [f"{where}.std: expected a number > 0, found {spec['std']}"]
    if kind == "lognormal" and not (spec["median"] > 0 and spec["sigma"] > 0):
        return [f"{where}: lognormal expected median > 0 and sigma > 0, found median "
                f"{spec['median']}, sigma {spec['sigma']}"]
    return []


def _scenario_data(value: str | Mapping[str, Any], base_dir: Path, source: str,
                   problems: list[str]) -> tuple[dict[str, Any], Path, str]:
    """The base scenario's data, the folder its relative paths are read from, and its name."""
    if isinstance(value, Mapping):
        return dict(value), base_dir, f"{source} (sweep.scenario)"
    path = base_dir / value
    try:
        data = _read_file(path)
    except ScenarioError as exc:
        problems.append(f"sweep.scenario: expected a readable scenario file, found {exc}")
        return {}, base_dir, str(path)
    if not isinstance(data, dict):
        problems.append(f"sweep.scenario: expected a scenario (a mapping) in {path}, found "
                        f"{_kind(data)}")
        return {}, base_dir, str(path)
    return data, path.parent, str(path)


def _against_scenario(spec: SweepSpec, scenario_source: str) -> tuple[list[str], Scenario | None]:
    """The base scenario and the extreme variants parse; kept signals and KPIs exist. Returns
    the problems and the base scenario (None if it does not parse)."""
    from .ensemble import apply_variant
    from .scenario import parse_scenario
    from .scenario_checks import recorded_signals

    problems: list[str] = []
    try:
        base = parse_scenario(spec.scenario_data, source=scenario_source, base_dir=spec.base_dir)
    except ScenarioError as exc:
        return [f"sweep.scenario: expected a valid scenario, found: {exc}",
                *_not_checked(spec, "the base scenario has errors")], None
    # each path's smallest and largest value (or every value that is not a number) in a variant
    for path, values in _extremes(spec).items():
        for value in values:
            try:  # as the sweep will apply it: a scenario per group, or in the ensemble
                if path.startswith(PER_SCENARIO):
                    parse_scenario(set_path(spec.scenario_data, path, value), source=scenario_source,
                                   base_dir=spec.base_dir)
                else:
                    apply_variant(base, {path: value})
            except ScenarioError as exc:
                lines = "; ".join(exc.problems)
                problems.append(f"{_block(spec, path)}.{path}: the scenario with {path} = {value!r} "
                                f"is invalid: {lines}")
                break
    return problems + _name_problems(spec, recorded_signals(base)), base


def _name_problems(spec: SweepSpec, recorded: Sequence[str]) -> list[str]:
    """Kept and banded signals the scenario records; KPIs that exist (and are kept)."""
    from .kpi import KPI_UNITS, LOOP_KPI_UNITS

    problems: list[str] = []
    names = set(recorded)
    # a loop KPI for all controllers (loop_iae) or one (loop_iae[pi], a controller the scenario has)
    loops = {f"{kpi}[{signal.split('.')[0]}]" for kpi in LOOP_KPI_UNITS for signal in recorded
             if signal.endswith(".output")}
    known = [*KPI_UNITS, *LOOP_KPI_UNITS]
    for i, signal in enumerate(spec.signals):
        if signal not in names:
            problems.append(f"sweep.keep.signals[{i}]: expected a signal the scenario records "
                            f"(see `co2twin signals`), found {signal!r}")
    for i, signal in enumerate(spec.bands):
        if signal not in spec.signals:
            problems.append(f"sweep.bands.signals[{i}]: expected one of the signals in "
                            f"sweep.keep.signals, found {signal!r}")
    for key, chosen in (("keep.kpis", spec.kpis or []), ("sensitivity.kpis", spec.sensitivity or [])):
        for i, name in enumerate(chosen):
            if name not in KPI_UNITS and name not in LOOP_KPI_UNITS and name not in loops:
                problems.append(f"sweep.{key}[{i}]: expected a KPI ({', '.join(known)}, or "
                                f"loop_iae[<controller>]), "
                                f"found {name!r}")
    if spec.kpis is not None and spec.sensitivity:
        for i, name in enumerate(spec.sensitivity):
            if name in KPI_UNITS and name not in spec.kpis:
                problems.append(f"sweep.sensitivity.kpis[{i}]: expected a KPI that keep.kpis keeps, "
                                f"found {name!r}")
    return problems


def _block(spec: SweepSpec, path: str) -> str:
    for block in ("grid", "lists", "distributions"):
        if path in getattr(spec, block):
            return f"sweep.{block}"
    return "sweep"


def _extremes(spec: SweepSpec) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for path, values in {**spec.grid, **spec.lists}.items():
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        others = [v for v in values if v not in numbers]
        out[path] = ([min(numbers), max(numbers)] if numbers else []) + others
    for path, dist in spec.distributions.items():
        if _distribution_problems(path, dist) or path.startswith(PER_SCENARIO):
            continue  # reported already; its quantiles mean nothing
        # the 0.01 % and 99.99 % quantiles: what a sample may reach in practice
        out[path] = [float(quantile(dist, 1e-4)), float(quantile(dist, 1 - 1e-4))]
    return out
