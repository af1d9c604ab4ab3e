"""The test campaign run on the reference plant: the plant log surrogates train on.

Design of experiments: a Latin hypercube over the plant's operating range with
margin (:data:`ENVELOPE`: current density 0-450 mA/cm2, gas flows up to the mass-flow
controllers' full scale, 3-100 % CO2, electrolyte flows from a stopped pump to the
pump's maximum, 0.2-3.2 mol/L, 2-63 degC ambient), a few points with the cell at rest,
and dynamic step tests (current, gas flow, CO2 fraction) sampled through their
transients. Current densities above :data:`EXTRAPOLATION_ABOVE` (375 mA/cm2, beyond the
models' 350) are there to be held out: they are the extrapolation split. Every
experiment starts the cell from rest: ambient temperature, fresh anolyte, a drained GDE
(an unlogged shutdown of ``GAP_S`` separates experiments). A DoE point settles for three
time constants (95 %) of its slowest state (cell temperature, anolyte residence, GDE
flooding; at most ``settle_s``): the rest of its run is "steady". A step test settles
``settle_s`` and then takes its step. The experiments run in a random order, shared out
in turn over :data:`CATALYSTS` of different ages (fresh to near end of life), so
``charge_passed`` and ``hours_on_stream`` span a catalyst's life and each catalyst ages
further in the campaign.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from models import electrochemistry as ec
from models.plantlog import OUTPUTS, validate_log
from models.reference_plant import INPUTS, ReferencePlant

__all__ = [
    "DEFAULT_POINTS", "ANOLYTE_EXCESS", "ENVELOPE", "LOG_SCALE", "GAP_S", "EXTRAPOLATION_ABOVE",
    "FLOW_CONTROLLER_MAX", "SUPPLY_RATIO", "STOPPED_PUMP_SHARE", "MIN_ANOLYTE_FLOW", "CATALYSTS",
    "END_OF_LIFE_AH", "PURE_CO2_SHARE",
    "Batch", "latin_hypercube", "plan", "generate",
]

#: design range of the DoE: name -> (low, high). The plant's operating range (process.md)
#: with margin, so that the sensors' gains and offsets leave the measured envelope around
#: it: current density 0-300 mA/cm2 (models to >= 350), cell and ambient 5-60 degC, flows
#: up to the controllers' and pumps' full scale, concentrations 0.25-3 mol/L. current_density
#: also takes 0 (rest); electrolyte flows also take 0 (a stopped pump, STOPPED_PUMP_SHARE)
ENVELOPE: dict[str, tuple[float, float]] = {
    "current_density": (0.0, 450.0),
    "gas_flow": (5.0, 1050.0),
    "co2_fraction": (3.0, 100.0),
    "humidity": (0.0, 100.0),
    "anolyte_flow": (0.1, 52.0),
    "catholyte_flow": (0.1, 52.0),
    "anolyte_conc": (0.2, 3.2),
    "catholyte_conc": (0.2, 3.2),
    "ambient_temperature": (2.0, 63.0),
}
#: mA/cm2: the campaign runs above this (to 450) so that the models can be scored on
#: current densities they never saw; training keeps the rows at or below it
EXTRAPOLATION_ABOVE = 375.0
#: mL/min: full scale of the CO2 and the N2 mass-flow controllers (components.feed.Feed's
#: defaults); a point's gas flow is capped so that neither exceeds it by more than 5 %
FLOW_CONTROLLER_MAX = 500.0
#: CO2 fed over the CO2 the current could reduce (every electron to formate): the design's
#: range, sampled in log, from a starved cell to a large excess (see _gas_flows)
SUPPLY_RATIO = (0.2, 25.0)
#: share of DoE points with the catholyte pump stopped (flow 0); the anolyte pump is stopped
#: at half the points at rest
STOPPED_PUMP_SHARE = 0.05
#: Ah: a catalyst near the end of its life (the reference plant's FE down by about a quarter);
#: the campaign's catalysts reach beyond it
END_OF_LIFE_AH = 5000.0
#: (charge passed [Ah], hours on stream [h]) of each catalyst at the start of the campaign:
#: fresh to near the end of its life. Four start fresh, so that the break-in of the first
#: hundred Ah (where every scenario starts) is sampled as densely as the rest of a life
CATALYSTS: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0),
    (1000.0, 330.0), (2000.0, 670.0), (3000.0, 1000.0), (4000.0, 1330.0),
)
#: share of DoE points run on pure CO2 (the plant's usual feed, at the edge of the CO2 range)
PURE_CO2_SHARE = 0.25
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
#: mL/min: the least anolyte flow under current. Below it the anolyte takes hours to settle
#: and its pH hangs on flows of the order of the flow meter's noise; a pump stopped under
#: current is a fault (the anolyte runs out), which the twin's physics covers
MIN_ANOLYTE_FLOW = 1.0
#: step tests start from at least this current density (a step from rest is a start-up)
_STEP_BASE_J = 50.0
#: design points of the default campaign, each held 150 s once settled: enough distinct
#: operating points over the whole operating range for the hybrid models to meet their
#: fidelity targets with margin (1,280 points held 300 s, as many rows, gave FE to formate
#: a test MAE of 0.019 instead of 0.016; see the README)
DEFAULT_POINTS = 2560


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


def _gas_cap(co2_fraction: np.ndarray) -> np.ndarray:
    """Largest gas flow at a CO2 fraction with neither mass-flow controller more than 5 % over
    its full scale (the CO2 one sets it above 50 % CO2, the N2 one below)."""
    x = co2_fraction / 100.0
    with np.errstate(divide="ignore"):
        cap = 1.05 * FLOW_CONTROLLER_MAX / np.maximum(x, 1.0 - x)
    return np.minimum(cap, ENVELOPE["gas_flow"][1])


def _gas_flows(design: dict[str, np.ndarray], area_cm2: float) -> None:
    """Each point's gas flow from its design position ``u`` (0-1, log) in the gas-flow range.

    With current, ``u`` sets the CO2 supply over what the current could reduce (all
    electrons to formate) log-uniformly in :data:`SUPPLY_RATIO`, from starved to a large
    excess, so the design spreads over supply limits at every current and CO2 fraction
    rather than crowding the starved corner of a plain gas-flow range. At rest it sets the
    flow itself. Either way the flow stays within [low, the flow controllers' cap].
    """
    lo, hi = ENVELOPE["gas_flow"]
    cap = _gas_cap(design["co2_fraction"])
    u = np.log(design["gas_flow"] / lo) / np.log(hi / lo)
    need = ec.gas_ml_min(design["current_density"] * area_cm2 / 1000.0 / (ec.Z_FORMATE * ec.F))
    r_lo, r_hi = SUPPLY_RATIO
    ratio = r_lo * np.exp(u * np.log(r_hi / r_lo))
    supplied = ratio * need * 100.0 / design["co2_fraction"]
    resting = lo * np.exp(u * np.log(cap / lo))
    design["gas_flow"] = np.clip(np.where(need > 0.0, supplied, resting), lo, cap)


def _design(n_points: int, n_steps_tests: int, rng: np.random.Generator, area: float,
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """DoE points, step-test base points, step kinds and step targets (fractions of range)."""
    names = tuple(ENVELOPE)
    points = _scale(latin_hypercube(n_points, len(names), rng), names)
    rest = rng.choice(n_points, size=round(_REST_SHARE * n_points), replace=False)
    points["current_density"][rest] = 0.0
    pure = rng.choice(n_points, size=round(PURE_CO2_SHARE * n_points), replace=False)
    points["co2_fraction"][pure] = 100.0
    # a stopped catholyte pump at any current; a stopped anolyte pump with the cell at rest
    # (under current the anolyte would run out: MIN_ANOLYTE_FLOW)
    stopped = rng.choice(n_points, size=round(STOPPED_PUMP_SHARE * n_points), replace=False)
    points["catholyte_flow"][stopped] = 0.0
    points["anolyte_flow"][rest[: len(rest) // 2]] = 0.0
    base = _scale(latin_hypercube(n_steps_tests, len(names), rng), names)
    lo, hi = ENVELOPE["current_density"]
    base["current_density"] = _STEP_BASE_J + (base["current_density"] - lo) / (hi - lo) * (hi - _STEP_BASE_J)
    for design in (points, base):
        _gas_flows(design, area)
        _keep_anolyte_alkaline(design, area)
    kinds = np.arange(n_steps_tests) % len(_STEPPED)
    size = rng.uniform(0.25, 0.6, n_steps_tests) * rng.choice([-1.0, 1.0], n_steps_tests)
    return points, base, kinds, size


def _keep_anolyte_alkaline(design: dict[str, np.ndarray], area_cm2: float) -> None:
    """Under current, raise anolyte flow to MIN_ANOLYTE_FLOW; then flow, then concentration,
    where OH- supply < ANOLYTE_EXCESS x I/F."""
    need = ANOLYTE_EXCESS * design["current_density"] * area_cm2 / 1000.0 / ec.F * 60000.0  # mol/L*mL/min
    q_max = ENVELOPE["anolyte_flow"][1]
    c_max = ENVELOPE["anolyte_conc"][1]
    design["anolyte_flow"] = np.where(design["current_density"] > 0.0,
                                      np.maximum(design["anolyte_flow"], MIN_ANOLYTE_FLOW),
                                      design["anolyte_flow"])
    short = design["anolyte_flow"] * design["anolyte_conc"] < need
    design["anolyte_flow"] = np.where(short, np.minimum(need / design["anolyte_conc"], q_max),
                                      design["anolyte_flow"])
    short = design["anolyte_flow"] * design["anolyte_conc"] < need
    flow = np.maximum(design["anolyte_flow"], 1e-12)  # a stopped pump is never short: no current
    design["anolyte_conc"] = np.where(short, np.minimum(need / flow, c_max), design["anolyte_conc"])


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
    # a new CO2 fraction or gas flow stays within what the flow controllers can give
    after["gas_flow"] = np.minimum(after["gas_flow"], _gas_cap(after["co2_fraction"]))
    return after


def _schedule(before: dict[str, np.ndarray], after: dict[str, np.ndarray], n_before: int,
              n_total: int, area: float) -> dict[str, np.ndarray]:
    sched = {}
    for name in INPUTS:
        key = "current_density" if name == "current" else name
        scale = area / 1000.0 if name == "current" else 1.0
        if before is after:
            # held for the whole run: a read-only view, no (experiments x steps) copy
            sched[name] = np.broadcast_to((before[key] * scale)[:, None], (len(before[key]), n_total))
            continue
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
    tau_anolyte = c.anolyte_volume_L / (np.maximum(points["anolyte_flow"], 1e-9) / 60000.0)
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
    plant: ReferencePlant | None = None, settle_s: float = 2400.0, steady_s: float = 150.0,
    step_s: float = 900.0, dt: float = 1.0,
    catalysts: Sequence[tuple[float, float]] = CATALYSTS,
) -> list[Batch]:
    """The campaign's experiments in run order, shared out over ``catalysts``; see :func:`generate`."""
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

    # the run order in len(catalysts) consecutive parts, one catalyst each
    n_runs = len(order)
    catalyst = np.arange(n_runs) * len(catalysts) // n_runs
    first = np.searchsorted(catalyst, catalyst)

    def before(values: np.ndarray, *, same_catalyst: bool = False) -> np.ndarray:
        ordered = values[order]
        done = np.cumsum(ordered) - ordered
        if same_catalyst:
            done = done - done[first]
        return done[position]

    ages = np.asarray(catalysts, dtype=float).reshape(-1, 2)[catalyst[position]]
    charge0 = ages[:, 0] + before(np.concatenate([c.sum(axis=1) * dt / 3600.0 for c in currents]),
                                  same_catalyst=True)
    hours0 = ages[:, 1] + before(np.concatenate([(c > 0).sum(axis=1) * dt / 3600.0 for c in currents]),
                                 same_catalyst=True)
    start = before(np.concatenate([np.full(len(c), c.shape[1] * dt + GAP_S) for c in currents]))
    out, offset = [], 0
    for sched, settled, label in batches:
        ids = slice(offset, offset + len(settled))
        aged = {**sched, "initial_charge_Ah": charge0[ids], "initial_hours": hours0[ids]}
        out.append(Batch(aged, settled, label, position[ids] + 1, start[ids]))
        offset += len(settled)
    return out


#: experiments simulated together by :func:`generate`
_CHUNK = 256


def _parts(batch: Batch, size: int) -> list[Batch]:
    """``batch`` as consecutive batches of at most ``size`` experiments."""
    n = len(batch.settled)
    if n <= size:
        return [batch]
    return [Batch({k: v[lo:lo + size] for k, v in batch.schedule.items()}, batch.settled[lo:lo + size],
                  batch.label, batch.experiment[lo:lo + size], batch.start[lo:lo + size])
            for lo in range(0, n, size)]


def generate(
    *, seed: int = 0, n_points: int = DEFAULT_POINTS, sample_s: float = 10.0, include_steps: bool = True,
    plant: ReferencePlant | None = None, settle_s: float = 2400.0, steady_s: float = 150.0,
    step_s: float = 900.0, dt: float = 1.0, catalysts: Sequence[tuple[float, float]] = CATALYSTS,
) -> pd.DataFrame:
    """Run the campaign; returns the plant log (:mod:`models.plantlog` schema, with ``true_*``).

    ``n_points`` DoE points, each run ``settle_s + steady_s``: phase "settle" until
    three time constants have passed (at most ``settle_s``), then "steady"; with
    ``include_steps``, one step test per four points: ``settle_s`` at a base point,
    then a step of current, gas flow or CO2 fraction followed for ``step_s``
    ("step"). Internal step ``dt`` s, one row every ``sample_s`` s. The runs are shared
    out over ``catalysts`` ((charge Ah, hours) at the start of each), in run order.
    ``n_points=30`` with short phases suits tests.
    Deterministic for ``seed`` (design, run order and sensor noise); the log is
    checked by :func:`models.plantlog.validate_log` before it is returned.
    """
    stride = round(sample_s / dt)
    if stride < 1 or abs(stride * dt - sample_s) > 1e-9 * sample_s:
        raise ValueError(f"sample_s={sample_s} must be a whole multiple of dt={dt}")
    plant = plant if plant is not None else ReferencePlant(seed=seed)
    noise_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    frames = []
    batches = plan(seed=seed, n_points=n_points, include_steps=include_steps, plant=plant,
                   settle_s=settle_s, steady_s=steady_s, step_s=step_s, dt=dt, catalysts=catalysts)
    # a few hundred experiments at a time: the plant's step loop keeps (experiments x steps)
    # arrays of every driver, which for the whole campaign would take gigabytes
    for batch in (part for b in batches for part in _parts(b, _CHUNK)):
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
