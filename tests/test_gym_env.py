"""A test case as a Gymnasium environment: the checker's contract, seeds, spaces from the case
and its ports, forecasts, a reward that adds up to the case's own KPIs, and a training run.

    agent ──action──▶ CaseEnv ──sim.set / sim.step / sim.get──▶ Simulation of the case
          ◀─obs, reward (KPI pieces), truncated at the case's end, info─┘
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

from co2twin.control import control_kpis, load_case
from co2twin.control.cem import LinearPolicy, cem, episode_return
from co2twin.control.gym_env import (
    ENV_ID,
    CaseEnv,
    EnvConfig,
    kpi_increments,
    observation,
    reward,
    scale_action,
    unscale_action,
)
from cosim.errors import ScenarioError

CASES = Path(__file__).resolve().parents[1] / "scenarios" / "control"
TANK = CASES / "tank_concentration.yaml"
PRICE = CASES / "price_following.yaml"
PH = CASES / "anolyte_ph.yaml"
#: the price case's shipped controllers give no current limits: the range its comment states
PRICE_BOUNDS = {"current": (1.0, 6.8)}


def _noisy_case(tmp_path: Path) -> Path:
    """The tank case with sensor noise on the concentration the agent reads."""
    data = yaml.safe_load(TANK.read_text())
    data["events"].append({"at": 0, "type": "sensor_noise", "target": "separation.tank_formate_conc",
                           "std": 0.002})
    # the case's disturbance names events by index: the noise is appended after them
    path = tmp_path / "noisy_tank.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _episode(env: CaseEnv, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[float], dict]:
    obs, _ = env.reset(seed=seed)
    seen, rewards, info = [obs], [], {}
    for a in actions:
        obs, r, terminated, truncated, info = env.step(a)
        seen.append(obs)
        rewards.append(r)
        if terminated or truncated:
            break
    return seen, rewards, info


@pytest.mark.parametrize("path, extra", [(TANK, {}), (PRICE, {"action_bounds": PRICE_BOUNDS}), (PH, {})],
                         ids=["setpoint", "price", "sensor-bias"])
def test_env_checker_passes_without_warnings(path, extra):
    """Gymnasium's env_checker passes on cases with a set point, a price and a sensor fault, and
    has nothing to warn about (finite bounds, symmetric normalised actions, determinism)."""
    env = CaseEnv(path, EnvConfig(control_interval=12, **extra))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    gym_warnings = [str(w.message) for w in caught if "gymnasium" in str(w.filename)]
    assert gym_warnings == []


def test_reset_with_a_seed_is_reproducible_bit_for_bit(tmp_path):
    """The same seed and actions give the same observations and rewards bit for bit; another
    seed gives other sensor noise, so the seed reaches the simulation's random effects."""
    env = CaseEnv(_noisy_case(tmp_path), EnvConfig(control_interval=6, episode_s=1800))
    actions = np.random.default_rng(1).uniform(-1, 1, size=(100, 1)).astype(np.float32)
    obs_a, rew_a, _ = _episode(env, 7, actions)
    obs_b, rew_b, _ = _episode(env, 7, actions)
    obs_c, _, _ = _episode(env, 8, actions)
    assert np.array_equal(np.stack(obs_a), np.stack(obs_b))
    assert np.stack(obs_a).tobytes() == np.stack(obs_b).tobytes()
    assert rew_a == rew_b
    assert not np.array_equal(np.stack(obs_a)[:, 0], np.stack(obs_c)[:, 0])


def test_first_reset_without_a_seed_uses_the_case_seed(tmp_path):
    """reset() with no seed starts on the case's own seed (what run_case scores) the first time."""
    path = _noisy_case(tmp_path)
    first = CaseEnv(path, episode_s=600).reset()
    seeded = CaseEnv(path, episode_s=600).reset(seed=load_case(path).scenario.seed)
    assert first[1]["seed"] == seeded[1]["seed"] == 1
    assert np.array_equal(first[0], seeded[0])


def test_spaces_come_from_the_case_and_its_ports():
    """Observation: the case's measurements (port bounds), set-point forecasts, time left;
    action: the case's actuator, bounded by its shipped controllers' limits or the config."""
    env = CaseEnv(TANK, forecast_steps=3)
    d = env.definition
    assert d.actuators == ["power.current_setpoint"]
    assert (d.action_low.tolist(), d.action_high.tolist()) == ([0.0], [6.8])
    assert env.action_space.shape == (1,) and env.action_space.low[0] == -1.0
    assert d.observation_names == [
        "separation.tank_formate_conc", "power.current", "reactor.cell_voltage",
        "separation.tank_formate_conc.setpoint[+0]", "separation.tank_formate_conc.setpoint[+1]",
        "separation.tank_formate_conc.setpoint[+2]", "time_left"]
    sim = env.simulation
    assert env.observation_space.high[2] == sim.port("reactor.cell_voltage").upper
    narrowed = CaseEnv(TANK, action_bounds={"current": (1.0, 5.0)}, normalise_actions=False)
    assert narrowed.action_space.low.tolist() == [1.0] and narrowed.action_space.high.tolist() == [5.0]
    with pytest.raises(ScenarioError, match="anolyte_flow_setpoint is not an actuator of the case"):
        CaseEnv(TANK, action_bounds={"anolyte_flow": (1.0, 5.0)})


def test_price_forecast_in_the_observation_is_the_day_ahead_price():
    """The price case's observation holds the price at now, +1, +2 ... control intervals,
    as the case's price profile gives it (held at its last value past the case's end)."""
    env = CaseEnv(PRICE, control_interval=30, forecast_steps=4, action_bounds=PRICE_BOUNDS)
    case = env.case
    price = case.profile("price")
    names = env.definition.observation_names
    at = [names.index(f"price[+{j}]") for j in range(4)]
    obs, _ = env.reset(seed=0)
    d = env.definition
    for i in range(5):
        t = env.simulation.time
        expected = [price.value(min(t + j * 1800.0, case.scenario.end)) for j in range(4)]
        assert obs[at].tolist() == expected
        # the environment's observation is the array definition's, bit for bit
        measured = [env.simulation.get(m) for m in d.measurements]
        assert obs.tobytes() == observation(measured, d.forecasts(30 * i), 1 - 30 * i / d.steps).tobytes()
        obs, *_ = env.step(np.zeros(1, dtype=np.float32))
    assert len(set(obs[at].tolist())) > 1  # the price moves within the horizon somewhere


def test_episode_is_truncated_at_the_case_end_and_scored():
    """An episode lasts the case's duration in control intervals (the last one shorter when
    they do not divide it) and is truncated there, with the case's KPIs and verdict in info."""
    env = CaseEnv(TANK, control_interval=7)  # 2880 engine steps: 411 intervals and one of 3
    env.reset(seed=0)
    count, ended = 0, (False, False)
    while not any(ended):
        _, _, *ended, info = env.step(np.zeros(1, dtype=np.float32))
        count += 1
    assert count == math.ceil(2880 / 7)
    assert ended == [False, True]
    assert env.simulation.time == 14400.0
    assert info["passed"] is False and "tracking_iae" in info["kpis"]
    with pytest.raises(ScenarioError, match="after the episode ended"):
        env.step(np.zeros(1, dtype=np.float32))


def test_reward_adds_up_to_the_case_kpis():
    """The KPI pieces summed by the environment equal the case's KPIs computed from the
    recorded run (as run_case scores it), and the return equals reward() over them."""
    env = CaseEnv(PRICE, control_interval=30, action_bounds=PRICE_BOUNDS)
    actions = np.random.default_rng(3).uniform(-1, 1, size=(48, 1)).astype(np.float32)
    _, rewards, info = _episode(env, 5, actions)
    pieces = info["kpi_pieces"]
    figures = control_kpis(env.results(), env.case, actuators=env.case.driven_by(env.simulation))
    assert pieces["production_kg"] == pytest.approx(figures["production_kg"], rel=1e-12)
    assert pieces["energy_cost"] == pytest.approx(figures["energy_cost"], rel=1e-12)
    assert pieces["time_outside_s[reactor.cell_voltage]"] == figures["time_outside_s"]
    assert pieces["actuator_travel[power.current_setpoint]"] == pytest.approx(
        figures["actuator_travel"]["power.current_setpoint"], rel=1e-12)
    d = env.definition
    totals = np.array([pieces[n] for n in d.piece_names])
    assert sum(rewards) == pytest.approx(float(reward(np.zeros_like(totals), totals, d.weights, d.caps)),
                                         rel=1e-9)
    # the price case: production counts up to its 60 g target, cost against its 36 mEUR
    weights = dict(zip(d.piece_names, d.weights, strict=True))
    assert weights["production_kg"] == pytest.approx(1 / 0.060)
    assert weights["energy_cost"] == pytest.approx(-1 / 0.036)


def test_tracking_pieces_follow_the_true_value_like_the_kpis():
    """IAE/ISE against the planned set point and the integral outside a constraint match
    control_kpis, on the plant's true value where a sensor reads wrong (the pH probe's bias)."""
    for path, signal in ((TANK, "separation.tank_formate_conc"), (PH, None)):
        env = CaseEnv(path, control_interval=60)
        actions = np.random.default_rng(4).uniform(-1, 1, size=(300, 1)).astype(np.float32)
        _, _, info = _episode(env, 0, actions)
        figures = info["kpis"]
        if signal:
            assert info["kpi_pieces"][f"tracking_iae[{signal}]"] == pytest.approx(
                figures["tracking_iae"][signal], rel=1e-12)
            assert info["kpi_pieces"][f"tracking_ise[{signal}]"] == pytest.approx(
                figures["tracking_ise"][signal], rel=1e-12)
        for s, value in figures["integral_outside"].items():
            assert info["kpi_pieces"][f"integral_outside[{s}]"] == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert figures["integral_outside"]["reactor.anolyte_ph"] > 0  # the random flow broke the band


def test_array_definitions_agree_with_the_environment_and_take_batches():
    """kpi_increments over a recorded episode gives the environment's totals; with a batch
    axis it gives each variant's; scale_action/unscale_action invert each other."""
    env = CaseEnv(TANK, control_interval=10, episode_s=3600)
    actions = np.random.default_rng(5).uniform(-1, 1, size=(400, 1)).astype(np.float32)
    _, _, info = _episode(env, 0, actions)
    frame = env.results()
    d = env.definition
    n = len(frame) - 1
    y = frame["separation.tank_formate_conc"].to_numpy()[1:, None]
    v = frame["reactor.cell_voltage"].to_numpy()[1:, None]
    args = (np.full(n, d.step_s), np.diff(frame["reactor.formate_produced"].to_numpy()),
            np.diff(frame["reactor.energy"].to_numpy()), np.zeros(n), y, d.forecast_grid[1:n + 1, :1],
            v, d.constraint_low, d.constraint_high,
            [np.abs(np.diff(frame["power.current_setpoint"].to_numpy())).sum()])
    pieces = kpi_increments(*args)
    assert pieces == pytest.approx([info["kpi_pieces"][p] for p in d.piece_names], rel=1e-10, abs=1e-15)
    batched = kpi_increments(args[0], np.stack([args[1], 2 * args[1]]), np.stack([args[2], args[2]]),
                             args[3], np.stack([y, y + 0.01]), args[5], np.stack([v, v]), args[7], args[8],
                             np.stack([args[9], args[9]]))
    assert batched.shape == (2, len(d.piece_names))
    assert batched[0] == pytest.approx(pieces, rel=1e-12)
    assert batched[1][0] == pytest.approx(2 * pieces[0], rel=1e-12)
    low, high = np.array([0.0, 1.0]), np.array([6.8, 19.5])
    a = np.array([[-1.0, 1.0], [0.25, -0.5]])
    assert unscale_action(scale_action(a, low, high), low, high) == pytest.approx(a)
    assert scale_action([2.0, -3.0], low, high).tolist() == [6.8, 1.0]
    assert observation([[1.0, 2.0]], [[3.0]], [0.5]).tolist() == [[1.0, 2.0, 3.0, 0.5]]


def test_a_plain_scenario_is_an_environment(tmp_path):
    """A scenario without a case: section becomes an environment once its actuators are named;
    its constraints are the operating limits; without actuators the error says what to give."""
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\nduration: 10 min\nstep: 5\ninputs: {current: 4.0}\n")
    env = CaseEnv(path, actuators=["current"], measurements=["reactor.cell_voltage"],
                  action_bounds={"current": (1.0, 6.8)}, control_interval=12)
    check_env(env, skip_render_check=True)
    assert "reactor.cell_voltage" in env.definition.constrained
    with pytest.raises(ScenarioError, match=r"needs EnvConfig\(actuators="):
        CaseEnv(path)


def test_registered_with_gymnasium():
    """gymnasium.make builds the environment by id, with the case and config fields as keywords."""
    env = gym.make(ENV_ID, case=str(TANK), control_interval=60)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.config.control_interval == 60
    with pytest.raises(ValueError, match="control_interval"):
        CaseEnv(TANK, control_interval=0)


def test_cross_entropy_training_improves_the_return():
    """A linear policy improved by the cross-entropy method (NumPy, no deep-learning stack)
    tracks the tank's set point better than the zero policy it starts from."""
    env = CaseEnv(TANK, control_interval=60, episode_s=7200)
    result = cem(env, iterations=3, population=6, seed=0)
    start = result.returns[0]
    assert start == episode_return(env, LinearPolicy.zeros(result.policy.offset, result.policy.scale, 1), 0)
    assert result.returns[-1] > start + 0.3 * abs(start)
    assert result.best[-1] > start
