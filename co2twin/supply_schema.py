"""The parts of a scenario's ``supply:`` section that the supply's components declare.

Each component's parameters (:class:`components.pv.PVArray`,
:class:`components.battery.Battery`, :class:`components.dc_bus.EnergyManager`,
:class:`components.dc_bus.DCBus`) become a pydantic model here, field by field with
the parameter's default, bounds and description, so the scenario file's schema,
its checks and the JSON Schema come from the one declaration. The ``supply:``
section itself (:class:`co2twin.scenario_schema.SupplySpec`) puts them together
with the profiles and the ageing model; :func:`profile_problems` checks the
profiles' values against the ports they drive.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model
from pydantic_core import InitErrorDetails, PydanticCustomError

from components.battery import Battery
from components.dc_bus import DCBus, EnergyManager
from components.pv import PVArray
from cosim.component import Component
from cosim.ports import Port
from cosim.units import UnitError, converter

__all__ = ["PVSpec", "BatterySpec", "ManagerSpec", "BusSpec", "CLASSES", "PROFILE_PORTS", "SHARED",
           "profile_problems", "check_profile"]

#: parameters the ``supply:`` section sets once for several components, or derives
SHARED = {"converter_efficiency": ("ems", "bus")}
#: profile key of the ``supply:`` section -> (component, input port) it drives
PROFILE_PORTS: dict[str, tuple[str, str]] = {
    "irradiance": ("pv", "irradiance"),
    "clearness": ("pv", "clearness"),
    "ambient_temperature": ("pv", "ambient_temperature"),
    "battery_temperature": ("battery", "ambient_temperature"),
    "price": ("ems", "price"),
}
#: the supply's components by the name their signals carry
CLASSES: dict[str, type[Component]] = {"pv": PVArray, "battery": Battery, "ems": EnergyManager,
                                       "bus": DCBus}


def _number(value: Any) -> Any:
    """Refuse booleans (YAML ``yes``) where a number is expected."""
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    return value


def _parameters_model(name: str, component: type[Component], exclude: tuple[str, ...] = ()
                      ) -> type[BaseModel]:
    """A pydantic model with one optional field per parameter of ``component``."""
    fields: dict[str, Any] = {}
    for p in component.parameters:
        if p.name in exclude:
            continue
        bounds: dict[str, Any] = {k: v for k, v in (("ge", p.lower), ("le", p.upper)) if math.isfinite(v)}
        tunable = " (may change in a run)" if p.tunable else ""
        fields[p.name] = (Annotated[float, BeforeValidator(_number)],
                          Field(default=p.default, description=f"{p.description} [{p.unit}]{tunable}",
                                allow_inf_nan=False, **bounds))
    doc = f"Parameters of {component.__name__} (defaults as shown)."
    return create_model(name, __config__=ConfigDict(extra="forbid", frozen=True), __doc__=doc, **fields)


if TYPE_CHECKING:  # the models are made from the components' declarations at import
    class PVSpec(BaseModel): ...
    class BatterySpec(BaseModel): ...
    class ManagerSpec(BaseModel): ...
    class BusSpec(BaseModel): ...
else:
    # clear_sky follows from whether the section gives an irradiance profile
    PVSpec = _parameters_model("PVSpec", PVArray, exclude=("clear_sky",))
    BatterySpec = _parameters_model("BatterySpec", Battery)
    ManagerSpec = _parameters_model("ManagerSpec", EnergyManager, exclude=tuple(SHARED))
    BusSpec = _parameters_model("BusSpec", DCBus, exclude=tuple(SHARED))


def _port(key: str) -> Port:
    component, port = PROFILE_PORTS[key]
    return CLASSES[component].input_port(port)


def profile_problems(key: str, spec: Any) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """(location in the profile, problem, value) for each value of the profile ``key`` outside the
    port it drives, or a unit that does not convert to the port's. ``spec``: an input spec
    (constant, steps or ramp are checked here; a CSV profile's values when the run is built)."""
    if spec is None:
        return []
    port = _port(key)
    convert = None
    if spec.unit is not None:
        try:
            convert = converter(spec.unit, port.unit)
        except UnitError as exc:
            return [(("unit",), f"expected a unit convertible to {port.unit!r}: {exc}", spec.unit)]
    values: list[tuple[tuple[str | int, ...], float]] = []
    if spec.constant is not None:
        values.append((("constant",), spec.constant))
    if spec.steps is not None:
        values += [(("steps", i, 1), v) for i, (_, v) in enumerate(spec.steps)]
    if spec.ramp is not None:
        values += [(("ramp", "from"), spec.ramp.initial), (("ramp", "to"), spec.ramp.to)]
    found: list[tuple[tuple[str | int, ...], str, Any]] = []
    for loc, value in values:
        inside = convert(value) if convert is not None else value
        if not port.contains(inside):
            found.append((loc, f"expected a value in {port.bounds_text()}", value))
    return found


def check_profile(key: str, spec: Any) -> None:
    """Raise one pydantic ``ValidationError`` listing every :func:`profile_problems` finding of
    the profile ``key``, each at its place in the profile (pydantic prefixes ``supply.<key>``)."""
    found = profile_problems(key, spec)
    if found:
        raise ValidationError.from_exception_data("supply", [
            InitErrorDetails(type=PydanticCustomError("supply", "{problem}", {"problem": text}),
                             loc=loc, input=value) for loc, text, value in found])
