"""Physics of a Li-ion cell: open-circuit voltage, stored energy, and the seed's capacity fade.

Pure functions of floats or NumPy arrays (one element per variant), like
:mod:`models.electrochemistry` for the flow cell.

**Open-circuit voltage.** :data:`OCV_SOC` / :data:`OCV_V` tabulate a cobalt-oxide
18650 cell (the NASA cells' chemistry), linear between the points. The chemical
energy a cell of capacity ``C`` holds at state of charge ``s`` is
``C * 3600 * F(s)`` joules with ``F(s) = integral of OCV from 0 to s`` (:func:`ocv_integral`);
:func:`soc_from_integral` inverts it exactly, segment by segment.

**Capacity fade (the seed).** The hybrid battery twin this project started from models
fade as ``C = C0 (1 - L)``, ``L = 1 - exp(-k T i / t)`` with ``k = 0.13``, ``T`` the
cell temperature in degC, ``i`` the cycle number and ``t`` the time of the cycle's
discharge in seconds (:func:`seed_capacity`). That needs ``t``, which a future
cycle does not have yet: the seed notebook fails there. At constant current ``I``
the discharge lasts ``t = 3600 C / I``, so the fade closes on itself:
``x = C / C0`` solves ``x = exp(-a / x)`` with ``a = k T i c / 3600`` and
``c = I / C0`` the C-rate (:func:`capacity_fraction`). The solution is
``x = exp(W(-a))`` (principal Lambert W); it exists while ``a <= 1/e``, where the
seed law has the cell at ``x = 1/e``: beyond that it predicts no capacity left to
fade and :func:`capacity_fraction` holds ``1/e`` (flagged by :func:`beyond_seed_law`).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any

import numpy as np

__all__ = [
    "K_SEED", "OCV_SOC", "OCV_V", "ocv", "ocv_integral", "soc_from_integral", "soc_and_ocv", "seed_loss",
    "seed_capacity", "capacity_fraction", "beyond_seed_law", "lambert_w0",
]

#: the seed's fade constant, in 1/(degC * cycle / s)
K_SEED = 0.13

#: state of charge (fraction) and open-circuit voltage (V) of one cell, cobalt-oxide 18650
OCV_SOC = np.array([0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00])
OCV_V = np.array([3.00, 3.30, 3.45, 3.55, 3.63, 3.68, 3.72, 3.77, 3.84, 3.92, 4.00, 4.08, 4.18])
_SLOPE = np.diff(OCV_V) / np.diff(OCV_SOC)
#: F at each table point (V * fraction): the trapezoids of a piecewise-linear OCV are exact
_F_KNOTS = np.concatenate([[0.0], np.cumsum(0.5 * (OCV_V[1:] + OCV_V[:-1]) * np.diff(OCV_SOC))])
_LIST = (OCV_SOC.tolist(), OCV_V.tolist(), _SLOPE.tolist(), _F_KNOTS.tolist())
_INV_E = math.exp(-1.0)


def _segment(s: float, knots: list[float]) -> int:
    """Index j of the table segment [knots[j], knots[j+1]] that holds ``s`` (clipped)."""
    return min(max(bisect_right(knots, s) - 1, 0), len(knots) - 2)


def ocv(soc: Any) -> Any:
    """Open-circuit voltage (V) of one cell at state of charge ``soc`` (fraction, clipped to [0, 1])."""
    if isinstance(soc, np.ndarray):
        return np.interp(np.clip(soc, 0.0, 1.0), OCV_SOC, OCV_V)
    s = min(max(float(soc), 0.0), 1.0)
    xs, vs, slope, _ = _LIST
    j = _segment(s, xs)
    return vs[j] + slope[j] * (s - xs[j])


def ocv_integral(soc: Any) -> Any:
    """``F(soc)``: integral of the OCV from 0 to ``soc`` (V * fraction); energy per Ah / 3600 J."""
    if isinstance(soc, np.ndarray):
        return _integral_array(soc)
    s = min(max(float(soc), 0.0), 1.0)
    xs, vs, slope, fk = _LIST
    j = _segment(s, xs)
    u = s - xs[j]
    return fk[j] + vs[j] * u + 0.5 * slope[j] * u * u


def _integral_array(soc: np.ndarray) -> np.ndarray:
    s = np.clip(soc, 0.0, 1.0)
    j = np.clip(np.searchsorted(OCV_SOC, s, side="right") - 1, 0, len(_SLOPE) - 1)
    u = s - OCV_SOC[j]
    return _F_KNOTS[j] + OCV_V[j] * u + 0.5 * _SLOPE[j] * u * u


def _soc_array(f: np.ndarray) -> np.ndarray:
    g = np.clip(f, 0.0, _F_KNOTS[-1])
    j = np.clip(np.searchsorted(_F_KNOTS, g, side="right") - 1, 0, len(_SLOPE) - 1)
    r = g - _F_KNOTS[j]
    v, m = OCV_V[j], _SLOPE[j]
    # the root of m/2 u^2 + v u - r = 0 in the form that keeps its digits when m is small
    return OCV_SOC[j] + 2.0 * r / (v + np.sqrt(v * v + 2.0 * m * r))


def soc_from_integral(f: Any) -> Any:
    """The state of charge whose :func:`ocv_integral` is ``f`` (clipped to [0, F(1)])."""
    if isinstance(f, np.ndarray):
        return _soc_array(f)
    xs, vs, slope, fk = _LIST
    g = min(max(float(f), 0.0), fk[-1])
    j = _segment(g, fk)
    r = g - fk[j]
    v, m = vs[j], slope[j]
    return xs[j] + 2.0 * r / (v + math.sqrt(v * v + 2.0 * m * r))


def soc_and_ocv(f: float) -> tuple[float, float]:
    """``soc_from_integral(f)`` and the :func:`ocv` of that state of charge, for a float ``f``.

    The battery needs both after every step; this is the same operations as the two calls
    (``min``/``max`` written as the comparisons they make), without their dispatch on arrays
    and helper calls, so the results are the same bits.
    """
    xs, vs, slope, fk = _LIST
    last = len(xs) - 2
    g = float(f)
    g = 0.0 if g < 0.0 else g  # max(g, 0.0)
    top = fk[-1]
    g = top if top < g else g  # min(g, top)
    j = bisect_right(fk, g) - 1
    j = 0 if j < 0 else last if j > last else j
    r = g - fk[j]
    v, m = vs[j], slope[j]
    soc = xs[j] + 2.0 * r / (v + math.sqrt(v * v + 2.0 * m * r))
    s = 0.0 if soc < 0.0 else soc  # as ocv() clips: max(soc, 0.0), then min(., 1.0)
    s = 1.0 if s > 1.0 else s
    j = bisect_right(xs, s) - 1
    j = 0 if j < 0 else last if j > last else j
    return soc, vs[j] + slope[j] * (s - xs[j])


def seed_loss(temperature: Any, cycle: Any, duration: Any, k: float = K_SEED) -> Any:
    """The seed's fade ``L = 1 - exp(-k T i / t)``: ``T`` degC, ``i`` cycle, ``t`` discharge s."""
    return 1.0 - np.exp(-k * np.asarray(temperature, float) * np.asarray(cycle, float)
                        / np.asarray(duration, float))


def seed_capacity(c0: Any, temperature: Any, cycle: Any, duration: Any, k: float = K_SEED) -> Any:
    """The seed's capacity ``C0 (1 - L)`` when the discharge time of the cycle is known (Ah)."""
    return np.asarray(c0, float) * (1.0 - seed_loss(temperature, cycle, duration, k))


def lambert_w0(z: Any) -> Any:
    """Principal branch of the Lambert W function on [-1/e, 0] (``w e^w = z``), to ~1e-15.

    Halley's iteration from a start that is close on the whole interval: the
    branch-point series near -1/e, ``z`` itself near 0.
    """
    if not isinstance(z, np.ndarray):
        zf = max(float(z), -_INV_E)
        if zf < -0.25:
            p = math.sqrt(max(2.0 * (math.e * zf + 1.0), 0.0))
            w = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p**3
        else:
            w = zf - zf * zf
        for _ in range(6):
            ew = math.exp(w)
            f = w * ew - zf
            if f == 0.0 or w == -1.0:
                break
            w -= f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0))
        return w
    za = np.maximum(np.asarray(z, float), -_INV_E)
    p = np.sqrt(np.maximum(2.0 * (math.e * za + 1.0), 0.0))
    w = np.where(za < -0.25, -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p**3, za - za * za)
    for _ in range(6):
        ew = np.exp(w)
        f = w * ew - za
        denominator = ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0 + (w == -1.0))
        step = np.where((f == 0.0) | (w == -1.0), 0.0, f / np.where(denominator == 0, 1.0, denominator))
        w = w - step
    return w


def _fade_exponent(cycle: Any, temperature: Any, c_rate: Any, k: float) -> Any:
    """``a = k T i c / 3600``, never below 0 (a cell below 0 degC does not un-age)."""
    number = (int, float)
    # three checks, not all() over a generator: the battery asks this every step it discharges
    if isinstance(cycle, number) and isinstance(temperature, number) and isinstance(c_rate, number):
        return max(k * float(temperature) * float(cycle) * float(c_rate) / 3600.0, 0.0)
    # arrays, or anything array-like (pandas columns)
    return np.maximum(k * np.asarray(temperature, float) * np.asarray(cycle, float)
                      * np.asarray(c_rate, float) / 3600.0, 0.0)


def capacity_fraction(cycle: Any, temperature: Any, c_rate: Any, k: float = K_SEED) -> Any:
    """``C / C0`` after ``cycle`` cycles at ``temperature`` degC and ``c_rate`` (1/h), by the seed law.

    Closes the seed law with the discharge time at constant current (module
    docstring); held at ``1/e`` beyond the law's reach (``a > 1/e``).
    """
    a = _fade_exponent(cycle, temperature, c_rate, k)
    if isinstance(a, np.ndarray):
        return np.exp(lambert_w0(-np.minimum(a, _INV_E)))
    return math.exp(lambert_w0(-min(a, _INV_E)))


def beyond_seed_law(cycle: Any, temperature: Any, c_rate: Any, k: float = K_SEED) -> Any:
    """Where the seed law has no solution (``k T i c / 3600 > 1/e``): the fraction is held at 1/e."""
    return np.asarray(_fade_exponent(cycle, temperature, c_rate, k)) > _INV_E
