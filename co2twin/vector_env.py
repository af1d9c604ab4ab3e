"""N episodes of a control test case in one call: a Gymnasium vector environment on ensembles.

:class:`CaseVectorEnv` runs ``num_envs`` episodes of one case as one ensemble
(:func:`co2twin.ensemble.build_ensemble`): every signal is an array of the episodes, so one
``step(actions)`` with actions ``(num_envs, actuators)`` advances all of them with one pass of
the components and surrogates per engine step. Observation, action and reward are those of
:class:`co2twin.control.gym_env.CaseEnv`, computed with its array definitions
(:func:`~co2twin.control.gym_env.scale_action`, :func:`~co2twin.control.gym_env.observation`,
:func:`~co2twin.control.gym_env.kpi_increments`, :func:`~co2twin.control.gym_env.reward`):
episode ``i`` equals a ``CaseEnv`` reset with the same seed and given the same actions.

Episodes of a case all last as long, so they end together; the next ``step`` resets them all
(Gymnasium's ``next_step`` autoreset) and returns the first observations with reward 0.
``variants``: each episode may vary the case as an ensemble's variant does (domain
randomisation: ``{"plant.reactor.area_cm2": 30.0}``). A simulation error in any episode ends
all of them (``terminated``, ``info["error"]``), since they share one simulation. Cases whose
plant has a Python controller are refused (it steps one run at a time); the shipped controllers
and the solar supply step arrays.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from cosim.errors import CosimError
from cosim.simulation import Simulation
from models.bank import batch_threads
from .control.case import ControlCase
from .control.gym_env import (
    Definition,
    EnvConfig,
    _as_case,
    kpi_increments,
    observation,
    reward,
    scale_action,
)
from .ensemble import batch_thread_count, blas_threads, build_ensemble, record_ensemble
from .scenario import _close
from .scenario_schema import Scenario

__all__ = ["CaseVectorEnv"]

_FORMATE = "reactor.formate_produced"
_ENERGY = "reactor.energy"


class CaseVectorEnv(VectorEnv):
    """``num_envs`` episodes of a case stepped as one ensemble (see the module's documentation).

    ``case`` and ``config`` as for :class:`~co2twin.control.gym_env.CaseEnv` (keywords
    override ``config``'s fields); ``variants``: per episode, overrides of the case's scenario
    (:mod:`co2twin.ensemble` paths), ``num_envs`` of them, kept across resets; ``threads``:
    how many threads run the surrogates' networks on the episodes (default BLAS's count here;
    the same results for any).
    """

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, case: ControlCase | Scenario | str | Path, num_envs: int,
                 config: EnvConfig | None = None, *,
                 variants: Sequence[Mapping[str, Any]] | None = None, threads: int | None = None,
                 **overrides: Any) -> None:
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise ValueError(f"num_envs: expected a whole number >= 1, found {num_envs!r}")
        config = dataclasses.replace(config or EnvConfig(), **overrides)
        self.case = _as_case(case, config)
        self.config = config
        self.num_envs = num_envs
        # the episodes' networks run in blocks on this many threads, as an ensemble's do
        # (co2twin.ensemble.run_ensemble: the same bits for any count)
        self.threads = batch_thread_count() if threads is None else int(threads)
        self.variants = [dict(v) for v in variants] if variants is not None else [{}] * num_envs
        if len(self.variants) != num_envs:
            raise ValueError(f"variants: expected {num_envs} (one per episode), found "
                             f"{len(self.variants)}")
        probe = self.case.build()
        try:
            self.definition = d = Definition.of(self.case, config, probe)
        finally:
            _close(probe.components.values())
        self.single_action_space, self.single_observation_space = d.episode_spaces()
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._sim: Simulation | None = None
        self._seeds: np.ndarray | None = None
        self._k = 0
        self._totals = np.zeros((num_envs, len(d.piece_names)))
        self._needs_reset = True

    @property
    def simulation(self) -> Simulation:
        """The ensemble simulation of the current episodes (signals are arrays of ``num_envs``)."""
        if self._sim is None:
            raise RuntimeError("no episodes yet: call reset()")
        return self._sim

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start all episodes afresh: episode ``i`` seeded ``seed + i`` (or ``seed[i]``); without
        a seed, the case's own seed plus ``i`` the first time, then seeds drawn from the
        environment's generator."""
        n = self.num_envs
        if seed is None:
            if self._seeds is None:
                seeds = np.arange(n) + int(self.case.scenario.seed)
            else:
                seeds = self.np_random.integers(0, 2**31 - 1, size=n)
        elif isinstance(seed, int):
            super().reset(seed=seed)
            seeds = np.arange(n) + seed
        else:
            seeds = np.asarray(seed, dtype=np.int64)
            if seeds.shape != (n,):
                raise ValueError(f"seed: expected one per episode ({n}), found {len(seeds)}")
        self._seeds = seeds
        self._close_sim()
        variants = [{**v, "seed": int(s)} for v, s in zip(self.variants, seeds, strict=True)]
        sim = build_ensemble(self.case.scenario, variants)
        d = self.definition
        sim.record([d.measurements[0]], every=max(1, d.steps))  # the engine records; we read
        record_ensemble(sim, n, rows=3)
        sim.initialize()
        self._sim = sim
        self._targets = self.case.settable(sim)  # what the actions set: with a supply, its request
        self._k = 0
        self._totals = np.zeros((n, len(d.piece_names)))
        self._needs_reset = False
        return self._observation(), {"time": sim.time, "seed": seeds.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           dict[str, Any]]:
        """Hold each episode's action over one control interval; rewards per episode."""
        n = self.num_envs
        if self._needs_reset:
            first, started = self.reset()
            return first, np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), started
        d = self.definition
        sim = self.simulation
        actions = np.asarray(actions, dtype=np.float64).reshape(n, len(d.actuators))
        values = (scale_action(actions, d.action_low, d.action_high) if self.config.normalise_actions
                  else np.minimum(np.maximum(actions, d.action_low), d.action_high))
        travel = np.empty_like(values)
        for i, target in enumerate(self._targets):
            travel[:, i] = np.abs(values[:, i] - sim.get(target))
            sim.set(target, values[:, i].copy())
        before = self._totals.copy()
        error = self._advance(min(self.config.control_interval, d.steps - self._k), travel)
        rewards = reward(before, self._totals, d.weights, d.caps)
        outside = slice(3 + 2 * len(d.tracked), 3 + 2 * len(d.tracked) + len(d.constrained))
        terminated = np.full(n, error is not None)
        truncated = np.full(n, error is None and self._k >= d.steps)
        self._needs_reset = bool(terminated[0] or truncated[0])
        info: dict[str, Any] = {
            "time": sim.time,
            "actuators": values,
            "outside_constraints": (self._totals[:, outside] > before[:, outside]).any(axis=1),
        }
        if error is not None:
            info["error"] = error
        return self._observation(), rewards, terminated, truncated, info

    def _advance(self, steps: int, travel: np.ndarray) -> str | None:
        """``steps`` engine steps; their KPI pieces (and the actuators' travel) added to the
        running totals with :func:`kpi_increments`."""
        d = self.definition
        sim = self.simulation
        n = self.num_envs
        get, get_true = sim.get, sim.get_true
        cumulative = {_FORMATE, _ENERGY} <= set(sim.signals)
        formate, energy = np.zeros((n, steps)), np.zeros((n, steps))
        tracked = np.zeros((n, steps, len(d.tracked)))
        setpoint = np.zeros((n, steps, len(d.tracked)))
        constrained = np.zeros((n, steps, len(d.constrained)))
        price = np.zeros(steps)
        price_col = len(d.forecast_names) - 1 if d.has_price else -1
        f0, e0 = (get(_FORMATE), get(_ENERGY)) if cumulative else (0.0, 0.0)
        error = None
        done = 0
        with blas_threads(), batch_threads(self.threads):
            for j in range(steps):
                try:
                    sim.step()
                except CosimError as exc:  # the plant cannot go on: every episode ends
                    error = str(exc)
                    break
                f1, e1 = (get(_FORMATE), get(_ENERGY)) if cumulative else (0.0, 0.0)
                formate[:, j], energy[:, j] = f1 - f0, e1 - e0
                if price_col >= 0:
                    price[j] = d.forecast_grid[self._k][price_col]  # the price at the step's start
                self._k += 1
                for i, signal in enumerate(d.tracked):
                    tracked[:, j, i] = get_true(signal)
                    setpoint[:, j, i] = d.forecast_grid[self._k][i]
                for i, signal in enumerate(d.constrained):
                    constrained[:, j, i] = get_true(signal)
                f0, e0 = f1, e1
                done += 1
        dt = np.full(done, d.step_s)
        self._totals += kpi_increments(
            dt, formate[:, :done], energy[:, :done], price[:done], tracked[:, :done],
            setpoint[:, :done], constrained[:, :done], d.constraint_low, d.constraint_high, travel)
        return error

    def _observation(self) -> np.ndarray:
        d = self.definition
        sim = self.simulation
        n = self.num_envs
        measured = np.column_stack([np.broadcast_to(sim.get(m), (n,)) for m in d.measurements])
        forecasts = np.broadcast_to(d.forecasts(self._k), (n, len(d.forecasts(self._k))))
        obs = observation(measured, forecasts, np.full(n, 1.0 - self._k / d.steps))
        # a reading outside its port's bounds (a faulted sensor) is shown at the bound
        return np.minimum(np.maximum(obs, d.observation_low), d.observation_high)

    def close_extras(self, **kwargs: Any) -> None:
        self._close_sim()

    def _close_sim(self) -> None:
        if self._sim is not None:
            _close(self._sim.components.values())
            self._sim = None
