"""A controller for the solar-and-battery case (solar_grid_price.yaml), written as any user
would: a plain class with the controller signature of co2twin (README, "Testing a control
strategy").

``SunThenCheapHours`` asks for the current the sun can carry, runs on from the battery
while it holds charge above a floor, and makes up the day's formic acid in the cheapest
hours of the day-ahead grid price.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class SunThenCheapHours:
    """Run the cell on PV first, then the battery, then the grid in its cheapest hours.

    Each step: the current PV power carries (``pv.power`` through the converter's
    ``efficiency`` at the last cell voltage), at least ``battery_current`` while the
    battery's state of charge is above ``soc_floor``, and at least ``cheap_current``
    in the ``cheap_hours`` cheapest hours of the day (planned once from the price
    forecast). Never above ``max_current``; 0 (the cell rests) when nothing asks for more.
    """

    def __init__(self, cheap_hours: int = 6, cheap_current: float = 5.0, battery_current: float = 3.0,
                 soc_floor: float = 0.25, efficiency: float = 0.95, max_current: float = 6.8,
                 hours: int = 24) -> None:
        self.cheap_hours = cheap_hours
        self.cheap_current = cheap_current
        self.battery_current = battery_current
        self.soc_floor = soc_floor
        self.efficiency = efficiency
        self.max_current = max_current
        self.hours = hours
        self._price: Callable[[float], float] | None = None
        self._t0 = 0.0
        self._cheap: list[int] = []

    def set_forecasts(self, forecasts: Mapping[str, Callable[[float], float]]) -> None:
        self._price = forecasts["price"]

    def initialise(self, t0: float) -> None:
        if self._price is None:
            raise ValueError("SunThenCheapHours needs the day-ahead price (a case with case.price)")
        self._t0 = t0
        prices = [self._price(t0 + 3600.0 * h + 1800.0) for h in range(self.hours)]
        self._cheap = sorted(range(self.hours), key=lambda h: prices[h])[:self.cheap_hours]

    def step(self, t: float, measurements: Mapping[str, float]) -> dict[str, float]:
        voltage = max(measurements["reactor.cell_voltage"], 3.0) * 1.02
        current = measurements["pv.power"] * self.efficiency / voltage
        if measurements["battery.soc"] > self.soc_floor:
            current = max(current, self.battery_current)
        if int((t - self._t0) // 3600.0) % self.hours in self._cheap:
            current = max(current, self.cheap_current)
        return {"current": min(current, self.max_current)}

    def get_state(self) -> dict[str, Any]:
        return {"t0": self._t0, "cheap": list(self._cheap)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._t0 = state["t0"]
        self._cheap = list(state["cheap"])
