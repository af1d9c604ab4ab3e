"""Ensembles: N variants of one scenario in one pass, each signal an array of N.

:func:`run_ensemble` builds the scenario once, as :func:`co2twin.scenario.build` does, and
runs it on the same engine (the SimPy loop stays the master) with every signal an array of
one value per variant: the components and the surrogates step all variants at once (the
surrogates' fused network bank on its batch path). Each variant equals, to 1e-12, the same
scenario run alone with the variant's overrides applied (:func:`apply_variant`, then
:func:`co2twin.run`); not bit for bit, because NumPy's vectorised exp/tanh/matrix products
may differ from the scalar ones in the last bit.

A variant is a mapping of dotted scenario paths to values. The paths an ensemble can vary
(:data:`PATHS`) are those that change values, not structure:

==============================================  =================================================
``seed``                                        the run's seed (sensor noise)
``plant.<component>.<parameter>``               a plant component's parameter
                                                (also spelled ``parameters.<component>.<parameter>``)
``inputs.<name>``                               a number (a constant), or a mapping as in the
                                                scenario file (constant, steps, ramp)
``inputs.<name>.constant``                      a constant
``inputs.<name>.steps``                         ``[[t, value], ...]``
``inputs.<name>.scale``                         a factor on the scenario's profile of the input
                                                (its constant, step values or ramp ends)
``events[<i>].<field>``                         a field of event ``i``: ``at``, ``value``, ``to``,
                                                ``duration``, ``fraction``, ``rate``, ``offset``,
                                                ``std``, ``steps`` (``events.<i>.<field>`` too)
``controllers.<name>.<field>``                  a number of a scenario controller's spec:
                                                ``gains.kp``, ``limits.high``, ``bias``,
                                                ``hysteresis``, ``ratio`` ... (tuning sweeps)
==============================================  =================================================

``<name>`` is a plant input (``current``) or ``component.port``; values are in the signal's
own unit. Anything else (models, components, wiring, a controller's type, signals or sample
time, a Python controller, the solar supply's parameters, timing, limits, an event's type or
target) would change the structure: such variants belong in different ensembles (or run one
at a time: :mod:`co2twin.variant_runs`), and :func:`run_ensemble` refuses them naming the
path. A scenario with the solar supply is an ensemble like any other (its components step
arrays; its signals are recorded for its KPIs, balances and flags). An event's time may differ
between variants (input and parameter events; a sensor fault's may not).

Memory: the recorded rows stay in memory, ``rows x columns x N x 8`` bytes, with the kept
signals and the ~50 signals the KPIs and balances read as columns and ``rows`` = steps /
``every`` + 1: choose N (a chunk of a sweep) and ``every`` to bound it.

Threads: the surrogates' networks (most of an ensemble step's arithmetic) run on the
variants in blocks shared by :func:`run_ensemble`'s ``threads`` (default: as many as BLAS
may use, one in a Dask worker), begun while the reactor computes its physics; the results
are the same bits for any number. On a machine whose cores are busy with other work, one
thread (``threads=1``, or ``OPENBLAS_NUM_THREADS=1``) can be the faster.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from components.plant import FLAGS, KEY_SIGNALS, recorded_as

from cosim.ensemble_recorder import EnsembleRecorder
from cosim.errors import ScenarioError, WiringError
from cosim.graph import match_signals
from cosim.events import Event, RampInput, SensorFault, SetInput, SetParameter, SwitchProfile
from cosim.profiles import Constant, Profile, Ramp, Shifted, Steps
from cosim.simulation import Simulation
from cosim.variants import ArrayRamp, Broadcast, Masked, PerVariant, Scaled, VariantRNG
from models.bank import batch_threads

from .controllers import SPEC_PARAMETERS
from .ensemble_result import EnsembleResult
from .kpi import _ROWS, _TOTALS
from .scenario import (
    _close,
    _event,
    build,
    envelopes,
    operating_limits,
)
from .scenario_schema import InputSpec, Scenario
from .supply import COMPONENTS as SUPPLY_COMPONENTS
from .supply import driven_input, redirect_event
from .supply_schema import PROFILE_PORTS
from .variant_paths import PATHS, SUPPLY_SECTIONS, VariantPath, apply_variant, parse_path, probe

__all__ = ["PATHS", "SUPPLY_SECTIONS", "EnsembleResult", "apply_variant", "scalar_components",
           "batch_thread_count", "blas_threads", "build_ensemble", "record_ensemble", "record_every",
           "run_ensemble"]

#: the signals :func:`co2twin.kpi.kpis` reads beyond the flags, limits and balances
_KPI_SIGNALS = ("reactor.charge_passed", "reactor.energy", "reactor.formate_produced",
                "reactor.co2_fed", "feed.fresh_co2_fed", "separation.tank_formate_conc",
                "separation.tank_formic_acid")
#: the types :func:`_numbers` converts at once (exact types: no bool, no NumPy scalar)
_PLAIN = frozenset({int, float})
_PLAIN_OR_NONE = frozenset({int, float, type(None)})

# -- the plan: per path, one value per variant ------------------------------------------------------
def _plan(scenario: Scenario, variants: Sequence[Mapping[str, Any]],
          sim: Simulation) -> dict[VariantPath, list[Any]]:
    """Path -> a list of N values (``None`` where a variant keeps the scenario's)."""
    n = len(variants)
    plan: dict[VariantPath, list[Any]] = {}
    # path as written -> its plan's list (two spellings of one path share it): a string's
    # hash is cached, a VariantPath's is computed anew each time, and there are N x paths lookups
    lists: dict[str, list[Any]] = {}
    for i, variant in enumerate(variants):
        if type(variant) is not dict and not isinstance(variant, Mapping):
            raise ScenarioError(f"variants[{i}]: expected a mapping of dotted paths to values, "
                                f"found {type(variant).__name__}", scenario.source)
        for path, value in variant.items():
            values = lists.get(path)
            if values is None:
                try:
                    p = parse_path(path, scenario, sim, f"variants[{i}]")
                except ScenarioError as exc:
                    raise ScenarioError(exc.problems, scenario.source) from None
                if p.kind == "supply":
                    raise ScenarioError(f"variants[{i}]: {_supply_refusal(path, p)}", scenario.source)
                values = plan.get(p)
                if values is None:
                    values = plan[p] = [None] * n
                lists[path] = values
            values[i] = value
    return plan


def _supply_refusal(path: str, p: VariantPath) -> str:
    """Why one ensemble does not take a ``supply.*`` path, and what to do."""
    if p.key[0] in PROFILE_PORTS:
        component, port = PROFILE_PORTS[p.key[0]]
        return (f"{path!r} sets a supply profile's constant; in an ensemble vary the input it "
                f"drives: inputs.{component}.{port}")
    return (f"{path!r} varies the solar supply's parameters, which one ensemble does not (its "
            "components take them as numbers): run such variants one at a time "
            "(co2twin.variant_runs.run_variants; co2twin sweep does so itself)")


def _numbers(values: list[Any], base: Any, what: str, source: str) -> np.ndarray:
    """One float per variant (``base`` where ``None``); refuses text, booleans and non-finite."""
    if type(base) in _PLAIN and set(map(type, values)) <= _PLAIN_OR_NONE:
        # plain ints and floats (a sweep's every value): converted at once, the loop below
        # only to name a non-finite one
        out = np.array([base if v is None else v for v in values], dtype=float)
        if np.isfinite(out).all():
            return out
    out = np.empty(len(values))
    for i, given in enumerate(values):
        v = base if given is None else given
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ScenarioError(f"variants[{i}]: {what}: expected a number, found {v!r}", source)
        if not math.isfinite(float(v)):
            raise ScenarioError(f"variants[{i}]: {what}: expected a finite number, found {v!r}",
                                source)
        out[i] = float(v)
    return out


def _seeds(values: list[Any], base: int, source: str) -> np.ndarray:
    if values.count(None) == len(values) and type(base) is int and 0 <= base < 2**63:
        return np.full(len(values), base, dtype=np.uint64)  # no variant sets its seed
    out = np.empty(len(values), dtype=np.uint64)
    for i, given in enumerate(values):
        v = base if given is None else given
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 2**63:
            raise ScenarioError(f"variants[{i}]: seed: expected a whole number in [0, 2**63), "
                                f"found {v!r}", source)
        out[i] = v
    return out


# -- inputs ---------------------------------------------------------------------------------------
def _input_profile(scenario: Scenario, sim: Simulation, target: str, fields: Mapping[str, list[Any]],
                   n: int) -> Profile:
    """The profile of input ``target`` for all variants: the scenario's where a variant sets
    nothing, else the variant's spec or scaled profile."""
    base = sim.profile(target)
    if not fields:
        return Broadcast(base, n)
    if isinstance(base, Constant) and len(fields) == 1 and set(fields) <= {"", "constant"}:
        values = next(iter(fields.values()))
        if set(map(type, values)) <= _PLAIN_OR_NONE:  # constants only (a sweep's usual case)
            return Constant(_numbers(values, base.level, f"inputs.{target}",  # type: ignore[arg-type]
                                     scenario.source))
    specs = _input_specs(scenario, target, fields, n)
    if all(s is None or _tag(s) == "scale" for s in specs):  # scaled or as it was
        if not isinstance(base, (Constant, Steps, Ramp)):
            raise ScenarioError(f"inputs.{target}.scale: a CSV profile cannot be scaled by a "
                                "variant; scale the file's values, or give the profile as steps",
                                scenario.source)
        factors = _numbers([None if s is None else s[1] for s in specs], 1.0,
                           f"inputs.{target}.scale", scenario.source)
        return Scaled(base, factors)
    if isinstance(base, Constant) and all(s is None or _tag(s) == "constant" for s in specs):
        return Constant(_numbers([None if s is None else s[1] for s in specs],  # type: ignore[arg-type]
                                 base.level, f"inputs.{target}", scenario.source))
    keys: dict[str, int] = {}
    profiles: list[Profile] = []
    index = np.empty(n, dtype=np.intp)
    for i, spec in enumerate(specs):
        key = "base" if spec is None else repr(spec) if isinstance(spec, tuple) else \
            spec.model_dump_json()
        if key not in keys:
            keys[key] = len(profiles)
            profiles.append(_variant_profile(scenario, base, spec, target))
        index[i] = keys[key]
    return PerVariant(profiles, index)


def _input_specs(scenario: Scenario, target: str, fields: Mapping[str, list[Any]],
                 n: int) -> list[Any]:
    """Per variant: None (the scenario's profile), ``("scale", f)``, ``("constant", c)`` or an
    :class:`InputSpec`."""
    specs: list[Any] = [None] * n
    for field, values in fields.items():
        for i, v in enumerate(values):
            if v is None:
                continue
            if specs[i] is not None:
                raise ScenarioError(f"variants[{i}]: sets input {target} twice (inputs.<name> and "
                                    f"inputs.<name>.{field}); give one", scenario.source)
            if field == "scale":
                specs[i] = ("scale", v)
            elif field in ("", "constant") and isinstance(v, (int, float)) and not isinstance(v, bool):
                specs[i] = ("constant", v)  # the common case, without a schema check per variant
            else:
                specs[i] = _input_spec(field, v, target, i, scenario)
    return specs


def _variant_profile(scenario: Scenario, base: Profile, spec: Any, target: str) -> Profile:
    """One variant's profile of an input from what :func:`_input_specs` made of it."""
    if spec is None:
        return base
    if _tag(spec) == "constant":
        return Constant(float(_numbers([spec[1]], 0.0, f"inputs.{target}", scenario.source)[0]))
    if _tag(spec) == "scale":
        factor = float(_numbers([spec[1]], 1.0, f"inputs.{target}.scale", scenario.source)[0])
        return _scaled_profile(base, factor, target, scenario)
    return _spec_profile(scenario, spec)


def _tag(spec: Any) -> str | None:
    """``scale`` or ``constant`` for a variant's (tag, number), None for an :class:`InputSpec`."""
    return spec[0] if isinstance(spec, tuple) else None


def _input_spec(field: str, value: Any, target: str, i: int, scenario: Scenario) -> InputSpec:
    from pydantic import ValidationError

    data = value if not field else {field: value}
    if isinstance(data, Mapping) and data.get("csv") is not None:
        raise ScenarioError(f"variants[{i}]: inputs.{target}: a variant's profile may be a "
                            "constant, steps or a ramp, not a CSV file", scenario.source)
    try:
        return InputSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                             for e in exc.errors())
        raise ScenarioError(f"variants[{i}]: inputs.{target}{'.' + field if field else ''}: "
                            f"{problems}, found {value!r}", scenario.source) from None


def _spec_profile(scenario: Scenario, spec: InputSpec) -> Profile:
    if spec.constant is not None:
        return Constant(spec.constant)
    if spec.steps is not None:
        return Steps(tuple(spec.steps))
    assert spec.ramp is not None  # _input_spec refused CSV; the schema lets exactly one through
    r = spec.ramp
    return Ramp(r.initial, r.to, scenario.start + r.at, r.duration)


def _scaled_profile(base: Profile, factor: float, target: str, scenario: Scenario) -> Profile:
    """``base`` with its values times ``factor``, as :func:`apply_variant` writes it."""
    if isinstance(base, Constant):
        return Constant(base.level * factor)
    if isinstance(base, Steps):
        return Steps(tuple((t, v * factor) for t, v in base.points))
    if isinstance(base, Ramp):
        return Ramp(base.initial * factor, base.final * factor, base.start, base.duration)
    raise ScenarioError(f"inputs.{target}.scale: a CSV profile cannot be scaled by a variant; "
                        "scale the file's values, or give the profile as steps", scenario.source)


# -- events ----------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _VariantEvent(Event):
    """Event ``index`` of the scenario at this time, for the variants in ``mask`` (None: all),
    each with its own values: ``events[g]`` is the engine event of the variants where
    ``groups == g``."""

    index: int = 0
    events: tuple[Event, ...] = ()
    groups: Any = None  # array of N: which of ``events`` each variant takes
    mask: Any = None  # array of N booleans, or None for every variant
    drives: Any = None  # the ensemble's _Drives

    def apply(self, sim: Any) -> str:
        first = self.events[0]
        n = len(self.groups)
        pick = self._values
        if isinstance(first, SetInput):
            level: Any = pick(lambda e: e.value)  # Constant holds a float, or an array of N
            self.drives.drive(sim, first.target, Constant(level), self.mask)
            text = f"set {first.target}"
        elif isinstance(first, RampInput):
            initial = np.broadcast_to(sim.get(first.target), (n,))
            ramp = ArrayRamp(initial, pick(lambda e: e.to), sim.time, pick(lambda e: e.duration))
            self.drives.drive(sim, first.target, ramp, self.mask)
            text = f"ramp {first.target}"
        elif isinstance(first, SwitchProfile):
            now = sim.time
            shifted = [Shifted(e.profile, now) for e in self.events]  # type: ignore[attr-defined]
            profile = PerVariant(shifted, self.groups) if len(shifted) > 1 else Broadcast(shifted[0], n)
            self.drives.drive(sim, first.target, profile, self.mask)
            text = f"switch {first.target} to {first.label}"
        elif isinstance(first, SetParameter):
            values = pick(lambda e: e.value)
            if self.mask is not None:
                component, _, name = first.target.partition(".")
                old = getattr(sim.components[component].p, name)
                values = np.where(self.mask, values, old)
            sim.set_parameter(first.target, values)
            text = first.label or f"set {first.target}"
        elif isinstance(first, SensorFault):
            sim.sensor_fault(first.target, first.mode, rate=pick(lambda e: e.rate),
                             offset=pick(lambda e: e.offset), std=pick(lambda e: e.std))
            text = f"sensor {first.target}: {first.mode}"
        else:  # only the kinds above come from a scenario file
            raise ScenarioError(f"events[{self.index}]: an ensemble cannot apply a "
                                f"{type(first).__name__}")
        count = "all variants" if self.mask is None else f"{int(np.sum(self.mask))} variant(s)"
        spread = "" if len(self.events) == 1 else f", {len(self.events)} different values"
        return f"events[{self.index}]: {text} ({count}{spread})"

    def _values(self, get: Callable[[Any], Any]) -> np.ndarray:
        """One value per variant of a field of the engine events."""
        return np.array([float(get(e)) for e in self.events])[self.groups]


@dataclass(frozen=True, eq=False)
class _VariantSensorFault(_VariantEvent, SensorFault):
    """A sensor fault of an ensemble: a :class:`SensorFault` to the engine, which then gives
    the signal its true-value slot before the start (and records ``<signal>:true``)."""


class _Drives:
    """The profile each input follows now, so that an event in some variants only keeps the
    others' profile (:class:`~cosim.variants.Masked`)."""

    def __init__(self, profiles: dict[str, Profile]) -> None:
        self.profiles = profiles

    def drive(self, sim: Simulation, target: str, profile: Profile, mask: Any) -> None:
        if mask is not None:
            profile = Masked(self.profiles[target], profile, mask)
        self.profiles[target] = profile
        sim.drive(target, profile)


def _schedule_events(scenario: Scenario, sim: Simulation, plan: dict[VariantPath, list[Any]], n: int,
                     drives: _Drives) -> None:
    """The scenario's events, each with its values per variant, at each variant's time."""
    from pydantic import ValidationError

    for index, spec in enumerate(scenario.events):
        fields = {p.key[1]: values for p, values in plan.items()
                  if p.kind == "event" and p.key[0] == index}
        base = spec.model_dump(by_alias=True, exclude_unset=True)
        keys: dict[str, int] = {}
        specs: list[Any] = []
        groups = np.empty(n, dtype=np.intp)
        for i in range(n):
            update = {f: v[i] for f, v in fields.items() if v[i] is not None}
            key = json.dumps(update, sort_keys=True, default=repr)
            if key not in keys:
                try:
                    one = type(spec).model_validate({**base, **update}) if update else spec
                except ValidationError as exc:
                    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                         for e in exc.errors())
                    raise ScenarioError(f"variants[{i}]: events[{index}]: {problems}",
                                        scenario.source) from None
                if not scenario.start <= one.at < scenario.end:  # as the scenario's checks say it
                    raise ScenarioError(f"variants[{i}]: events[{index}].at: expected a time within "
                                        f"[{scenario.start:g}, {scenario.end:g}) s, found {one.at:g}",
                                        scenario.source)
                keys[key] = len(specs)
                specs.append(one)
            groups[i] = keys[key]
        times = np.array([s.at for s in specs])[groups]
        distinct = sorted(set(times.tolist()))
        if len(distinct) > 1 and spec.type.startswith("sensor_"):
            raise ScenarioError(f"events[{index}].at: a sensor fault's time cannot differ between "
                                "the variants of an ensemble; put them in different ensembles",
                                scenario.source)
        for at in distinct:
            mask = None if len(distinct) == 1 else times == at
            used = sorted(set(groups[times == at].tolist()))
            remap = np.zeros(len(specs), dtype=np.intp)
            remap[used] = np.arange(len(used))
            # with a supply, an event on the current moves the energy manager's request, as the
            # single run's build moves it (co2twin.supply.attach_supply)
            moved = [redirect_event(specs[g]) if scenario.supply is not None else specs[g] for g in used]
            engine = tuple(_event(scenario, one, sim) for one in moved)
            common: dict[str, Any] = {"index": index, "events": engine, "groups": remap[groups], "mask": mask,
                      "drives": drives}
            first = engine[0]
            if isinstance(first, SensorFault):
                sim.schedule(_VariantSensorFault(at, first.target, first.mode,
                                                 **common))
            else:
                sim.schedule(_VariantEvent(at, **common))


# -- running --------------------------------------------------------------------------------------
def run_ensemble(scenario: Scenario, variants: Sequence[Mapping[str, Any]], *,
                 keep: Sequence[str] | None = None, every: int | None = None,
                 first_variant: int = 0, threads: int | None = None) -> EnsembleResult:
    """Run every variant of ``scenario`` in one pass; see the module's docstring.

    ``variants``: one mapping of dotted path -> value per variant (``{}`` is the scenario as
    it is). ``keep``: the signals (names or glob patterns) :meth:`EnsembleResult.frame_long`
    gives; default the plant's key signals. ``every``: record every that many steps (default
    the scenario's ``record.every``); the KPIs and balances are those of a single run recorded
    at that rate. ``first_variant``: the number of the first variant in the results (a
    sweep's chunk). ``threads``: how many threads run the surrogates' networks on the
    variants (:func:`models.bank.batch_threads`; the same results for any number), default
    :func:`batch_thread_count`. Raises :class:`ScenarioError` for a path that cannot vary,
    naming it, and :class:`~cosim.errors.SimulationError` as a single run would (naming the
    variant).
    """
    every = record_every(scenario, every)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise ScenarioError(f"threads: expected a whole number >= 1, found {threads!r}",
                            scenario.source)
    n = len(variants)
    sim = build_ensemble(scenario, variants)
    try:
        kept = _signals(sim, keep, [c for c, _ in KEY_SIGNALS])
        recorded = _signals(sim, None if scenario.record.signals == "all" else scenario.record.signals,
                            None)
        needed = [c for c in _kpi_signals(scenario, sim) if c in recorded]
        sim.record(list(dict.fromkeys([*kept, *needed])), every=every)
        record_ensemble(sim, n, rows=scenario.steps // every + 1)
        count = batch_thread_count() if threads is None else threads
        with blas_threads(), batch_threads(count):
            sim.advance_to(scenario.end)
        recorder: EnsembleRecorder = sim.recorder  # type: ignore[assignment]
        meta = {"name": scenario.name, "source": scenario.source, "step_s": scenario.step,
                "duration_s": scenario.duration, "every": every,
                "limits": operating_limits(scenario), "envelopes": envelopes(sim),
                "controllers": list(scenario.controllers)}
    finally:
        _close(sim.components.values())
    return EnsembleResult(recorder.times, recorder.columns, recorder.units, recorder.data(),
                          kept=kept, meta=meta, events=list(sim.event_log),
                          first_variant=first_variant)


def record_every(scenario: Scenario, every: int | None) -> int:
    """Every how many steps the variants of ``scenario`` are recorded: ``every``, checked, or
    the scenario's own ``record.every`` (an ensemble's and :mod:`co2twin.variant_runs`')."""
    every = scenario.record.every if every is None else every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ScenarioError(f"every: expected a whole number >= 1, found {every!r}", scenario.source)
    return every


def build_ensemble(scenario: Scenario, variants: Sequence[Mapping[str, Any]]) -> Simulation:
    """The simulation of ``variants`` of ``scenario``, built as :func:`co2twin.scenario.build`
    builds one, not yet initialised: every input driven by a profile of one value per
    variant, the events applied per variant, the noise drawn per variant's seed. It records
    nothing yet: choose the signals (``sim.record``), then :func:`record_ensemble`. What
    :func:`run_ensemble` and a vectorised environment run."""
    n = len(variants)
    if n < 1:
        raise ScenarioError("expected at least one variant, found none", scenario.source)
    built = probe(scenario)
    _require_arrays(built, scenario)
    plan = _plan(scenario, variants, built)
    params: dict[str, dict[str, Any]] = {}
    for p, values in plan.items():
        if p.kind == "parameter":
            component, parameter = p.key
            base = scenario.plant[component].get(parameter) if scenario.plant and \
                component in scenario.plant else None
            default = base if base is not None else built.components[component].parameter(parameter).default
            params.setdefault(component, {})[parameter] = _numbers(
                values, default, f"plant.{component}.{parameter}", scenario.source)
    plant = scenario.plant
    if params and plant is not False:
        plant = {c: {**plant.get(c, {}), **params.get(c, {})} for c in {*plant, *params}}
    sim = build(scenario.model_copy(update={"events": [], "plant": plant}))
    try:
        profiles: dict[str, Profile] = {}
        for target in sim.external_inputs:
            fields = {p.key[1]: v for p, v in plan.items()
                      if p.kind == "input" and driven_input(p.key[0], sim.external_inputs) == target}
            profiles[target] = _input_profile(scenario, sim, target, fields, n)
            sim.drive(target, profiles[target])
        _schedule_events(scenario, sim, plan, n, _Drives(profiles))
        _set_controllers(scenario, sim, plan)
        seeds = next((v for p, v in plan.items() if p.kind == "seed"), [None] * n)
        sim.rng = VariantRNG(_seeds(seeds, scenario.seed, scenario.source))  # type: ignore[assignment]
    except BaseException:
        _close(sim.components.values())
        raise
    return sim


def _set_controllers(scenario: Scenario, sim: Simulation, plan: Mapping[VariantPath, list[Any]]) -> None:
    """The controllers' parameters the variants vary, one value per variant (the spec's own
    value where a variant leaves it), checked against the parameter's bounds per variant."""
    for p, values in plan.items():
        if p.kind != "controller":
            continue
        name, field = p.key
        comp, parameter = sim.components[name], SPEC_PARAMETERS[field]
        where = f"controllers.{name}.{field}"
        numbers = _numbers(values, getattr(comp.p, parameter), where, scenario.source)
        try:
            comp.set_parameter(parameter, numbers, running=False)
        except WiringError as exc:
            raise ScenarioError(f"{where}: {exc}", scenario.source) from None
    for name in scenario.controllers:
        params = sim.components[name].p
        low, high = getattr(params, "out_min", None), getattr(params, "out_max", None)
        if isinstance(low, np.ndarray) or isinstance(high, np.ndarray):
            crossed = np.flatnonzero(np.asarray(low) > np.asarray(high))
            if crossed.size:
                i = int(crossed[0])
                lo, hi = (float(v[i]) if isinstance(v, np.ndarray) else v for v in (low, high))
                raise ScenarioError(f"controllers.{name}.limits: low {lo:g} above high {hi:g} in "
                                    f"variant {i} (of {crossed.size} such variant(s))",
                                    scenario.source)


def record_ensemble(sim: Simulation, n: int, *, rows: int = 16) -> None:
    """Record ``sim``'s chosen signals with one value per variant (:class:`EnsembleRecorder`);
    ``rows``: how many rows the run will record (they then go into one block)."""
    sim.record_with(lambda columns, units, **kw: EnsembleRecorder(columns, units, n=n,
                                                                  rows=rows, **kw))


def blas_threads() -> Any:
    """A context in which BLAS runs on :data:`_BLAS_THREADS` thread(s) (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(_BLAS_THREADS)


def batch_thread_count() -> int:
    """The threads :func:`run_ensemble` runs the networks on by default: as many as BLAS may
    use here (threadpoolctl; ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` or a
    ``threadpool_limits`` around the call set it), so a process that should keep to one core
    (a Dask worker: its nanny sets those variables to 1) does."""
    from threadpoolctl import threadpool_info

    counts = [int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(1, min(counts)) if counts else 1


#: why BLAS runs single-threaded in an ensemble: its products are small (tens of rows times N
#: columns), where OpenBLAS's threads cost more in hand-over than they gain, and badly so on
#: a busy machine; parallelism across cores comes from running chunks side by side (sweeps)
_BLAS_THREADS = 1


def scalar_components(scenario: Scenario) -> list[str]:
    """The scenario's components that step one run at a time (a Python controller, the solar
    supply, FMUs), each as ``name (module.Class)``: an ensemble refuses them, and ``co2twin
    sweep`` runs such a scenario's variants one by one (:mod:`co2twin.variant_runs`)."""
    return _scalar(probe(scenario))


def _scalar(sim: Simulation) -> list[str]:
    return [f"{name} ({type(c).__module__}.{type(c).__name__})" for name, c in sim.components.items()
            if not getattr(c, "supports_arrays", False)]


def _require_arrays(sim: Simulation, scenario: Scenario) -> None:
    """Refuse components that do not step arrays of variants (a Python controller, the solar supply, FMUs)."""
    scalar = _scalar(sim)
    if scalar:
        raise ScenarioError(f"an ensemble steps every component on arrays of variants; these do "
                            f"not (yet): {', '.join(scalar)}. Run such scenarios' variants one at a "
                            "time (co2twin.variant_runs.run_variants; co2twin sweep does so itself)",
                            scenario.source)


def _signals(sim: Simulation, patterns: Sequence[str] | None, default: Sequence[str] | None,
             ) -> list[str]:
    """The signals named or matched by ``patterns`` (all if both are None)."""
    if patterns is None:
        if default is None:
            return list(sim.signals)
        return [s for s in default if s in sim.signals]
    return match_signals(sim.signals, [patterns] if isinstance(patterns, str) else patterns,
                         lambda pattern: ScenarioError(f"keep: {pattern!r} matches no signal; known: "
                                                       f"{', '.join(sim.signals)}"))


def _kpi_signals(scenario: Scenario, sim: Simulation) -> list[str]:
    """Every signal :func:`co2twin.kpi.kpis`, ``balances`` and ``flags`` read."""
    names: list[str] = [*_KPI_SIGNALS, *operating_limits(scenario)]
    names += [f"{n}.{port}" for n in scenario.controllers for port in ("error", "output", "saturated")]
    for f in FLAGS:
        names += [f.column, *(c for c in (f.asked, f.got) if c), *(c for e in f.effects for c in e)]
    names += [s for s in sim.signals if s.startswith("reactor.") and s.endswith(
        ("_bounded", "_correction", "_outside_envelope"))]
    for columns in (*_ROWS.values(), *_TOTALS.values()):
        names += columns
    for model in envelopes(sim).values():
        names += [recorded_as(f"reactor.{name}") for name in model["inputs"]]
    if scenario.supply is not None:  # its KPIs, balances and flags read its components' signals
        names += [s for s in sim.signals if s.split(".")[0] in SUPPLY_COMPONENTS]
    return [s for s in dict.fromkeys(names) if s in sim.signals]
