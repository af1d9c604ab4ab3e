"""Photovoltaic array: DC power at the bus from plane-of-array irradiance, derated with cell temperature.

Irradiance comes either from the ``irradiance`` input (measured plane-of-array
irradiance, ``clear_sky = 0``) or from a clear-sky day (``clear_sky = 1``, the default)
at ``latitude`` on day ``day_of_year``, for a plane tilted by ``tilt`` facing
``azimuth``, times the ``clearness`` input (a cloud's transmittance, 1 = clear). Time
is local solar time: ``t = 0`` is midnight of ``day_of_year``, and the day advances
every 86,400 s.

The clear sky: solar declination ``23.45 sin(2 pi (284 + n) / 365)`` degrees, hour
angle 15 degrees per hour from noon, Kasten and Young's air mass, Meinel's direct
normal irradiance ``1353 * 0.7 ** (AM ** 0.678)`` W/m2, diffuse 10 % of it on the
horizontal, and the isotropic-sky transposition onto the plane with ground reflection
(``albedo``). Over a step the sun is taken at the step's midpoint, so the power is the
step's mean to second order even on coarse steps.

The array: cell temperature ``T_ambient + (noct - 20) / 800 * G`` (the NOCT model),
``P = peak_power * G / 1000 * (1 + temperature_coefficient * (T_cell - 25)) * system_efficiency``
(MPPT converter, wiring and soiling in ``system_efficiency``), never below zero.
Works for floats and NumPy arrays (inputs per variant).
"""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Mapping

from cosim import Component, Parameter, Port
from models.electrochemistry import namespace

__all__ = ["PVArray", "clear_sky"]

_RAD = math.pi / 180.0


def clear_sky(t: float, latitude: float, day_of_year: float, tilt: float, azimuth: float,
              albedo: float = 0.2) -> tuple[float, float]:
    """Plane-of-array irradiance (W/m2) of a clear sky and the sun's elevation (deg) at ``t`` s.

    ``azimuth``: compass bearing the plane faces (180 = south); ``t`` local solar time
    from midnight of ``day_of_year``.
    """
    day = day_of_year + math.floor(t / 86400.0)
    hour = (t % 86400.0) / 3600.0
    decl = 23.45 * _RAD * math.sin(2.0 * math.pi * (284.0 + day) / 365.0)
    omega = 15.0 * _RAD * (hour - 12.0)
    phi = latitude * _RAD
    up = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(omega)
    east = -math.cos(decl) * math.sin(omega)
    north = math.cos(phi) * math.sin(decl) - math.sin(phi) * math.cos(decl) * math.cos(omega)
    elevation = math.asin(max(-1.0, min(1.0, up))) / _RAD
    if up <= 0.0:
        return 0.0, elevation
    zenith = 90.0 - elevation
    air_mass = 1.0 / (up + 0.50572 * (96.07995 - zenith) ** -1.6364)
    dni = 1353.0 * 0.7 ** (air_mass**0.678)
    dhi = 0.1 * dni
    ghi = dni * up + dhi
    beta, gamma = tilt * _RAD, azimuth * _RAD
    incidence = (east * math.sin(beta) * math.sin(gamma) + north * math.sin(beta) * math.cos(gamma)
                 + up * math.cos(beta))
    poa = (dni * max(incidence, 0.0) + dhi * (1.0 + math.cos(beta)) / 2.0
           + ghi * albedo * (1.0 - math.cos(beta)) / 2.0)
    return poa, elevation


class PVArray(Component):
    """A PV array of ``peak_power`` W at standard test conditions, with MPPT to the DC bus."""

    inputs = (
        Port("irradiance", "W/m2", 0.0, 2000.0, "measured plane-of-array irradiance (clear_sky = 0)"),
        Port("clearness", "1", 0.0, 1.5, "transmittance of clouds on the clear sky (clear_sky = 1)",
             start=1.0),
        Port("ambient_temperature", "degC", -40.0, 80.0, "outdoor air temperature", start=25.0),
    )
    outputs = (
        Port("poa_irradiance", "W/m2", 0.0, 2000.0, "plane-of-array irradiance over the step",
             measured=True),
        Port("sun_elevation", "deg", -90.0, 90.0, "sun elevation at the step's midpoint (clear sky)"),
        Port("cell_temperature", "degC", -40.0, 200.0, "PV cell temperature", start=25.0),
        Port("power", "W", 0.0, 1e9, "DC power delivered to the bus over the step", measured=True),
        Port("energy", "kWh", 0.0, math.inf, "DC energy delivered since the start"),
    )
    parameters = (
        Parameter("peak_power", 100.0, "W", "rated power at 1000 W/m2 and 25 degC", 0.0, 1e9),
        Parameter("clear_sky", 1.0, "1", "1: clear-sky day times clearness; 0: the irradiance input",
                  0.0, 1.0),
        Parameter("latitude", 40.0, "deg", "site latitude (north positive)", -90.0, 90.0),
        Parameter("day_of_year", 172.0, "1", "day of the year at t = 0 (1 = 1 January)", 1.0, 366.0),
        Parameter("tilt", 30.0, "deg", "tilt of the array from horizontal", 0.0, 90.0),
        Parameter("azimuth", 180.0, "deg", "compass bearing the array faces (180 = south)", 0.0, 360.0),
        Parameter("albedo", 0.2, "1", "ground reflectance", 0.0, 1.0),
        Parameter("temperature_coefficient", -0.004, "1/K", "power change per kelvin of cell temperature",
                  -0.02, 0.0),
        Parameter("noct", 45.0, "degC", "nominal operating cell temperature (800 W/m2, 20 degC air)",
                  20.0, 80.0),
        Parameter("system_efficiency", 0.9, "1", "MPPT converter, wiring and soiling", 0.0, 1.0),
    )
    state_names = ("_energy",)

    def initialize(self, t0: float) -> None:
        self._energy = 0.0

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        p = self.p
        poa_cs, elevation = clear_sky(t + 0.5 * dt, p.latitude, p.day_of_year, p.tilt, p.azimuth, p.albedo)
        poa = poa_cs * inputs["clearness"] if p.clear_sky >= 0.5 else inputs["irradiance"]
        xp = namespace(poa, inputs["ambient_temperature"])
        poa = xp.maximum(poa, 0.0)
        cell = inputs["ambient_temperature"] + (p.noct - 20.0) / 800.0 * poa
        power = xp.maximum(p.peak_power * poa / 1000.0 * (1.0 + p.temperature_coefficient * (cell - 25.0))
                           * p.system_efficiency, 0.0)
        self._energy = self._energy + power * dt / 3.6e6
        return {"poa_irradiance": poa, "sun_elevation": elevation, "cell_temperature": cell,
                "power": power, "energy": self._energy}
