"""The test campaign run on the reference plant: the plant log surrogates train on.

Design of experiments: a Latin hypercube over the operating envelope
(:data:`ENVELOPE`), a few points with the cell at rest, and dynamic step tests
(current, gas flow, CO2 fraction) sampled through their transients. Every
experiment starts the cell from rest: ambient temperature, fresh anolyte, a
drained GDE (an unlogged shutdown of ``GAP_S`` separates experiments). A DoE
point settles for three time constants (95 %) of its slowest state (cell temperature,
anolyte residence, GDE flooding; at most ``settle_s``): the rest of its run is
"steady". A step test settles ``settle_s`` and then takes its step. All experiments run in a random
order on ONE catalyst, new at the start, so ``charge_passed`` and
``hours_on_stream`` grow through the campaign and the catalyst ages in it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from models import electrochemistry as ec
from models.plantlog import OUTPUTS, validate_log
from models.reference_plant import INPUTS, ReferencePlant

__all__ = [
    "DEFAULT_POINTS", "ANOLYTE_EXCESS", "ENVELOPE", "LOG_SCALE", "GAP_S", "Batch", "latin_hypercube", "plan",
    "generate",
]

#: operating envelope of the DoE: name -> (low, high); current_density also takes 0 (rest)
ENVELOPE: dict[str, tuple[float, float]] = {
    "current_density": (20.0, 320.0),
    "gas_flow": (20.0, 300.0),
    "co2_fraction": (10.0, 100.0),
    "humidity": (40.0, 100.0),
    "anolyte_flow": (1.0, 20.0),
    "catholyte_flow": (1.0, 20.0),
    "anolyte_conc": (0.5, 3.0),
    "catholyte_conc": (0.5, 2.0),
    "ambient_temperature": (15.0, 35.0),
}
#: factors sampled uniformly in log: their effects scale with ratios (residence
#: times, transport limits), so low flows get as much coverage as high ones
LOG_SCALE = frozenset({"gas_flow", "anolyte_flow", "catholyte_flow"})
#: unlogged shutdown between experiments [s]
GAP_S = 1800.0
#: step tests change one of these; one step test per this many DoE points
_STEPPED = ("current_density", "gas_flow", "co2_fraction")
_POINTS_PER_STEP_TEST = 4
#: share of DoE points with the cell at rest (no current)
_REST_SHARE = 0.05
#: OH- fed to the anolyte over what the anode consumes (I/F) at every DoE point: a real
#: campaign keeps the anolyte alkaline (the pilot's limit is pH >= 12, and CO2 crossover
#: takes more), so points that would exhaust it get more anolyte flow, then concentration
ANOLYTE_EXCESS = 1.5
#: step tests start from at least this current density (a step from rest is a start-up)
_STEP_BASE_J = 50.0
#: design points of the default campaign: enough distinct operating points for the
#: hybrid models to meet their fidelity targets (160 and 640 were not; see the README)
DEFAULT_POINTS = 1280


def latin_hypercube(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in [0, 1)^d, one in each of the n equal slices of every axis."""
    strata = np.argsort(rng.random((d, n)), axis=1).T
    return (strata + rng.random((n, d))) / n


def _scale(unit: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    for i, name in enumerate(names):
        lo, hi = ENVELOPE[name]
        out[name] = (np.exp(np.log(lo) + unit[:, i] * np.log(hi / lo)) if name in LOG_SCALE
                     else lo + unit[:, i] * (hi - lo))
    return out


def _design(n_points: int, n_steps_tests: int, rng: np.random.Generator, area: float,
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """DoE points, step-test base points, step kinds and step targets (fractions of range)."""
    names = tuple(ENVELOPE)
    points = _scale(latin_hypercube(n_points, len(names), rng), names)
    rest = rng.choice(n_points, size=round(_REST_SHARE * n_points), replace=False)
    points["current_density"][rest] = 0.0
    base = _scale(latin_hypercube(n_steps_tests, len(names), rng), names)
    lo, hi = ENVELOPE["current_density"]
    base["current_density"] = _STEP_BASE_J + (base["current_density"] - lo) / (hi - lo) * (hi - _STEP_BASE_J)
    for design in (points, base):
        _keep_anolyte_alkaline(design, area)
    kinds = np.arange(n_steps_tests) % len(_STEPPED)
    size = rng.uniform(0.25, 0.6, n_steps_tests) * rng.choice([-1.0, 1.0], n_steps_tests)
    return points, base, kinds, size


def _keep_anolyte_alkaline(design: dict[str, np.ndarray], area_cm2: float) -> None:
    """Raise anolyte flow, then concentration, where OH- supply < ANOLYTE_EXCESS x I/F."""
    need = ANOLYTE_EXCESS * design["current_density"] * area_cm2 / 1000.0 / ec.F * 60000.0  # mol/L*mL/min
    q_max = ENVELOPE["anolyte_flow"][1]
    c_max = ENVELOPE["anolyte_conc"][1]
    short = design["anolyte_flow"] * design["anolyte_conc"] < need
    design["anolyte_flow"] = np.where(short, np.minimum(need / design["anolyte_conc"], q_max),
                                      design["anolyte_flow"])
    short = design["anolyte_flow"] * design["anolyte_conc"] < need
    design["anolyte_conc"] = np.where(short, np.minimum(need / design["anolyte_flow"], c_max),
                                      design["anolyte_conc"])


def _identity(v: Any) -> Any:
    return v


def _stepped(base: dict[str, np.ndarray], kinds: np.ndarray, size: np.ndarray) -> dict[str, np.ndarray]:
    """Values after the step: ``size`` of the (log) range away, reflected to stay inside."""
    after = {k: v.copy() for k, v in base.items()}
    for kind, name in enumerate(_STEPPED):
        sel = kinds == kind
        lo, hi = ENVELOPE[name]
        log = name in LOG_SCALE
        f = np.log if log else _identity
        a, b = f(lo), f(hi)
        pos = (f(base[name][sel]) - a) / (b - a) + size[sel]
        pos = np.where(pos > 1.0, pos - 2.0 * size[sel], pos)
        pos = np.where(pos < 0.0, pos - 2.0 * size[sel], pos)
        value = a + np.clip(pos, 0.0, 1.0) * (b - a)
        after[name][sel] = np.exp(value) if log else value
    return after


def _schedule(before: dict[str, np.ndarray], after: dict[str, np.ndarray], n_before: int,
              n_total: int, area: float) -> dict[str, np.ndarray]:
    sched = {}
    for name in INPUTS:
        key = "current_density" if name == "current" else name
        scale = area / 1000.0 if name == "current" else 1.0
        row = np.empty((len(before[key]), n_total))
        row[:, :n_before] = before[key][:, None] * scale
        row[:, n_before:] = after[key][:, None] * scale
        sched[name] = row
    return sched


def _settle_time(points: dict[str, np.ndarray], plant: ReferencePlant, settle_s: float) -> np.ndarray:
    """Three time constants of the slowest state of each point, within [300 s, settle_s]."""
    p, c = plant.params, plant.params.cell
    flows = points["anolyte_flow"] + points["catholyte_flow"]
    tau_heat = c.heat_capacity / (c.ua_ambient + c.electrolyte_heat * flows / 60.0)
    tau_anolyte = c.anolyte_volume_L / (points["anolyte_flow"] / 60000.0)
    tau = np.maximum(np.maximum(tau_heat, tau_anolyte), p.flood_build_s)
    return np.clip(3.0 * tau, min(300.0, settle_s), settle_s)


class Batch(NamedTuple):
    """Experiments of equal length, simulated together.

    ``schedule`` is ready for :meth:`ReferencePlant.simulate` (with each
    experiment's starting charge and hours from the run order); ``settled`` is the
    time [s] after which its samples are labelled ``label``; ``experiment`` ids
    (1-based run order) and ``start`` times [s since the log began] per experiment.
    """

    schedule: dict[str, np.ndarray]
    settled: np.ndarray
    label: str
    experiment: np.ndarray
    start: np.ndarray


def plan(
    *, seed: int = 0, n_points: int = DEFAULT_POINTS, include_steps: bool = True,
    plant: ReferencePlant | None = None, settle_s: float = 2400.0, steady_s: float = 300.0,
    step_s: float = 900.0, dt: float = 1.0,
) -> list[Batch]:
    """The campaign's experiments, in run order on one catalyst; see :func:`generate`."""
    plant = plant if plant is not None else ReferencePlant(seed=seed)
    area = plant.params.cell.area_cm2
    design_rng, order_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    n_tests = n_points // _POINTS_PER_STEP_TEST if include_steps else 0
    points, base, kinds, size = _design(n_points, max(n_tests, 1), design_rng, area)
    n_settle, n_steady, n_step = (round(s / dt) for s in (settle_s, steady_s, step_s))
    batches = [(_schedule(points, points, n_settle, n_settle + n_steady, area),
                _settle_time(points, plant, settle_s), "steady")]
    if n_tests:
        base = {k: v[:n_tests] for k, v in base.items()}
        after = _stepped(base, kinds[:n_tests], size[:n_tests])
        batches.append((_schedule(base, after, n_settle, n_settle + n_step, area),
                        np.full(n_tests, n_settle * dt), "step"))
    currents = [b[0]["current"] for b in batches]
    order = order_rng.permutation(sum(len(c) for c in currents))
    position = np.empty_like(order)
    position[order] = np.arange(len(order))

    def before(values: np.ndarray) -> np.ndarray:
        return (np.cumsum(values[order]) - values[order])[position]

    charge0 = before(np.concatenate([c.sum(axis=1) * dt / 3600.0 for c in currents]))
    hours0 = before(np.concatenate([(c > 0).sum(axis=1) * dt / 3600.0 for c in currents]))
    start = before(np.concatenate([np.full(len(c), c.shape[1] * dt + GAP_S) for c in currents]))
    out, offset = [], 0
    for sched, settled, label in batches:
        ids = slice(offset, offset + len(settled))
        aged = {**sched, "initial_charge_Ah": charge0[ids], "initial_hours": hours0[ids]}
        out.append(Batch(aged, settled, label, position[ids] + 1, start[ids]))
        offset += len(settled)
    return out


def generate(
    *, seed: int = 0, n_points: int = DEFAULT_POINTS, sample_s: float = 10.0, include_steps: bool = True,
    plant: ReferencePlant | None = None, settle_s: float = 2400.0, steady_s: float = 300.0,
    step_s: float = 900.0, dt: float = 1.0,
) -> pd.DataFrame:
    """Run the campaign; returns the plant log (:mod:`models.plantlog` schema, with ``true_*``).

    ``n_points`` DoE points, each run ``settle_s + steady_s``: phase "settle" until
    three time constants have passed (at most ``settle_s``), then "steady"; with
    ``include_steps``, one step test per four points: ``settle_s`` at a base point,
    then a step of current, gas flow or CO2 fraction followed for ``step_s``
    ("step"). Internal step ``dt`` s, one row every ``sample_s`` s. The default gives
    56,400 rows in about a second; ``n_points=30`` with short phases suits tests.
    Deterministic for ``seed`` (design, run order and sensor noise); the log is
    checked by :func:`models.plantlog.validate_log` before it is returned.
    """
    stride = round(sample_s / dt)
    if stride < 1 or abs(stride * dt - sample_s) > 1e-9 * sample_s:
        raise ValueError(f"sample_s={sample_s} must be a whole multiple of dt={dt}")
    plant = plant if plant is not None else ReferencePlant(seed=seed)
    noise_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    frames = []
    for batch in plan(seed=seed, n_points=n_points, include_steps=include_steps, plant=plant,
                      settle_s=settle_s, steady_s=steady_s, step_s=step_s, dt=dt):
        true = plant.simulate(batch.schedule, dt)
        count, n_steps = true["current"].shape
        idx = np.arange(stride - 1, n_steps, stride)
        true = {k: v[:, idx] for k, v in true.items()}
        measured = plant.measure(true, noise_rng)
        t_rel = (idx + 1) * dt
        cols: dict[str, np.ndarray] = {
            "time": batch.start[:, None] + t_rel[None, :],
            "experiment": np.broadcast_to(batch.experiment[:, None], (count, len(idx))),
            "phase": np.where(t_rel[None, :] > batch.settled[:, None], batch.label, "settle"),
            "area_cm2": np.full((count, len(idx)), plant.params.cell.area_cm2),
            "current": true["current"], "current_density": true["current_density"],
        }
        for name in INPUTS[1:]:
            cols[name] = measured.get(name, true[name])
        cols["charge_passed"], cols["hours_on_stream"] = true["charge_passed"], true["hours_on_stream"]
        cols.update({name: measured[name] for name in OUTPUTS})
        cols.update({f"true_{name}": true[name] for name in OUTPUTS})
        frames.append(pd.DataFrame({k: np.ravel(v) for k, v in cols.items()}))
    log = pd.concat(frames, ignore_index=True).sort_values("time", kind="stable", ignore_index=True)
    return validate_log(log, source=f"campaign(seed={seed})")
