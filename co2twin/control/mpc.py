"""Model-predictive control on the twin itself: the oracle MPC of a test case.

:class:`MPC` plays the role of pc-gym's "oracle NMPC": its prediction model is a copy
of the twin (the case's own scenario, built once), restored at every control move from
the plant's checkpoint (:meth:`cosim.Simulation.get_state`), so it knows the true state,
the ageing, the scheduled events and the input profiles exactly. It is the reference a
controller that sees only measurements is compared with, not a controller one could put
on the plant as it is. It never reads a sensor: sensor faults do not reach it.

Each move (every ``move_s`` seconds) it optimises the actuators over a receding horizon
of ``sum(blocks)`` moves with move blocking (the actuator holds one value per block),
applies the first block's values and starts again one move later:

* the objective is the case's (``maximise: production_kg``, ``minimise: energy_cost``,
  ``energy_kWh``, ``specific_energy_kWh_per_kg``, ``tracking_iae``/``tracking_ise``,
  ``time_outside_s``/``integral_outside``), computed from the predicted trajectory, plus
  a small penalty on moves;
* the case's constraints (cell voltage, anolyte pH, FE, ...) are hard constraints at
  every predicted step, tightened by ``backoff``; when they cannot all be met (or the
  objective is itself the time outside them) the squared violation is penalised instead;
* a ``production_kg`` minimum of the case, when the objective is another (the day's
  target of price_following), constrains every prediction that reaches the case's end;
  such a case gets by default a shrinking horizon to its end, in moves of a 24th of it;
* each actuator moves within ``bounds``: by default the range of
  :func:`co2twin.control.actuators.actuator_range` (the Gymnasium environment's action
  space too): the input port's bounds narrowed by the case's own controllers' ``limits:``,
  the plant's rating (the supply's rated current, the pumps' full scale) and the
  surrogates' training envelope, so that it never plans where the plant cannot go or the
  twin is not valid; :attr:`MPC.ranges` (``"ranges"`` in :meth:`MPC.stats`) says which
  range it used and what set each end.

The optimiser is scipy's SLSQP (sequential quadratic programming, the standard choice
for a small smooth NLP with bounds and inequality constraints), on forward-difference
gradients of the simulated trajectory (the twin is deterministic, so they are clean),
with L-BFGS-B on the penalty form as the fallback. CasADi would need the model as a
symbolic graph: the twin is a co-simulation of Python components, so it does not fit.

The host (:func:`co2twin.control.run_case`) drives it with plain calls, data flowing one
way: ``prepare(case)`` once, then ``plan(t, plant.get_state())`` each move, whose
actions it sets on the plant's free actuators.
"""
from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.electrochemistry import M_HCOOH

from cosim.errors import ScenarioError
from cosim.profiles import Steps
from cosim.simulation import Simulation
from .actuators import ActuatorRange, actuator_range
from .case import ControlCase

__all__ = ["MPC", "MPC_NAME", "MPC_OBJECTIVES"]

#: the name that selects the MPC as a controller (``co2twin control run CASE --controller mpc``)
MPC_NAME = "mpc"

#: the case objectives the MPC can predict
MPC_OBJECTIVES = ("production_kg", "energy_cost", "energy_kWh", "specific_energy_kWh_per_kg",
                  "tracking_iae", "tracking_ise", "time_outside_s", "integral_outside")

_PRODUCED = "reactor.formate_produced"  # mol of formate made so far
_ENERGY = "reactor.energy"  # kWh drawn so far
_MOVES_PER_RUN = 48  # the default move: a 48th of the case's duration, on the step grid
#: weight of the squared violation (relative to the limit's size) against the normalised objective:
#: a violation of 0.1 % of the limit over the horizon costs as much as the whole objective
_PENALTY = 1e6


@dataclass
class _Problem:
    """One move's optimisation: the start, the plant state, and the evaluations made."""

    t: float
    state: Mapping[str, Any]
    edges: np.ndarray  # start time of each block
    end: float  # end of the prediction (horizon, or the case's end)
    active: np.ndarray  # per variable: its block starts before the end (else it moves nothing)
    scale: float = 1.0
    cache: dict[bytes, tuple[float, np.ndarray, float]] = field(default_factory=dict)


class MPC:
    """Oracle MPC of a test case on the twin's checkpoint/rollback (module docstring).

    ``move_s``: seconds between moves (default: a 48th of the case, on the step grid; a 24th
    for a production target);
    ``blocks``: the horizon in moves per block (default ``(1, 1, 2)``: three blocks, four
    moves; for a production target, one block per move to the case's end);
    ``bounds``: actuator -> (low, high), in the actuator's unit (default: module docstring);
    ``backoff``: constraints
    are tightened by this share of the limit's size (at least of 1); ``move_weight``:
    penalty on block-to-block moves (normalised by the range); ``max_iter``: iterations
    per solve; ``fd_step``: forward-difference step, as a share of each actuator's range.
    """

    name = MPC_NAME

    def __init__(self, *, move_s: float | None = None, blocks: Sequence[int] | None = None,
                 bounds: Mapping[str, tuple[float, float]] | None = None, backoff: float = 1e-3,
                 move_weight: float = 1e-3, max_iter: int = 50, fd_step: float = 1e-3) -> None:
        if blocks is not None and (not blocks or any(int(b) != b or b < 1 for b in blocks)):
            raise ValueError(f"MPC blocks: expected whole numbers of moves >= 1, found {list(blocks)}")
        if move_s is not None and not (math.isfinite(move_s) and move_s > 0):
            raise ValueError(f"MPC move_s: expected a positive number of seconds, found {move_s!r}")
        self.move_s = move_s
        self._blocks = None if blocks is None else tuple(int(b) for b in blocks)
        self.blocks: tuple[int, ...] = self._blocks or (1, 1, 2)
        self.bounds = dict(bounds or {})
        self.backoff = backoff
        self.move_weight = move_weight
        self.max_iter = max_iter
        self.fd_step = fd_step
        #: wall-clock seconds spent planning (as a controller component's compute_seconds)
        self.compute_seconds = 0.0
        #: wall-clock seconds of each move
        self.move_seconds: list[float] = []
        self.solves = 0
        self.fallbacks = 0
        self.model_runs = 0
        #: warnings the prediction model gave (it explores; the plant's own are the run's)
        self.model_warnings: list[str] = []
        self._case: ControlCase | None = None
        self._model: Simulation | None = None
        self._last: np.ndarray | None = None
        #: each actuator's range and where its ends came from, once prepared
        self.ranges: list[ActuatorRange] = []

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self, case: ControlCase) -> None:
        """Build the prediction model for ``case`` and check the case can be predicted."""
        spec = case.spec
        goal = spec.objective.maximise or spec.objective.minimise
        if goal not in MPC_OBJECTIVES or (spec.objective.maximise and goal != "production_kg"):
            sense = "maximise" if spec.objective.maximise else "minimise"
            raise ScenarioError(f"case.objective.{sense}: the MPC predicts maximise production_kg or "
                                f"minimise one of {', '.join(MPC_OBJECTIVES[1:])}; found {goal!r}",
                                case.source)
        self._case = case
        self._goal = goal
        # a production the run must reach (price_following: the day's target), when the
        # objective is something else: a constraint on every prediction that reaches the end
        target = spec.kpis.get("production_kg")
        self._target = target.min if target is not None and target.min is not None \
            and goal != "production_kg" else None
        step, duration = case.scenario.step, case.scenario.duration
        move = self.move_s or duration / (_MOVES_PER_RUN / 2 if self._target else _MOVES_PER_RUN)
        self._move = step * max(1, round(move / step))  # on the step grid
        self.blocks = self._blocks or ((1,) * math.ceil(duration / self._move - 1e-9) if self._target
                                       else (1, 1, 2))
        self._actuators = case.actuators
        model = case.build()
        self._constraints = case.constraints
        wanted = [_PRODUCED, _ENERGY, *self._constraints, *spec.setpoints, *self._actuators]
        model.record([s for s in dict.fromkeys(wanted) if s in model.signals])
        model.initialize()
        self._model = model
        self._made0 = float(model.get(_PRODUCED)) if _PRODUCED in model.signals else 0.0
        self._end = case.scenario.end
        self._lo, self._hi = self._bounds(case, model)
        self._price = case.profile("price") if spec.price is not None else None
        self._setpoints = {s: case.profile(s) for s in spec.setpoints}
        self._last = None
        self.compute_seconds = 0.0
        self.move_seconds = []
        self.solves = self.fallbacks = self.model_runs = 0
        self.model_warnings = []

    def _bounds(self, case: ControlCase, model: Simulation) -> tuple[np.ndarray, np.ndarray]:
        """Each actuator's range: given, else :func:`co2twin.control.actuators.actuator_range`'s
        default (the port's, narrowed by the case's limits, the plant's rating and the
        surrogates' envelope); :attr:`ranges` keeps where each end came from."""
        self.ranges = []
        for actuator in self._actuators:
            given = self.bounds.get(actuator) or self.bounds.get(actuator.partition(".")[2].removesuffix(
                "_setpoint"))
            self.ranges.append(actuator_range(case, model, actuator, given, what="MPC bounds"))
        return (np.array([r.low for r in self.ranges]), np.array([r.high for r in self.ranges]))

    # -- each move ---------------------------------------------------------------------------
    @property
    def move(self) -> float:
        """Seconds between moves (on the case's step grid), once prepared."""
        return self._move

    def plan(self, t: float, state: Mapping[str, Any]) -> dict[str, float]:
        """The actuators' values for the coming move, from the plant's checkpoint at ``t``."""
        if self._case is None or self._model is None:
            raise RuntimeError("MPC.plan() before prepare(case)")
        start = time.perf_counter()
        n_act, n_blk = len(self._actuators), len(self.blocks)
        edges = t + self._move * np.concatenate([[0], np.cumsum(self.blocks)[:-1]])
        end = min(t + self._move * sum(self.blocks), self._case.scenario.end)
        active = np.tile(edges < end - 1e-9 * max(1.0, abs(end)), n_act)
        problem = _Problem(t, state, edges, end, active)
        if self._last is None:  # the actuators where the plant has them now
            now = np.array([self._held(state, a, t) for a in self._actuators])
            x0 = np.repeat(((now - self._lo) / (self._hi - self._lo))[:, None], n_blk, axis=1)
        else:  # warm start: the last plan shifted by one block
            x0 = np.concatenate([self._last[:, 1:], self._last[:, -1:]], axis=1)
        x0 = np.clip(x0, 0.0, 1.0).ravel()
        f0 = self._evaluate(problem, x0)[0]
        problem.scale = max(abs(f0), 1e-12)
        x = self._solve(problem, x0)
        self._last = x.reshape(n_act, n_blk)
        u = self._lo + self._last[:, 0] * (self._hi - self._lo)
        spent = time.perf_counter() - start
        self.compute_seconds += spent
        self.move_seconds.append(spent)
        return {a: float(v) for a, v in zip(self._actuators, u, strict=True)}

    def _held(self, state: Mapping[str, Any], actuator: str, t: float) -> float:
        """Where the plant holds ``actuator`` at ``t``, within the MPC's bounds."""
        assert self._model is not None
        profile = state["profiles"].get(actuator)
        value = float(profile.value(t)) if profile is not None else float(self._model.port(actuator).start)
        i = self._actuators.index(actuator)
        return min(max(value, float(self._lo[i])), float(self._hi[i]))

    def _solve(self, problem: _Problem, x0: np.ndarray) -> np.ndarray:
        """SLSQP with the constraints hard; L-BFGS-B on the penalty form if that fails."""
        from scipy.optimize import minimize

        n = len(x0)
        bounds = [(0.0, 1.0)] * n
        hard = (bool(self._constraints) or self._target is not None) \
            and self._goal not in ("time_outside_s", "integral_outside")
        if hard:
            self.solves += 1
            result = minimize(
                lambda x: self._cost(problem, x), x0, jac=lambda x: self._gradient(problem, x)[0],
                method="SLSQP", bounds=bounds,
                constraints=[{"type": "ineq", "fun": lambda x: self._evaluate(problem, x)[1],
                              "jac": lambda x: self._gradient(problem, x)[1]}],
                options={"maxiter": self.max_iter, "ftol": 1e-7})
            # the constraints were tightened by the backoff to absorb the solver's tolerance:
            # a plan within the case's own limits is taken even at the iteration limit
            c = self._evaluate(problem, result.x)[1]
            if len(c) == 0 or c.min() >= -self.backoff:
                return np.asarray(result.x)
            self.fallbacks += 1
            x0 = np.asarray(result.x)
        self.solves += 1
        result = minimize(lambda x: self._penalised(problem, x), x0,
                          jac=lambda x: self._gradient(problem, x)[2], method="L-BFGS-B",
                          bounds=bounds, options={"maxiter": self.max_iter})
        return np.asarray(result.x)

    def _cost(self, problem: _Problem, x: np.ndarray) -> float:
        return self._evaluate(problem, x)[0] / problem.scale + self._moves(x)

    def _penalised(self, problem: _Problem, x: np.ndarray) -> float:
        return self._cost(problem, x) + self._evaluate(problem, x)[2]

    def _moves(self, x: np.ndarray) -> float:
        blocks = x.reshape(len(self._actuators), len(self.blocks))
        return float(self.move_weight * np.sum(np.diff(blocks, axis=1) ** 2))

    def _gradient(self, problem: _Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward differences of the cost, the constraints and the penalised cost."""
        f0, c0, p0 = self._cost(problem, x), self._evaluate(problem, x)[1], self._evaluate(problem, x)[2]
        gf, gp = np.zeros(len(x)), np.zeros(len(x))
        gc = np.zeros((len(c0), len(x)))
        for i in np.flatnonzero(problem.active):
            h = self.fd_step if x[i] + self.fd_step <= 1.0 else -self.fd_step
            xi = x.copy()
            xi[i] += h
            gf[i] = (self._cost(problem, xi) - f0) / h
            _, ci, pi = self._evaluate(problem, xi)
            gc[:, i] = (ci - c0) / h
            gp[i] = gf[i] + (pi - p0) / h
        return gf, gc, gp

    def _evaluate(self, problem: _Problem, x: np.ndarray) -> tuple[float, np.ndarray, float]:
        """Predict from the plant's state with the blocks ``x`` (normalised): the objective,
        the constraint margins (>= 0 where met) and the violation penalty; cached per ``x``."""
        key = np.asarray(x, dtype=float).tobytes()
        if key in problem.cache:
            return problem.cache[key]
        model = self._model
        assert model is not None
        # the optimiser may step a rounding error past a bound: the port would refuse it
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        u = (self._lo[:, None] + x.reshape(len(self._actuators), len(self.blocks))
             * (self._hi - self._lo)[:, None])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.set_state(problem.state)
            for i, actuator in enumerate(self._actuators):
                model.drive(actuator, Steps(tuple((float(e), float(v))
                                                  for e, v in zip(problem.edges, u[i], strict=True))))
            model.advance_to(problem.end)
        self.model_runs += 1
        for w in caught:
            text = str(w.message)
            if text not in self.model_warnings:
                self.model_warnings.append(text)
        frame = model.results()
        frame = frame[frame.index >= problem.t - 1e-9]
        result = self._score(frame)
        problem.cache[key] = result
        return result

    def _score(self, frame: Any) -> tuple[float, np.ndarray, float]:
        times = frame.index.to_numpy(dtype=float)
        dt = np.diff(times)
        span = max(float(times[-1] - times[0]), 1e-9)

        def values(name: str) -> np.ndarray:
            column = f"{name}:true" if f"{name}:true" in frame.columns else name
            return frame[column].to_numpy(dtype=float)

        made = (values(_PRODUCED)[-1] - values(_PRODUCED)[0]) * M_HCOOH / 1000.0 \
            if _PRODUCED in frame.columns else 0.0
        energy = np.diff(values(_ENERGY)) if _ENERGY in frame.columns else np.zeros(len(dt))
        margins, penalty = [], 0.0
        for signal, (low, high) in self._constraints.items():
            if signal not in frame.columns:
                continue
            y = values(signal)[1:]  # the first row is the plant's, whatever the plan
            for limit, sign in ((high, 1.0), (low, -1.0)):
                if limit is None:
                    continue
                size = max(abs(limit), 1.0)
                bound = limit - sign * self.backoff * size
                margin = sign * (bound - y) / size
                margins.append(margin)
                penalty += float(np.sum(np.minimum(margin, 0.0) ** 2 * dt)) / span
        if self._target is not None and _PRODUCED in frame.columns \
                and times[-1] >= self._end - 1e-9 * max(1.0, abs(self._end)):
            total = (values(_PRODUCED)[-1] - self._made0) * M_HCOOH / 1000.0
            margin = (total - self._target * (1.0 + self.backoff)) / self._target
            margins.append(np.array([margin]))
            penalty += min(margin, 0.0) ** 2
        goal = self._goal
        if goal == "production_kg":
            value = -made
        elif goal == "energy_cost":
            price = self._price
            value = float(np.sum(energy * np.array([price.value(s) for s in times[:-1]]))) \
                if price is not None else float(np.sum(energy))
        elif goal == "energy_kWh":
            value = float(np.sum(energy))
        elif goal == "specific_energy_kWh_per_kg":
            value = float(np.sum(energy)) / max(made, 1e-12)
        elif goal in ("tracking_iae", "tracking_ise"):
            value = 0.0
            for signal, profile in self._setpoints.items():
                r = np.array([profile.value(s) for s in times])
                e = (r - values(signal))[1:] / max(abs(float(np.max(np.abs(r)))), 1e-12)
                value += float(np.sum(e * e * dt)) / span
        else:  # the time outside the constraints: their squared violation is the objective
            value = 0.0
        c = np.concatenate(margins) if margins else np.zeros(0)
        return value, c, _PENALTY * penalty

    # -- what it did -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Moves, optimiser solves (and fallbacks to the penalty form), prediction-model runs,
        the median and largest wall time of one move (ms), and ``ranges``: per actuator the
        range it moved in and where each end came from (:meth:`ActuatorRange.as_dict`)."""
        ms = [s * 1000.0 for s in self.move_seconds]
        return {"ranges": {r.actuator: r.as_dict() for r in self.ranges},
                "moves": len(ms), "solves": self.solves, "fallbacks": self.fallbacks,
                "model_runs": self.model_runs, "move_s": self._move if self._case else math.nan,
                "horizon_s": self._move * sum(self.blocks) if self._case else math.nan,
                "median_move_ms": float(np.median(ms)) if ms else math.nan,
                "max_move_ms": max(ms) if ms else math.nan}

