"""A controller for the day-ahead price case (price_following.yaml), written as any user would:
a plain class with the controller signature of co2twin (README, "Testing a control strategy").

``CheapestHours`` plans the day's current hour by hour against the day-ahead price, to make
the day's formic acid at the least energy cost.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: the cell's steady state at each current [A]: formic acid made [g HCOOH/h] and power [W],
#: read off the twin at 25 degC ambient, pure CO2, 100 mL/min (the plant model this planner uses)
STEADY = (
    (1.0, 0.499, 2.895), (2.0, 1.308, 6.197), (3.0, 2.111, 9.855), (4.0, 2.850, 13.869),
    (5.0, 3.497, 18.244), (6.0, 4.042, 23.032), (6.8, 4.404, 27.132),
)


class CheapestHours:
    """Plan the current of each hour to make ``target_g`` of HCOOH in ``hours`` at least cost.

    For a multiplier ``lam`` (EUR per g), each hour takes the current that maximises
    ``lam * production - price * energy``; ``lam`` is raised (bisection) until the plan
    makes the target with ``margin`` to spare. Cheap hours get high currents, expensive
    ones the lowest (the cell is never switched off). The plan is made once, from the
    price forecast, and replayed: ``step`` only looks up the hour.
    """

    def __init__(self, target_g: float = 60.0, hours: int = 24, margin: float = 1.04) -> None:
        self.target_g = target_g
        self.hours = hours
        self.margin = margin
        self._price: Callable[[float], float] | None = None
        self._t0 = 0.0
        self._plan: list[float] = []

    def set_forecasts(self, forecasts: Mapping[str, Callable[[float], float]]) -> None:
        self._price = forecasts["price"]

    def initialise(self, t0: float) -> None:
        if self._price is None:
            raise ValueError("CheapestHours needs the day-ahead price (a case with case.price)")
        self._t0 = t0
        prices = [self._price(t0 + 3600.0 * h + 1800.0) for h in range(self.hours)]
        lo, hi = 0.0, 10.0
        for _ in range(60):
            lam = (lo + hi) / 2.0
            made = sum(STEADY[_best(lam, p)][1] for p in prices)
            lo, hi = (lam, hi) if made < self.target_g * self.margin else (lo, lam)
        self._plan = [STEADY[_best(hi, p)][0] for p in prices]

    def step(self, t: float, measurements: Mapping[str, float]) -> dict[str, float]:
        hour = min(int((t - self._t0) // 3600.0), len(self._plan) - 1)
        return {"current": self._plan[hour]}

    def get_state(self) -> dict[str, Any]:
        return {"t0": self._t0, "plan": list(self._plan)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._t0 = state["t0"]
        self._plan = list(state["plan"])


def _best(lam: float, price: float) -> int:
    """The steady state worth most at multiplier ``lam`` and ``price`` (EUR/kWh) for one hour."""
    return max(range(len(STEADY)), key=lambda i: lam * STEADY[i][1] - price * STEADY[i][2] / 1000.0)
