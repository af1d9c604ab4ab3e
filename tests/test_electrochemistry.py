"""The physics baseline of the flow cell respects process.md, for floats and arrays alike."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from models import electrochemistry as ec

P = ec.CellParameters()
AREA = P.area_cm2


def amps(j_ma_cm2: float) -> float:
    return j_ma_cm2 * AREA / 1000.0


def split(current: float, gas: float = 100.0, x: float = 100.0, q_cat: float = 5.57,
          damage: float = 0.0) -> tuple[float, float, float, float]:
    """(formate, carbonate, FE, CO2 fed) for a gas flow [mL/min] with x % CO2."""
    co2 = ec.gas_mol_s(gas * x / 100.0)
    return (*ec.faradaic_split(current, co2, x, gas, q_cat, damage, P), co2)


def fe(j: float, **kw: float) -> float:
    return split(amps(j), **kw)[2]


def steady_ph(current: float, flow: float = 5.57, conc: float = 1.0) -> float:
    oh = ec.hydroxide_step(conc, conc, flow, current, P.anolyte_volume_L, 1e9)
    return ec.ph_from_hydroxide(oh)


def nominal_voltage(j: float, temperature: float = 25.0, c_an: float = 1.0,
                    c_cat: float = 1.0) -> float:
    """Pure CO2, 1 M electrolytes at 5.57 mL/min, 90 % humidity, fresh catalyst, steady anolyte."""
    current = amps(j)
    return ec.cell_voltage(current, temperature, steady_ph(current, conc=c_an), c_an, c_cat,
                           5.57, 90.0, 0.0, P)


CURRENTS = [0.0, 1e-9, 0.01, 1.0, 5.0, 25.0, 100.0, 1000.0]
GAS = [0.0, 1e-3, 1.0, 10.0, 100.0, 1e4]
FRACTIONS = [0.0, 1e-3, 1.0, 10.0, 50.0, 100.0]
CATHOLYTE = [0.0, 5.57, 1000.0]
DAMAGE = [0.0, 0.5, 0.999]
GRID = list(itertools.product(CURRENTS, GAS, FRACTIONS, CATHOLYTE, DAMAGE))


def test_faradaic_efficiency_is_a_fraction():
    """FE to formate lies in [0, 1] over the whole grid, extremes included."""
    for current, gas, x, q_cat, damage in GRID:
        value = split(current, gas, x, q_cat, damage)[2]
        assert 0.0 <= value <= 1.0, (current, gas, x, q_cat, damage, value)


def test_formate_plus_carbonate_stays_below_the_co2_fed():
    """formate + carbonate < CO2 fed whenever CO2 is fed; with no CO2 (or no current) nothing forms."""
    for current, gas, x, q_cat, damage in GRID:
        formate, carbonate, _, co2 = split(current, gas, x, q_cat, damage)
        assert formate >= 0.0 and carbonate >= 0.0
        if co2 > 0.0:
            assert formate + carbonate < co2, (current, gas, x, formate, carbonate, co2)
        else:
            assert formate == 0.0 and carbonate == 0.0
        if current == 0.0:
            assert formate == 0.0 and carbonate == 0.0


@pytest.mark.parametrize("gas", [1e-300, 1e-200, 1e-30, 1e-12])
def test_vanishing_co2_flows_never_give_negative_outlet_co2(gas):
    """As a CO2 supply decays to nothing, CO2 out = in - formate - carbonate never goes negative."""
    for current in (1e-9, 5.0, 1000.0):
        for x in (1.0, 10.0, 100.0):
            formate, carbonate, _, co2 = split(current, gas, x)
            assert formate <= co2 and carbonate <= co2 - formate
            assert co2 - formate - carbonate >= 0.0


def test_faradays_law_links_formate_and_fe():
    """formate = FE * I / (2 F) at every grid point with current."""
    for current, gas, x, q_cat, damage in GRID:
        if current > 0:
            formate, _, value, _ = split(current, gas, x, q_cat, damage)
            assert formate == pytest.approx(value * current / (ec.Z_FORMATE * ec.F), rel=1e-12)


def test_fe_is_low_at_low_current_density_and_highest_mid_range():
    """FE < 10 % at 1 mA/cm2, 70-90 % at its best, and the best lies between 50 and 300 mA/cm2."""
    js = np.linspace(1.0, 1000.0, 1000)
    values = np.array([fe(j) for j in js])
    assert fe(1.0) < 0.10
    assert 0.70 <= values.max() <= 0.90
    assert 50.0 <= js[values.argmax()] <= 300.0
    assert fe(1000.0) < fe(200.0) - 0.2


@pytest.mark.parametrize("lean", [{"x": 20.0}, {"x": 10.0}, {"gas": 20.0}, {"gas": 5.0}])
def test_fe_falls_when_co2_limits(lean):
    """At 200 mA/cm2, a low CO2 fraction or a low gas flow lowers FE, the lower the leaner."""
    assert fe(200.0, **lean) < fe(200.0) - 0.05


def test_fe_falls_with_ageing_and_without_catholyte_flow():
    """An aged catalyst or a stopped catholyte pump lowers FE at 200 mA/cm2."""
    assert fe(200.0, damage=0.5) < fe(200.0) - 0.1
    assert fe(200.0, q_cat=0.0) < 0.5 * fe(200.0)


def test_cell_voltage_lies_in_the_pilot_range_and_rises_with_current():
    """Nominal conditions: 2.8 V <= E <= 4.5 V over 50-300 mA/cm2, rising with current density."""
    volts = np.array([nominal_voltage(j) for j in np.linspace(50.0, 300.0, 51)])
    assert volts.min() >= 2.8 and volts.max() <= 4.5, (volts.min(), volts.max())
    assert (np.diff(volts) > 0).all()
    assert nominal_voltage(300.0) > nominal_voltage(50.0) + 0.5


@pytest.mark.parametrize("j", [10.0, 50.0, 100.0, 200.0, 300.0])
def test_cell_voltage_falls_with_temperature(j):
    """Warmer is easier: E falls monotonically from -40 to 80 degC (the ports' range) and stays finite."""
    volts = np.array([nominal_voltage(j, temperature=t) for t in np.linspace(-40.0, 80.0, 61)])
    assert np.isfinite(volts).all()
    assert (np.diff(volts) < 0).all()


@pytest.mark.parametrize("j", [50.0, 200.0, 300.0])
def test_cell_voltage_falls_with_electrolyte_concentration(j):
    """More concentrated anolyte or catholyte conducts better: E falls."""
    concs = [0.1, 0.5, 1.0, 2.0, 4.0]
    anolyte = [nominal_voltage(j, c_an=c) for c in concs]
    catholyte = [nominal_voltage(j, c_cat=c) for c in concs]
    assert (np.diff(anolyte) < 0).all() and (np.diff(catholyte) < 0).all()


def test_cell_voltage_rises_with_ageing_dry_gas_and_stopped_catholyte():
    """Ageing, a dry membrane and a stopped catholyte flow each raise the voltage."""
    current, ph = amps(200.0), steady_ph(amps(200.0))
    base = ec.cell_voltage(current, 25.0, ph, 1.0, 1.0, 5.57, 90.0, 0.0, P)
    assert ec.cell_voltage(current, 25.0, ph, 1.0, 1.0, 5.57, 90.0, 0.5, P) > base + 0.2
    assert ec.cell_voltage(current, 25.0, ph, 1.0, 1.0, 5.57, 0.0, 0.0, P) > base
    assert ec.cell_voltage(current, 25.0, ph, 1.0, 1.0, 0.0, 90.0, 0.0, P) > base + 0.3


def test_anolyte_ph_falls_with_current_and_rises_with_flow_and_concentration():
    """The anode eats OH- at I/F: pH falls with current, rises with anolyte flow and concentration."""
    by_current = [steady_ph(i) for i in (0.0, 1.0, 3.0, 5.0, 7.5)]
    by_flow = [steady_ph(5.0, flow=q) for q in (4.0, 5.57, 10.0, 50.0)]
    by_conc = [steady_ph(5.0, conc=c) for c in (0.5, 1.0, 2.0, 4.0)]
    assert (np.diff(by_current) < 0).all()
    assert (np.diff(by_flow) > 0).all()
    assert (np.diff(by_conc) > 0).all()
    assert by_current[0] == pytest.approx(14.0, abs=1e-9)


def test_ph_from_net_hydroxide_is_neutral_at_zero_and_acidic_below():
    """Net hydroxide 0 -> pH 7; 1e-3 M net acid -> pH 3; 0.1 M net base -> pH 13."""
    assert ec.ph_from_hydroxide(0.0) == pytest.approx(7.0, abs=1e-12)
    assert ec.ph_from_hydroxide(-1e-3) == pytest.approx(3.0, abs=1e-6)
    assert ec.ph_from_hydroxide(0.1) == pytest.approx(13.0, abs=1e-6)


def test_stagnant_anolyte_is_integrated_without_flow():
    """With no anolyte flow the OH- simply drops by I dt / (F V)."""
    after = ec.hydroxide_step(1.0, 1.0, 0.0, 5.0, P.anolyte_volume_L, 10.0)
    assert after == pytest.approx(1.0 - 5.0 / ec.F / P.anolyte_volume_L * 10.0, rel=1e-12)


# -- arrays against floats --------------------------------------------------------------------
RNG = np.random.default_rng(20261123)
N = 400


def _draw(low: float, high: float, *special: float) -> np.ndarray:
    values = RNG.uniform(low, high, N)
    values[: len(special)] = special
    return values


INPUTS = {
    "current": _draw(0.0, 100.0, 0.0, 1e-9, 1000.0),
    "gas": _draw(0.0, 500.0, 0.0, 1e-12, 100.0),
    "x": _draw(0.0, 100.0, 100.0, 0.0, 100.0),
    "q_an": _draw(0.0, 50.0, 0.0, 5.57, 0.0),
    "q_cat": _draw(0.0, 50.0, 0.0, 5.57, 1000.0),
    "c_an": _draw(0.0, 4.0, 0.0, 1.0, 1.0),
    "c_cat": _draw(0.0, 4.0, 0.0, 1.0, 1.0),
    "temperature": _draw(-40.0, 80.0, 25.0, -40.0, 80.0),
    "humidity": _draw(0.0, 100.0, 0.0, 90.0, 100.0),
    "damage": _draw(0.0, 0.99, 0.0, 0.5, 0.0),
    "oh": _draw(-1.0, 2.0, 0.0, -1e-3, 1.0),
    "charge": _draw(0.0, 1e4, 0.0, 1.0, 5000.0),
    "hours": _draw(0.0, 5000.0, 0.0, 1.0, 2000.0),
    "dt": 7.0,
}


def _cases():
    v = INPUTS
    co2 = ec.gas_mol_s(v["gas"] * v["x"] / 100.0)
    ph = RNG.uniform(10.0, 14.0, N)
    return {
        "gas_mol_s": (ec.gas_mol_s, (v["gas"],)),
        "gas_ml_min": (ec.gas_ml_min, (co2,)),
        "current_density": (lambda i: ec.current_density(i, AREA), (v["current"],)),
        "catalyst_damage": (lambda c, h, xp: ec.catalyst_damage(c, h, P, xp),
                            (v["charge"], v["hours"]), True),
        "faradaic_split": (lambda i, co2_in, x, g, q, d, xp:
                           ec.faradaic_split(i, co2_in, x, g, q, d, P, xp),
                           (v["current"], co2, v["x"], v["gas"], v["q_cat"], v["damage"]), True),
        "hydroxide_step": (lambda oh, c, q, i, xp:
                           ec.hydroxide_step(oh, c, q, i, P.anolyte_volume_L, v["dt"], xp),
                           (v["oh"], v["c_an"], v["q_an"], v["current"]), True),
        "ph_from_hydroxide": (ec.ph_from_hydroxide, (v["oh"],), True),
        # the reported pH: Kw at the cell temperature (arrays take it by exp, floats by **)
        "ph_at_temperature": (lambda oh, t, xp: ec.ph_from_hydroxide(oh, xp, ec.ph_scale(t, P)),
                              (v["oh"], v["temperature"]), True),
        "cell_voltage": (lambda i, t, p, ca, cc, q, h, d, xp:
                         ec.cell_voltage(i, t, p, ca, cc, q, h, d, P, xp),
                         (v["current"], v["temperature"], ph, v["c_an"], v["c_cat"], v["q_cat"],
                          v["humidity"], v["damage"]), True),
        "first_order_step": (lambda y, target, rate, xp: ec.first_order_step(y, target, rate, 3.0, xp),
                             (v["temperature"], v["c_an"], v["q_an"] / 10.0), True),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_arrays_give_the_same_results_as_floats(name):
    """Every function on NumPy arrays (xp=numpy) equals the float path (xp=SCALAR) element-wise to 1e-12."""
    func, args, *takes_xp = CASES[name]
    extra = (np,) if takes_xp else ()
    with np.errstate(divide="raise", invalid="raise", over="raise", under="ignore"):
        vectors = func(*args, *extra)
    vectors = vectors if isinstance(vectors, tuple) else (vectors,)
    for k in range(N):
        scalars = func(*(float(a[k]) for a in args), *((ec.SCALAR,) if takes_xp else ()))
        scalars = scalars if isinstance(scalars, tuple) else (scalars,)
        for vec, sca in zip(vectors, scalars):
            assert isinstance(sca, float)
            assert math.isclose(vec[k], sca, rel_tol=1e-12, abs_tol=1e-300), (name, k, vec[k], sca)


def test_namespace_picks_numpy_only_for_arrays():
    """Plain numbers use the fast scalar namespace; any array switches to NumPy."""
    assert ec.namespace(1.0, 2, np.float64(3.0)) is ec.SCALAR
    assert ec.namespace(1.0, np.array([1.0])) is np
