"""A linear policy improved by the cross-entropy method, in NumPy: the smallest agent that
proves a Gymnasium environment's plumbing (spaces, reward, seeds) with no deep-learning stack.

>>> from co2twin.control.gym_env import CaseEnv
>>> from co2twin.control.cem import cem
>>> env = CaseEnv("scenarios/control/tank_concentration.yaml", control_interval=60)  # doctest: +SKIP
>>> result = cem(env, iterations=4, population=8, seed=0)                          # doctest: +SKIP
>>> result.returns[0], result.returns[-1]   # the mean policy's return, before and after  # doctest: +SKIP

The cross-entropy method keeps a Gaussian over the policy's parameters; each iteration
draws a population, runs one episode with each (all on the same reset seed, so that they
are compared on the same disturbances and noise), and refits the Gaussian to the best
(the elite). It needs no gradient: only returns. Any environment with a Box observation
and a Box action space in [-1, 1] will do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CemResult", "LinearPolicy", "cem", "episode_return"]


@dataclass
class LinearPolicy:
    """``action = clip(W @ ((obs - offset) / scale) + b, -1, 1)``.

    ``offset`` and ``scale`` put every observation near 0 with a spread near 1 (raw
    observations mix mol/L, A, V and EUR/kWh); ``theta`` holds ``W`` row by row, then ``b``.
    """

    offset: np.ndarray
    scale: np.ndarray
    theta: np.ndarray
    n_actions: int

    @classmethod
    def zeros(cls, offset: np.ndarray, scale: np.ndarray, n_actions: int) -> LinearPolicy:
        """The policy that always answers 0 (the middle of each actuator's range)."""
        return cls(offset, scale, np.zeros(n_actions * (len(offset) + 1)), n_actions)

    @property
    def size(self) -> int:
        """Number of parameters."""
        return len(self.theta)

    def with_theta(self, theta: np.ndarray) -> LinearPolicy:
        """The same policy with other parameters."""
        return LinearPolicy(self.offset, self.scale, np.asarray(theta, dtype=np.float64), self.n_actions)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        n_obs = len(self.offset)
        w = self.theta[: self.n_actions * n_obs].reshape(self.n_actions, n_obs)
        b = self.theta[self.n_actions * n_obs:]
        x = (np.asarray(obs, dtype=np.float64) - self.offset) / self.scale
        return np.clip(w @ x + b, -1.0, 1.0).astype(np.float32)


def episode_return(env: Any, policy: LinearPolicy, seed: int) -> float:
    """Total reward of one episode of ``policy`` from ``env.reset(seed=seed)``."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        if terminated or truncated:
            return total


@dataclass
class CemResult:
    """What :func:`cem` found: the final mean policy, and per iteration (the first entry
    before any update) the mean policy's return and the population's best."""

    policy: LinearPolicy
    returns: list[float] = field(default_factory=list)
    best: list[float] = field(default_factory=list)


def cem(env: Any, *, iterations: int = 5, population: int = 8, elite: float = 0.25,
        init_std: float = 0.5, min_std: float = 0.05, seed: int = 0,
        episode_seed: int = 0) -> CemResult:
    """Improve a linear policy on ``env`` by the cross-entropy method.

    ``elite``: share of the population the Gaussian is refitted to; ``init_std``,
    ``min_std``: its starting and smallest spread per parameter (the floor keeps it
    exploring); ``seed`` draws the populations; every episode starts from
    ``reset(seed=episode_seed)``. Observation offset and scale come from the first
    observation (its magnitude, at least 1e-3), so the zero policy is the start.
    """
    if not 0.0 < elite <= 1.0:
        raise ValueError(f"cem: elite must be a share in (0, 1], found {elite!r}")
    if population < 2 or iterations < 1:
        raise ValueError(f"cem: expected population >= 2 and iterations >= 1, found "
                         f"{population!r} and {iterations!r}")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=episode_seed)
    offset = np.asarray(obs, dtype=np.float64).copy()
    scale = np.maximum(np.abs(offset), 1e-3)
    policy = LinearPolicy.zeros(offset, scale, int(np.prod(env.action_space.shape)))
    mean = policy.theta.copy()
    std = np.full(policy.size, init_std)
    n_elite = max(1, round(elite * population))
    result = CemResult(policy, [episode_return(env, policy, episode_seed)])
    result.best.append(result.returns[0])
    for _ in range(iterations):
        thetas = mean + std * rng.standard_normal((population, policy.size))
        scores = np.array([episode_return(env, policy.with_theta(t), episode_seed) for t in thetas])
        chosen = thetas[np.argsort(scores)[::-1][:n_elite]]
        mean = chosen.mean(axis=0)
        std = np.maximum(chosen.std(axis=0), min_std)
        result.policy = policy.with_theta(mean)
        result.returns.append(episode_return(env, result.policy, episode_seed))
        result.best.append(float(scores.max()))
    return result
