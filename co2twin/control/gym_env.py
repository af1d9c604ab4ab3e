"""A control test case (or any scenario) as a Gymnasium environment.

>>> from co2twin.control.gym_env import CaseEnv, EnvConfig
>>> env = CaseEnv("scenarios/control/tank_concentration.yaml",
...               EnvConfig(control_interval=12))                       # doctest: +SKIP
>>> obs, info = env.reset(seed=1)                                       # doctest: +SKIP
>>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())  # doctest: +SKIP

Registered with Gymnasium as ``co2twin/Case-v0`` (``gymnasium.make("co2twin/Case-v0",
case="...yaml", control_interval=12)`` once this module is imported).

The environment wraps the simulation from outside, as an external controller would:
each step sets the case's actuators (``sim.set``), advances the engine one step at a time
over the control interval (``sim.advance_to``) and reads the case's measurements
(``sim.get``, the sensor readings a controller sees). Nothing exists only here:
:attr:`CaseEnv.simulation` is the plain :class:`cosim.Simulation`, :meth:`CaseEnv.kpis`
scores the episode with :func:`co2twin.control.control_kpis` exactly as ``run_case`` does.

The definitions a vectorised environment reuses take arrays (any leading batch axes):
:func:`scale_action` / :func:`unscale_action` (the action space), :func:`observation`
(the observation vector), :func:`kpi_increments` (the KPI pieces one interval adds) and
:func:`reward` (the reward from the running KPI totals). :class:`Definition` holds the
names, bounds, weights and known futures of one case.

**Observation** (``Definition.observation_names``, float64): the case's measurements as
their sensors read them (faults included), bounds from their ports; then, per planned set
point and for the price when the case has one, the known future at ``0, 1, ...,
forecast_steps - 1`` forecast intervals ahead (bounds: the signal's port; price unbounded);
last, the share of the episode left, in [0, 1]. The price's bounds are its range over the
episode (it is known a day ahead).

**Action** (float32): one value per actuator, in [-1, 1] mapped linearly onto the actuator's
bounds (``normalise_actions=False``: in the actuator's unit). Bounds: ``action_bounds`` of
the config, else :func:`co2twin.control.actuators.actuator_range` (the MPC's rule): the
actuator port's declared bounds narrowed by the widest ``limits`` the case's shipped
controllers give it, the plant's rating and the surrogates' training envelope.

**Reward**: the case's own additive KPIs, each normalised by its threshold, so that a
return is read in "thresholds' worth". Per control interval the KPI pieces are summed over
the engine steps exactly as :func:`co2twin.control.control_kpis` sums them (production
kg HCOOH, energy kWh, energy cost at the price of each step's start, tracking IAE/ISE per
set point, time and integral outside each constraint, actuator travel), and the reward is
``sum_j w_j * (min(T_j after, cap_j) - min(T_j before, cap_j))`` over the running totals
``T``. Weights: the objective KPI ``+1/threshold`` (maximise) or ``-1/threshold``
(minimise); every other KPI with a ``max`` threshold ``-1/max``; one with a ``min``
threshold ``+1/min``, capped at ``min`` (making more than the target earns nothing, as the
case scores it). A threshold of 0 is read against 1 % of the episode's duration (time and
integral KPIs) or 1. KPIs that are not sums over time (overshoot, settling time, specific
energy, CO2 utilisation) are not in the reward; ``info["kpis"]`` and ``info["passed"]`` at
the episode's end give them. ``weights`` in the config overrides any KPI's weight.

**End**: ``truncated`` at the case's end (its time limit: the plant would go on), or at
``episode_s`` when shorter; ``terminated`` only when the simulation fails
(``info["error"]`` says why; the plant cannot go on).

**Seeds**: ``reset(seed=s)`` builds the simulation afresh with seed ``s`` (sensor noise and
any randomness of the run come from it), so the same seed and actions give the same
episode bit for bit. ``reset()`` without a seed uses the case's own seed the first time
(the disturbances ``run_case`` scores) and then draws one from the environment's generator.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from models.electrochemistry import M_HCOOH

from components.plant import FLAGS, resolve_input

from cosim.errors import CosimError, ScenarioError
from cosim.simulation import Simulation
from ..scenario import load_scenario, operating_limits
from ..scenario_schema import (
    CaseSpec,
    LimitSpec,
    ObjectiveSpec,
    Scenario,
    ThresholdSpec,
)
from .actuators import actuator_range
from .case import ControlCase
from .kpis import Verdict, control_kpis, score

__all__ = [
    "ENV_ID", "CaseEnv", "Definition", "EnvConfig", "case_from_scenario", "kpi_increments",
    "observation", "reward", "scale_action", "unscale_action",
]

#: the id the environment is registered under with Gymnasium
ENV_ID = "co2twin/Case-v0"

#: KPIs that are sums over the run's steps, so an interval's share of them is a reward piece
ADDITIVE_KPIS = ("production_kg", "energy_kWh", "energy_cost", "tracking_iae", "tracking_ise",
                 "time_outside_s", "integral_outside", "actuator_travel")

_FORMATE = "reactor.formate_produced"
_ENERGY = "reactor.energy"
_KG_PER_MOL = M_HCOOH / 1000.0


@dataclass(frozen=True)
class EnvConfig:
    """How a case is cut into an environment (every field has a usable default).

    control_interval: engine steps per environment step (the action is held over them).
    forecast_steps: known-future points per forecast signal (set points, price); 0: none.
    forecast_every: engine steps between forecast points (default: the control interval).
    action_bounds: actuator (as the case names it, or ``component.port``) -> (low, high),
        in the actuator's unit; overrides the bounds the case implies.
    normalise_actions: actions in [-1, 1] (True, what RL libraries expect) or in units.
    weights: KPI name -> reward weight, overriding the weight the case implies (0: off).
    episode_s: end the episode sooner than the case (seconds from its start).
    actuators, measurements: for a scenario without a ``case:`` section, what the agent
        moves (required) and reads (default: every measured output).
    kpis_at_end: score the episode (``info["kpis"]``, ``info["passed"]``) when it ends.
    """

    control_interval: int = 1
    forecast_steps: int = 8
    forecast_every: int | None = None
    action_bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    normalise_actions: bool = True
    weights: Mapping[str, float] = field(default_factory=dict)
    episode_s: float | None = None
    actuators: Sequence[str] = ()
    measurements: Sequence[str] = ()
    kpis_at_end: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.control_interval, int) and self.control_interval >= 1):
            raise ValueError(f"EnvConfig.control_interval: expected a whole number >= 1, "
                             f"found {self.control_interval!r}")
        if not (isinstance(self.forecast_steps, int) and self.forecast_steps >= 0):
            raise ValueError(f"EnvConfig.forecast_steps: expected a whole number >= 0, "
                             f"found {self.forecast_steps!r}")
        if self.forecast_every is not None and not (
                isinstance(self.forecast_every, int) and self.forecast_every >= 1):
            raise ValueError(f"EnvConfig.forecast_every: expected a whole number >= 1, "
                             f"found {self.forecast_every!r}")
        if self.episode_s is not None and not (math.isfinite(self.episode_s) and self.episode_s > 0):
            raise ValueError(f"EnvConfig.episode_s: expected a positive number of seconds, "
                             f"found {self.episode_s!r}")


# -- the definitions, on arrays ---------------------------------------------------------------
def scale_action(action: Any, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actions in [-1, 1] -> actuator values in [low, high] (clipped: an action outside the
    box drives its bound)."""
    a = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), -1.0), 1.0)
    return low + (a + 1.0) * 0.5 * (high - low)


def unscale_action(values: Any, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Actuator values -> actions in [-1, 1] (the inverse of :func:`scale_action`)."""
    v = np.asarray(values, dtype=np.float64)
    return np.clip(2.0 * (v - low) / (high - low) - 1.0, -1.0, 1.0)


def observation(measurements: Any, forecasts: Any, time_left: Any) -> np.ndarray:
    """The observation vector: measurements ``(..., m)``, forecasts ``(..., f)`` (flattened
    signal by signal, nearest point first) and the share of the episode left ``(...)``."""
    left = np.asarray(time_left, dtype=np.float64)[..., None]
    return np.concatenate([np.asarray(measurements, dtype=np.float64),
                           np.asarray(forecasts, dtype=np.float64), left], axis=-1)


def kpi_increments(dt: Any, formate_mol: Any, energy_kwh: Any, price: Any, tracked: Any,
                   setpoint: Any, constrained: Any, low: np.ndarray, high: np.ndarray,
                   travel: Any) -> np.ndarray:
    """The KPI pieces a stretch of engine steps adds, in :class:`Definition`'s piece order.

    Over the last axis are the steps (``n``), before it any batch axes. ``dt`` (n,) step
    lengths; ``formate_mol``, ``energy_kwh`` (..., n) what each step added; ``price`` (n,)
    at each step's start (zeros without a price); ``tracked``/``setpoint`` (..., n, s) true
    value and set point at each step's end; ``constrained`` (..., n, c) true values at each
    step's end, ``low``/``high`` (c,) their limits (``-inf``/``inf`` when open); ``travel``
    (..., a) how far each actuator moved. Sums as :func:`co2twin.control.control_kpis` does:
    values at the end of a step stand for the step.
    """
    # dt @ x sums over the steps axis (n) whatever the batch axes: (n,) @ (..., n, k) -> (..., k)
    energy = np.asarray(energy_kwh, dtype=np.float64)
    e = np.asarray(setpoint, dtype=np.float64) - tracked
    y = np.asarray(constrained, dtype=np.float64)
    excess = np.maximum(y - high, 0.0)
    excess += np.maximum(low - y, 0.0)
    per_second = np.concatenate([np.abs(e), e * e, excess > 0.0, excess], axis=-1)
    return np.concatenate([
        (np.asarray(formate_mol, dtype=np.float64).sum(axis=-1) * _KG_PER_MOL)[..., None],
        energy.sum(axis=-1)[..., None],
        (energy @ np.asarray(price, dtype=np.float64))[..., None],
        np.asarray(dt, dtype=np.float64) @ per_second,
        np.asarray(travel, dtype=np.float64),
    ], axis=-1)


def reward(before: Any, after: Any, weights: np.ndarray, caps: np.ndarray) -> Any:
    """``sum_j w_j (min(after_j, cap_j) - min(before_j, cap_j))``: the reward of an interval
    from the running KPI totals before and after it (last axis: pieces; ``cap`` inf: none)."""
    gained = np.minimum(after, caps) - np.minimum(before, caps)
    return np.sum(weights * gained, axis=-1)


# -- one case's definition ---------------------------------------------------------------------
@dataclass
class Definition:
    """Names, bounds, reward weights and known futures of a case as an environment.

    Built once per environment (:meth:`of`); a vectorised environment over N variants of
    the same case shares one. Every array is in the order of its ``*_names``.
    """

    case: ControlCase
    config: EnvConfig
    step_s: float
    #: engine steps in an episode
    steps: int
    actuators: list[str]
    action_low: np.ndarray
    action_high: np.ndarray
    measurements: list[str]
    forecast_names: list[str]
    #: engine step index -> value of each forecast signal, (steps + horizon + 1, signals)
    forecast_grid: np.ndarray
    tracked: list[str]
    constrained: list[str]
    constraint_low: np.ndarray
    constraint_high: np.ndarray
    has_price: bool
    piece_names: list[str]
    weights: np.ndarray
    caps: np.ndarray
    observation_names: list[str]
    observation_low: np.ndarray
    observation_high: np.ndarray
    #: 0/1 outputs raised while a device or model did not do what it was asked (info["flags"])
    flag_signals: list[str]

    @classmethod
    def of(cls, case: ControlCase, config: EnvConfig, sim: Simulation) -> Definition:
        """The definition of ``case`` cut by ``config``, read off a built (not run) ``sim``."""
        scenario = case.scenario
        step = float(scenario.step)
        duration = float(scenario.duration) if config.episode_s is None else min(
            float(scenario.duration), float(config.episode_s))
        steps = max(1, int(round(duration / step)))
        actuators = case.actuators
        low, high = _action_bounds(case, config, sim)
        measurements = list(case.spec.measurements)
        for m in measurements:
            sim.port(m)  # an unknown signal is named here, before anything runs
        every = config.forecast_every or config.control_interval
        horizon = config.forecast_steps
        tracked = list(case.spec.setpoints)
        forecast_names = [f"{s}.setpoint" for s in tracked] + (["price"] if case.spec.price else [])
        profiles = [case.profile(s) for s in tracked] + (
            [case.profile("price")] if case.spec.price else [])
        n_grid = steps + max(horizon - 1, 0) * every + 1
        # past the case's end a known future holds its last value (a table may stop there)
        end = float(scenario.end)
        times = [min(sim.start + k * step, end) for k in range(n_grid)]
        grid = np.array([[p.value(t) for p in profiles] for t in times],
                        dtype=np.float64).reshape(n_grid, len(profiles))
        limits = case.constraints
        constrained = list(limits)
        c_low = np.array([-np.inf if lo is None else lo for lo, _ in limits.values()])
        c_high = np.array([np.inf if hi is None else hi for _, hi in limits.values()])
        pieces = (["production_kg", "energy_kWh", "energy_cost"]
                  + [f"tracking_iae[{s}]" for s in tracked] + [f"tracking_ise[{s}]" for s in tracked]
                  + [f"time_outside_s[{s}]" for s in constrained]
                  + [f"integral_outside[{s}]" for s in constrained]
                  + [f"actuator_travel[{a}]" for a in actuators])
        weights, caps = _reward_weights(case.spec, config, pieces, duration)
        obs_names = (list(measurements)
                     + [f"{n}[+{j}]" for n in forecast_names for j in range(horizon)]
                     + ["time_left"])
        bounds = [(sim.port(m).lower, sim.port(m).upper) for m in measurements]
        for i, name in enumerate(forecast_names):
            if name == "price":  # known a day ahead: its range over the episode is known too
                bounds += [(float(grid[:, i].min()), float(grid[:, i].max()))] * horizon
            else:
                port = sim.port(name.removesuffix(".setpoint"))
                bounds += [(port.lower, port.upper)] * horizon
        bounds.append((0.0, 1.0))
        return cls(case, config, step, steps, actuators, low, high, measurements, forecast_names,
                   grid, tracked, constrained, c_low, c_high, bool(case.spec.price), pieces,
                   weights, caps, obs_names, np.array([b[0] for b in bounds], dtype=np.float64),
                   np.array([b[1] for b in bounds], dtype=np.float64), _flag_signals(sim))

    def episode_spaces(self) -> tuple[spaces.Box, spaces.Box]:
        """One episode's action and observation spaces (a vector env batches them)."""
        if self.config.normalise_actions:
            action = spaces.Box(-1.0, 1.0, shape=(len(self.actuators),), dtype=np.float32)
        else:
            action = spaces.Box(self.action_low.astype(np.float32),
                                self.action_high.astype(np.float32), dtype=np.float32)
        return action, spaces.Box(self.observation_low, self.observation_high, dtype=np.float64)

    def forecasts(self, k: int) -> np.ndarray:
        """The known futures seen at engine step ``k``, flattened signal by signal."""
        every = self.config.forecast_every or self.config.control_interval
        rows = self.forecast_grid[k: k + self.config.forecast_steps * every: every]
        return rows.T.reshape(-1)


def _raised(names: Sequence[str], values: Sequence[float]) -> list[str]:
    """The flags up (> 0) among ``values``; none up, the common case, found in one call."""
    if not values or max(values) <= 0.0:
        return []
    return [f for f, v in zip(names, values, strict=True) if v > 0.0]


def _flag_signals(sim: Simulation) -> list[str]:
    signals = set(sim.signals)
    return ([f.column for f in FLAGS if f.column in signals]
            + [s for s in sim.signals if s.endswith("_outside_envelope")])


def _action_bounds(case: ControlCase, config: EnvConfig,
                   sim: Simulation) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per actuator: the config's, else :func:`co2twin.control.actuators.actuator_range`'s
    default (the port's, narrowed by the shipped controllers' limits, the plant's rating and the
    surrogates' envelope), the same rule as the MPC's."""
    given = {resolve_input(k): v for k, v in config.action_bounds.items()}
    unknown = sorted(set(given) - set(case.actuators))
    if unknown:
        raise ScenarioError(f"EnvConfig.action_bounds: {', '.join(unknown)} is not an actuator of the "
                            f"case; actuators: {', '.join(case.actuators)}", case.source)
    ranges = [actuator_range(case, sim, target, given.get(target), what="EnvConfig.action_bounds")
              for target in case.actuators]
    return (np.array([r.low for r in ranges], dtype=np.float64),
            np.array([r.high for r in ranges], dtype=np.float64))


def _reward_weights(spec: CaseSpec, config: EnvConfig, pieces: list[str],
                    duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Weight and cap of every piece, from the case's objective and thresholds (module doc)."""
    objective = spec.objective.maximise or spec.objective.minimise
    unknown = sorted(set(config.weights) - set(ADDITIVE_KPIS))
    if unknown:
        raise ValueError(f"EnvConfig.weights: {', '.join(unknown)} is not an additive KPI; "
                         f"expected one of {', '.join(ADDITIVE_KPIS)}")
    thresholds: dict[str, ThresholdSpec] = {str(k): v for k, v in spec.kpis.items()}
    weights, caps = [], []
    for piece in pieces:
        kpi = piece.partition("[")[0]
        bound = thresholds.get(kpi)
        weight, cap = 0.0, math.inf
        fallback = 0.01 * duration if kpi in ("time_outside_s", "integral_outside") else 1.0
        if kpi == objective:
            limit = None if bound is None else (bound.min if bound.min is not None else bound.max)
            scale = abs(limit) if limit else fallback
            weight = (1.0 if spec.objective.maximise else -1.0) / scale
        elif bound is not None and bound.max is not None:
            weight = -1.0 / (bound.max if bound.max > 0 else fallback)
        elif bound is not None and bound.min is not None and bound.min > 0 and "[" not in piece:
            weight, cap = 1.0 / bound.min, float(bound.min)
        if kpi in config.weights:
            weight = float(config.weights[kpi])
        weights.append(weight)
        caps.append(cap)
    return np.array(weights, dtype=np.float64), np.array(caps, dtype=np.float64)


def case_from_scenario(scenario: Scenario | str | Path, actuators: Sequence[str],
                       measurements: Sequence[str] = ()) -> ControlCase:
    """A plain scenario as a test case: the agent moves ``actuators`` and reads
    ``measurements`` (default: every measured output); its constraints are the scenario's
    operating limits; it is asked to maximise production (``production_kg``) and scored
    on time outside the limits. Made without validation of a ``case:`` section (it has none)."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if not actuators:
        raise ScenarioError("a scenario without a case: section needs EnvConfig(actuators=[...]): "
                            "the inputs the agent moves", scenario.source)
    if not measurements:
        from ..scenario import build

        sim = build(scenario)
        measurements = [s for s in sim.signals
                        if s not in sim.external_inputs and sim.port(s).measured]
    limits = {k: LimitSpec(low=v[0], high=v[1]) for k, v in operating_limits(scenario).items()}
    spec = CaseSpec.model_construct(
        objective=ObjectiveSpec(description="maximise production within the operating limits",
                                maximise="production_kg"),
        setpoints={}, constraints=limits, disturbances={}, measurements=list(measurements),
        actuators=list(actuators), price=None, controllers={}, expected={},
        kpis={"time_outside_s": ThresholdSpec(max=0)})
    return ControlCase(scenario.model_copy(update={"case": spec}))


def _as_case(case: ControlCase | Scenario | str | Path, config: EnvConfig) -> ControlCase:
    if isinstance(case, ControlCase):
        return case
    scenario = case if isinstance(case, Scenario) else load_scenario(case)
    if scenario.case is not None:
        return ControlCase(scenario)
    return case_from_scenario(scenario, config.actuators, config.measurements)


# -- the environment ---------------------------------------------------------------------------
class CaseEnv(gym.Env[np.ndarray, np.ndarray]):
    """A control test case as a Gymnasium environment (see the module's documentation).

    ``case``: a :class:`ControlCase`, a scenario, or a path to either; ``config`` an
    :class:`EnvConfig`, whose fields may also be given as keywords (``control_interval=12``).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, case: ControlCase | Scenario | str | Path, config: EnvConfig | None = None,
                 render_mode: str | None = None, **overrides: Any) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode: expected None (no rendering), found {render_mode!r}")
        config = dataclasses.replace(config or EnvConfig(), **overrides)
        self.case = _as_case(case, config)
        self._sim: Simulation | None = self.case.build()
        self.definition = d = Definition.of(self.case, config, self._sim)
        self.config = config
        self.action_space, self.observation_space = d.episode_spaces()
        self._seeded_once = False
        self._k = 0
        self._totals: list[float] = [0.0] * len(d.piece_names)
        # the definition as plain floats and offsets, for the hot loop of step()
        self._action_low, self._action_high = d.action_low.tolist(), d.action_high.tolist()
        self._grid: list[list[float]] = d.forecast_grid.tolist()
        self._tracked = list(d.tracked)
        m = len(d.measurements)
        self._measured = list(zip(d.measurements, d.observation_low[:m].tolist(),
                                  d.observation_high[:m].tolist(), strict=True))
        self._n_forecasts = len(d.forecast_names)
        self._horizon, self._every = config.forecast_steps, config.forecast_every or config.control_interval
        self._constrained = list(zip(d.constrained, d.constraint_low.tolist(),
                                     d.constraint_high.tolist(), strict=True))
        s, c = len(d.tracked), len(d.constrained)
        self._iae_at, self._ise_at = 3, 3 + s
        self._outside_at, self._integral_at = 3 + 2 * s, 3 + 2 * s + c
        self._travel_at = 3 + 2 * s + 2 * c
        # production and energy come from the plant's cumulative outputs (absent without it)
        self._cumulative = {_FORMATE, _ENERGY} <= set(self._sim.signals)
        self._readers(self._sim)
        self._outside = range(self._outside_at, self._outside_at + c)
        self._rewarded = [(j, float(w), float(cap))
                          for j, (w, cap) in enumerate(zip(d.weights, d.caps, strict=True)) if w != 0.0]
        self._done = True

    # -- plain calls ---------------------------------------------------------------------------
    @property
    def simulation(self) -> Simulation:
        """The simulation of the current episode (a plain :class:`cosim.Simulation`)."""
        if self._sim is None:
            raise ScenarioError("the environment is closed", self.case.source)
        return self._sim

    def results(self) -> Any:
        """The episode's recorded rows so far (a DataFrame, as ``sim.results()``)."""
        return self.simulation.results()

    def kpis(self) -> dict[str, Any]:
        """The case's KPIs of the episode so far, computed as ``run_case`` computes them."""
        sim = self.simulation
        return control_kpis(sim.results(), self.case, actuators=self.case.driven_by(sim))

    def score(self) -> list[Verdict]:
        """The case's thresholds against :meth:`kpis`."""
        return score(self.kpis(), self.case)

    # -- Gymnasium ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Build the simulation afresh (seeded by ``seed``) and return the first observation."""
        super().reset(seed=seed)
        if seed is not None:
            sim_seed = int(seed)
        elif not self._seeded_once:
            sim_seed = int(self.case.scenario.seed)
        else:
            sim_seed = int(self.np_random.integers(0, 2**31 - 1))
        self._seeded_once = True
        self._close_sim()
        scenario = self.case.scenario.model_copy(update={"seed": sim_seed})
        self._sim = ControlCase(scenario).build()
        self._sim.initialize()
        self._readers(self._sim)
        # what the actions set: with a supply the current asked of its energy manager
        self._targets = self.case.settable(self._sim)
        self._k = 0
        self._totals = [0.0] * len(self.definition.piece_names)
        self._done = False
        return self._observation(), {"time": self._sim.time, "seed": sim_seed}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Hold ``action`` over one control interval; reward and info as the module says."""
        if self._done:
            raise ScenarioError("step() after the episode ended: call reset()", self.case.source)
        d = self.definition
        sim = self.simulation
        # The hot loop works on plain floats: it adds, step by step, the same sums as
        # kpi_increments and reward (the definitions, on arrays), which tests hold it to;
        # numpy's per-call cost on vectors this short would be most of an engine step.
        lows, highs = self._action_low, self._action_high
        # an array's tolist() gives the float64 of each element, as np.asarray(float64) would
        asked = action.tolist() if isinstance(action, np.ndarray) else np.asarray(
            action, dtype=np.float64).tolist()
        if self.config.normalise_actions:
            values = [lo + (min(max(a, -1.0), 1.0) + 1.0) * 0.5 * (hi - lo)
                      for a, lo, hi in zip(asked, lows, highs, strict=True)]
        else:
            values = [min(max(a, lo), hi) for a, lo, hi in zip(asked, lows, highs, strict=True)]
        totals = self._totals
        before = list(totals)
        for i, (target, value) in enumerate(zip(self._targets, values, strict=True)):
            old = sim.get(target)
            totals[self._travel_at + i] += abs(value - old)
            if value != old:
                sim.set(target, value)
        error = self._advance(min(self.config.control_interval, d.steps - self._k))
        r = 0.0
        for j, w, cap in self._rewarded:
            now, then = totals[j], before[j]
            if now != then:  # an unchanged piece adds (+/-)0.0, which changes no sum
                r += w * (min(now, cap) - min(then, cap))
        # a constraint's time outside only grows (by the step): changed is broken
        o = self._outside
        outside = totals[o.start:o.stop] != before[o.start:o.stop]
        terminated = error is not None
        truncated = not terminated and self._k >= d.steps
        self._done = terminated or truncated
        info: dict[str, Any] = {
            "time": sim.time,
            "actuators": dict(zip(d.actuators, values, strict=True)),
            "kpi_pieces": dict(zip(d.piece_names, totals, strict=True)),
            # any constraint broken at any engine step of the interval
            "outside_constraints": outside,
            "flags": _raised(d.flag_signals, self._read_flags()),
        }
        if error is not None:
            info["error"] = error
        if self._done and self.config.kpis_at_end:
            figures = self.kpis()
            info["kpis"] = figures
            info["passed"] = all(v.ok for v in score(figures, self.case))
        return self._observation(), r, terminated, truncated, info

    def close(self) -> None:
        self._close_sim()
        super().close()

    # -- internals -----------------------------------------------------------------------------
    def _advance(self, n: int) -> str | None:
        """Advance ``n`` engine steps, adding each one's KPI pieces to the running totals;
        the error that stopped the simulation, if one did."""
        d = self.definition
        sim = self.simulation
        totals = self._totals
        grid, dt = self._grid, d.step_s
        constrained = self._constrained
        read_tracked, read_constrained = self._read_tracked, self._read_constrained
        iae, ise, out_at, integral_at = self._iae_at, self._ise_at, self._outside_at, self._integral_at
        price_col = len(d.forecast_names) - 1 if d.has_price else -1
        error = None
        k = self._k
        read_cumulative = self._read_cumulative
        f0, e0 = read_cumulative()
        for _ in range(n):
            try:
                sim.step()
            except CosimError as exc:  # the plant cannot go on: the episode terminates
                error = str(exc)
                break
            f1, e1 = read_cumulative()
            totals[0] += (f1 - f0) * _KG_PER_MOL
            totals[1] += e1 - e0
            if price_col >= 0:
                totals[2] += (e1 - e0) * grid[k][price_col]  # the price at the step's start
            k += 1
            row = grid[k]
            for i, y in enumerate(read_tracked()):
                e = row[i] - y
                totals[iae + i] += abs(e) * dt
                totals[ise + i] += e * e * dt
            for i, ((_, lo, hi), y) in enumerate(zip(constrained, read_constrained(), strict=True)):
                if lo <= y <= hi:  # inside: no excess (the common case, two comparisons)
                    continue
                excess = max(y - hi, 0.0) + max(lo - y, 0.0)
                if excess > 0.0:
                    totals[out_at + i] += dt
                    totals[integral_at + i] += excess * dt
            f0, e0 = f1, e1
        self._k = k
        return error

    def _observation(self) -> np.ndarray:
        """observation(measurements, Definition.forecasts(k), time left), built from plain
        floats (tests hold the two equal); a reading outside its port's bounds (a faulted
        sensor) is shown at the bound."""
        k = self._k
        values = [min(max(v, lo), hi)
                  for v, (_, lo, hi) in zip(self._read_measured(), self._measured, strict=True)]
        if self._n_forecasts:
            rows = self._grid[k: k + self._horizon * self._every: self._every]
            values += [row[i] for i in range(self._n_forecasts) for row in rows]
        values.append(1.0 - k / self.definition.steps)
        return np.array(values, dtype=np.float64)

    def _readers(self, sim: Simulation) -> None:
        """What the hot loop reads each engine step, one call per group of signals (a name
        lookup per signal and step cost as much as an engine step's components); the
        tracked and constrained signals as the plant did them (a faulted sensor's true value)."""
        d = self.definition
        self._read_flags = sim.reader(d.flag_signals)
        self._read_measured = sim.reader([m for m, _, _ in self._measured])
        self._read_tracked = sim.reader(self._tracked, true=True)
        self._read_constrained = sim.reader([c for c, _, _ in self._constrained], true=True)
        # production and energy from the plant's cumulative outputs; none without them
        self._read_cumulative: Callable[[], tuple[Any, ...]] = (
            sim.reader([_FORMATE, _ENERGY]) if self._cumulative else lambda: (0.0, 0.0))

    def _close_sim(self) -> None:
        if self._sim is not None:
            for comp in self._sim.components.values():
                close = getattr(comp, "close", None)
                if callable(close):
                    close()
            self._sim = None


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="co2twin.control.gym_env:CaseEnv")
