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
Works for floats and NumPy arrays (inputs per variant). On floats a step is
:meth:`PVArray._step_floats` (the engine's positional ``step_values`` and ``step`` both take
it), with the sun's geometry that holds for a day (:func:`_geometry`) computed once per day.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, ClassVar
from collections.abc import Mapping, Sequence

from cosim import Component, Parameter, Port
from models.electrochemistry import SCALAR, namespace

__all__ = ["PVArray", "clear_sky"]

_RAD = math.pi / 180.0
_HOUR_ANGLE = 15.0 * _RAD  # rad per hour from noon


def clear_sky(t: float, latitude: float, day_of_year: float, tilt: float, azimuth: float,
              albedo: float = 0.2) -> tuple[float, float]:
    """Plane-of-array irradiance (W/m2) of a clear sky and the sun's elevation (deg) at ``t`` s.

    ``azimuth``: compass bearing the plane faces (180 = south); ``t`` local solar time
    from midnight of ``day_of_year``.
    """
    day = day_of_year + math.floor(t / 86400.0)
    return _sky(t, _geometry(day, latitude, tilt, azimuth), albedo)


@lru_cache(maxsize=16)
def _geometry(day: float, latitude: float, tilt: float, azimuth: float) -> tuple[float, ...]:
    """What :func:`_sky` needs that holds over a day: the terms of the sun's position that do
    not depend on the hour (declination ``decl``, latitude ``phi``) and the plane's sines and
    cosines (tilt ``beta``, azimuth ``gamma``), each the product :func:`_sky`'s formulas form
    first, so the results are those of the formulas written out."""
    decl = 23.45 * _RAD * math.sin(2.0 * math.pi * (284.0 + day) / 365.0)
    phi = latitude * _RAD
    beta, gamma = tilt * _RAD, azimuth * _RAD
    return (math.sin(phi) * math.sin(decl), math.cos(phi) * math.cos(decl), -math.cos(decl),
            math.cos(phi) * math.sin(decl), math.sin(phi) * math.cos(decl),
            math.sin(beta), math.sin(gamma), math.cos(gamma), math.cos(beta),
            1.0 + math.cos(beta), 1.0 - math.cos(beta))


def _sky(t: float, geometry: tuple[float, ...], albedo: float) -> tuple[float, float]:
    """:func:`clear_sky` at ``t`` with the day's :func:`_geometry` (``min``/``max`` written as the
    comparisons they make)."""
    (sin_phi_sin_decl, cos_phi_cos_decl, minus_cos_decl, cos_phi_sin_decl, sin_phi_cos_decl,
     sin_beta, sin_gamma, cos_gamma, cos_beta, one_plus_cos_beta, one_minus_cos_beta) = geometry
    hour = (t % 86400.0) / 3600.0
    omega = _HOUR_ANGLE * (hour - 12.0)
    cos_omega = math.cos(omega)
    up = sin_phi_sin_decl + cos_phi_cos_decl * cos_omega
    east = minus_cos_decl * math.sin(omega)
    north = cos_phi_sin_decl - sin_phi_cos_decl * cos_omega
    clipped = up if up < 1.0 else 1.0  # max(-1.0, min(1.0, up))
    elevation = math.asin(clipped if clipped > -1.0 else -1.0) / _RAD
    if up <= 0.0:
        return 0.0, elevation
    zenith = 90.0 - elevation
    air_mass = 1.0 / (up + 0.50572 * (96.07995 - zenith) ** -1.6364)
    dni = 1353.0 * 0.7 ** (air_mass**0.678)
    dhi = 0.1 * dni
    ghi = dni * up + dhi
    incidence = east * sin_beta * sin_gamma + north * sin_beta * cos_gamma + up * cos_beta
    poa = (dni * (0.0 if incidence < 0.0 else incidence) + dhi * one_plus_cos_beta / 2.0
           + ghi * albedo * one_minus_cos_beta / 2.0)
    return poa, elevation


class PVArray(Component):
    """A PV array of ``peak_power`` W at standard test conditions, with MPPT to the DC bus."""

    #: arrays of variants (an ensemble) take the general step; its parameters stay floats
    #: (an ensemble refuses ``supply.*`` paths: the float step checks inputs and state only)
    supports_arrays: ClassVar[bool] = True

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
        # (day, latitude, tilt, azimuth) and its _geometry, for the float step
        self._day: tuple[Any, ...] = ((), ())

    def step(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        values = _INPUTS_OF(inputs)
        if namespace(*values, self._energy) is SCALAR:
            return dict(zip(_OUTPUT_NAMES, self._step_floats(t, dt, values), strict=True))
        return self._step_general(t, dt, inputs)

    def step_values(self, t: float, dt: float, values: tuple[Any, ...]) -> Sequence[Any]:
        """:meth:`step` with positional inputs and outputs, the engine's path: on floats the
        float step's tuple itself (what :meth:`step` puts in its dict), else :meth:`step`."""
        if namespace(*values, self._energy) is SCALAR:
            return self._step_floats(t, dt, values)
        return super().step_values(t, dt, values)

    def _step_floats(self, t: float, dt: float, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """:meth:`_step_general` on floats: the same operations in the same order (``max(x, 0.0)``
        written ``0.0 if x < 0.0 else x``, what it returns), the day's geometry kept while the
        day and the plane stay. Inputs and outputs in the order of the ports."""
        irradiance, clearness, ambient = values
        p = self.p
        mid = t + 0.5 * dt
        key = (p.day_of_year + math.floor(mid / 86400.0), p.latitude, p.tilt, p.azimuth)
        day = self._day
        if day[0] != key:
            self._day = day = (key, _geometry(*key))
        poa, elevation = _sky(mid, day[1], p.albedo)
        poa = poa * clearness if p.clear_sky >= 0.5 else irradiance
        poa = 0.0 if poa < 0.0 else poa
        cell = ambient + (p.noct - 20.0) / 800.0 * poa
        power = p.peak_power * poa / 1000.0 * (1.0 + p.temperature_coefficient * (cell - 25.0)) \
            * p.system_efficiency
        power = 0.0 if power < 0.0 else power
        self._energy = energy = self._energy + power * dt / 3.6e6
        return (poa, elevation, cell, power, energy)

    def _step_general(self, t: float, dt: float, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The step in the namespace of its inputs: arrays of variants, the reference of floats."""
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


#: the inputs and outputs in the order of the ports, as :meth:`PVArray._step_floats` takes and
#: returns them (its tuple is written in this order: a change of the ports must change it)
_INPUT_NAMES = ("irradiance", "clearness", "ambient_temperature")
_OUTPUT_NAMES = ("poa_irradiance", "sun_elevation", "cell_temperature", "power", "energy")
_INPUTS_OF = PVArray.positional(_INPUT_NAMES, _OUTPUT_NAMES)
