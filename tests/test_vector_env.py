"""The vectorised environment (co2twin.vector_env): N episodes in one call on an ensemble.

::

    actions (N, a) ──▶ CaseVectorEnv.step ──▶ one ensemble simulation, N episodes
    episode i  ==  CaseEnv reset with seed + i and given actions[:, i]
"""
from __future__ import annotations

import numpy as np
import pytest

from co2twin.control.gym_env import CaseEnv, EnvConfig, case_from_scenario
from co2twin.scenario import parse_scenario
from co2twin.vector_env import CaseVectorEnv
from cosim.errors import ScenarioError

#: a short plant with sensor noise on a measured signal, so the episodes' seeds matter
SCENARIO = {"name": "vector", "duration": 60, "step": 1.0, "inputs": {"current": 5.0},
            "events": [{"at": 10, "type": "sensor_noise", "target": "reactor.cell_voltage",
                        "std": 0.01}]}
MEASURED = ["power.current", "reactor.cell_voltage", "separation.tank_formate_conc"]
CONFIG = EnvConfig(control_interval=5, kpis_at_end=False, action_bounds={"current": (1.0, 6.8)})


@pytest.fixture(scope="module")
def case():
    return case_from_scenario(parse_scenario(SCENARIO), ["current"], MEASURED)


def test_each_episode_equals_a_single_environment(case):
    """Observations, rewards and ends of episode i equal CaseEnv's with seed 7 + i and the same
    actions, through an episode's end and the automatic reset that follows."""
    n = 3
    vector = CaseVectorEnv(case, n, CONFIG)
    singles = [CaseEnv(case, CONFIG) for _ in range(n)]
    obs, info = vector.reset(seed=7)
    assert obs.shape == (n, vector.single_observation_space.shape[0])
    assert list(info["seed"]) == [7, 8, 9]
    np.testing.assert_allclose(obs, [e.reset(seed=7 + i)[0] for i, e in enumerate(singles)],
                               rtol=1e-12, atol=1e-15)
    rng = np.random.default_rng(0)
    for k in range(14):
        actions = rng.uniform(-1.0, 1.0, (n, 1)).astype(np.float32)
        obs, rewards, terminated, truncated, _ = vector.step(actions)
        if k == 12:  # the step after the end: the episodes start again, reward 0
            expected = [(e.reset(seed=7 + i)[0], 0.0, False) for i, e in enumerate(singles)]
        else:
            expected = [(o, r, t) for o, r, _, t, _ in (e.step(actions[i]) for i, e in enumerate(singles))]
        np.testing.assert_allclose(obs, [o for o, _, _ in expected], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(rewards, [r for _, r, _ in expected], rtol=1e-9, atol=1e-18)
        assert list(truncated) == [t for _, _, t in expected]
        assert not terminated.any()
    assert truncated.dtype == bool


def test_seeds_make_the_episodes_differ(case):
    """Different seeds, different sensor noise: the voltage readings of the episodes differ."""
    vector = CaseVectorEnv(case, 2, CONFIG)
    vector.reset(seed=1)
    for _ in range(4):
        obs, *_ = vector.step(np.zeros((2, 1)))
    voltage = MEASURED.index("reactor.cell_voltage")
    assert obs[0, voltage] != obs[1, voltage]


def test_variants_randomise_the_episodes(case):
    """variants: each episode its own plant (here the cell area), kept across resets."""
    vector = CaseVectorEnv(case, 2, CONFIG, variants=[{}, {"plant.reactor.area_cm2": 50.0}])
    vector.reset(seed=0)
    density = vector.simulation.get("reactor.current_density")
    assert density[0] == pytest.approx(2 * density[1])


def test_bad_arguments_are_refused(case):
    """num_envs must be >= 1, variants one per episode; structural variants are refused."""
    with pytest.raises(ValueError, match="num_envs"):
        CaseVectorEnv(case, 0, CONFIG)
    with pytest.raises(ValueError, match="expected 2"):
        CaseVectorEnv(case, 2, CONFIG, variants=[{}])
    vector = CaseVectorEnv(case, 1, CONFIG, variants=[{"models.default": "physics"}])
    with pytest.raises(ScenarioError, match="cannot vary"):
        vector.reset()


def test_threads_change_nothing_but_the_time(case):
    """2,500 episodes (three blocks of the networks' batch path) on one thread and on two:
    the same observations and rewards, bit for bit."""
    rng = np.random.default_rng(4)
    actions = rng.uniform(-1.0, 1.0, size=(3, 2_500, 1)).astype(np.float32)
    runs = []
    for threads in (1, 2):
        envs = CaseVectorEnv(case, 2_500, CONFIG, threads=threads)
        obs, _ = envs.reset(seed=7)
        seen = [obs]
        for a in actions:
            obs, rewards, *_ = envs.step(a)
            seen += [obs, rewards]
        envs.close()
        runs.append(seen)
    for one, two in zip(*runs, strict=True):
        np.testing.assert_array_equal(one, two)


def test_the_solar_case_steps_its_current_request_single_and_vector():
    """The shipped solar case (scenarios/control/solar_grid_price.yaml): with the supply, the
    agent's current goes to the energy manager's request (the power supply's set point is the
    manager's), in CaseEnv and, episode by episode equal to it, in the vector env."""
    from pathlib import Path

    path = Path(__file__).parent.parent / "scenarios" / "control" / "solar_grid_price.yaml"
    config = EnvConfig(control_interval=10, kpis_at_end=False)
    single = CaseEnv(str(path), config)
    vector = CaseVectorEnv(str(path), 2, config)
    first = single.reset(seed=4)[0]
    np.testing.assert_allclose(vector.reset(seed=4)[0][0], first, rtol=1e-12, atol=1e-15)
    rng = np.random.default_rng(1)
    for _ in range(6):
        actions = rng.uniform(-1.0, 1.0, (2,) + single.action_space.shape).astype(np.float32)
        obs, reward, _, _, info = single.step(actions[0])
        asked = info["actuators"]["power.current_setpoint"]
        assert single.simulation.get("ems.current_request") == asked
        v_obs, v_rewards, _, _, _ = vector.step(actions)
        np.testing.assert_allclose(v_obs[0], obs, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(v_rewards[0], reward, rtol=1e-9, atol=1e-18)
        assert np.array_equal(vector.simulation.get("ems.current_request")[:1], [asked])
