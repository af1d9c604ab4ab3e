"""The paths a variant of a scenario may set, and one variant as a scenario of its own.

A variant is a mapping of dotted scenario paths to values (``{"inputs.current": 7.5,
"plant.reactor.area_cm2": 50.0}``). :func:`parse_path` says what a path sets, or refuses it
naming what may vary; :func:`apply_variant` writes a variant into the scenario and validates
it as a file would be: what an ensemble's variant equals when run alone
(:mod:`co2twin.ensemble`), and what :mod:`co2twin.variant_runs` runs for a scenario an ensemble
cannot take. The paths (:data:`PATHS`) are listed in :mod:`co2twin.ensemble`'s docstring;
``supply.<section>.<parameter>`` (:data:`SUPPLY_SECTIONS`), ``supply.converter_efficiency``
and ``supply.<profile>`` (a constant profile, e.g. ``supply.clearness``) size the solar
supply, whose scenarios run one variant at a time.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.plant import INPUTS, resolve_input
from cosim.errors import ScenarioError
from cosim.simulation import Simulation

from .controllers import SPEC_PARAMETERS
from .scenario import _close, build, parse_scenario
from .scenario_schema import ModelsSpec, Scenario
from .supply import driven_input
from .supply_schema import PROFILE_PORTS

__all__ = ["PATHS", "SUPPLY_SECTIONS", "VariantPath", "apply_variant", "parse_path", "probe"]

#: the paths a variant may set (see the module's docstring)
PATHS = ("seed", "plant.<component>.<parameter>", "parameters.<component>.<parameter>",
         "inputs.<name>", "inputs.<name>.constant", "inputs.<name>.steps", "inputs.<name>.scale",
         "events[<i>].<field>", "controllers.<name>.<field>",
         # the solar supply's, in scenarios with one (run one variant at a time)
         "supply.<section>.<parameter>", "supply.converter_efficiency", "supply.<profile>")
#: the solar supply's sections a variant may set a number of (``supply.<section>.<parameter>``,
#: and ``supply.converter_efficiency`` or a profile's constant, ``supply.clearness``): only
#: where each variant runs on its own
#: (:mod:`co2twin.variant_runs`), as the supply's components step one run at a time
SUPPLY_SECTIONS = ("pv", "battery", "ems", "bus")
_EVENT_FIELDS = ("at", "value", "to", "duration", "fraction", "rate", "offset", "std", "steps")
_INPUT_FIELDS = ("constant", "steps", "scale")
_EVENT_PATH = re.compile(r"^events(?:\[(\d+)\]|\.(\d+))\.([a-z_]+)$")


@dataclass(frozen=True)
class VariantPath:
    """One parsed variant path: what it sets."""

    kind: str  # seed | parameter | input | event | controller | supply
    # (component, parameter) | (target, field or "") | (index, field) | (name, field) |
    # (section, parameter), or ("converter_efficiency",)
    key: tuple[Any, ...]


def _refuse(path: str, why: str, where: str) -> ScenarioError:
    allowed = ", ".join(PATHS)
    return ScenarioError(f"{where}: {path!r} {why}; a variant may set: {allowed}. Variants that "
                         "differ in structure belong in different ensembles (or sweeps)")


def parse_path(path: Any, scenario: Scenario, sim: Simulation, where: str) -> VariantPath:
    """What ``path`` sets, or a :class:`ScenarioError` naming it and what may vary."""
    if not isinstance(path, str):
        raise _refuse(repr(path), "is not a dotted path", where)
    if path == "seed":
        return VariantPath("seed", ())
    head, _, rest = path.partition(".")
    if head in ("plant", "parameters"):
        return _plant_path(path, rest, scenario, sim, where)
    if head == "controllers":
        return _controller_path(path, rest, scenario, sim, where)
    if head == "supply":
        return _supply_path(path, rest, scenario, where)
    if head == "inputs" and rest:
        name, field = rest, ""
        for suffix in _INPUT_FIELDS:
            if rest.endswith("." + suffix) and _is_input(rest[: -len(suffix) - 1], sim):
                name, field = rest[: -len(suffix) - 1], suffix
        if not _is_input(name, sim):
            raise _refuse(path, f"names no input (plant inputs: {', '.join(INPUTS)}, or "
                          f"component.port of: {', '.join(sim.external_inputs)})", where)
        return VariantPath("input", (resolve_input(name), field))
    match = _EVENT_PATH.match(path)
    if match:
        index = int(match.group(1) or match.group(2))
        field = match.group(3)
        if index >= len(scenario.events):
            raise _refuse(path, f"names no event (the scenario has {len(scenario.events)})", where)
        spec = scenario.events[index]
        if field not in _EVENT_FIELDS or field not in type(spec).model_fields:
            fields = [f for f in _EVENT_FIELDS if f in type(spec).model_fields]
            raise _refuse(path, f"is no field a variant may set on a {spec.type} event "
                          f"(those: {', '.join(fields)})", where)
        return VariantPath("event", (index, field))
    raise _refuse(path, "cannot vary within an ensemble", where)


def _plant_path(path: str, rest: str, scenario: Scenario, sim: Simulation, where: str) -> VariantPath:
    """``plant.<component>.<parameter>``: a parameter of one of the plant's components."""
    component, _, parameter = rest.partition(".")
    if not component or not parameter or "." in parameter:
        raise _refuse(path, "expected plant.<component>.<parameter>", where)
    if scenario.plant is False:
        raise _refuse(path, "sets a plant parameter, but the scenario has no plant", where)
    comp = sim.components.get(component)
    if comp is None or component not in ("power", "feed", "reactor", "separation"):
        raise _refuse(path, "names no plant component (power, feed, reactor, separation)", where)
    if parameter not in {p.name for p in comp.parameters}:
        known = ", ".join(p.name for p in comp.parameters)
        raise _refuse(path, f"names no parameter of {component} (known: {known})", where)
    return VariantPath("parameter", (component, parameter))


def _controller_path(path: str, rest: str, scenario: Scenario, sim: Simulation,
                     where: str) -> VariantPath:
    """``controllers.<name>.<field>``: a number of the spec that sets a class parameter."""
    name, _, field = rest.partition(".")
    if name not in scenario.controllers:
        known = ", ".join(scenario.controllers) or "none"
        raise _refuse(path, f"names no controller of the scenario (its controllers: {known})", where)
    comp = sim.components[name]
    if not getattr(comp, "supports_arrays", False):
        raise _refuse(path, "varies a Python controller, which steps one run at a time", where)
    declared = {p.name for p in comp.parameters}
    fields = [f for f, parameter in SPEC_PARAMETERS.items() if parameter in declared]
    if field not in fields:
        raise _refuse(path, f"is no number a variant may set on controller {name} (type "
                      f"{scenario.controllers[name].type}; those: {', '.join(fields)})", where)
    return VariantPath("controller", (name, field))


def _supply_path(path: str, rest: str, scenario: Scenario, where: str) -> VariantPath:
    """``supply.<section>.<parameter>``, ``supply.converter_efficiency`` or ``supply.<profile>``
    (a constant profile: ``supply.clearness: 0.6``): a number of the scenario's solar supply
    (its value is checked when the variant's scenario is parsed)."""
    if scenario.supply is None:
        raise _refuse(path, "sets the solar supply, but the scenario has none", where)
    if rest == "converter_efficiency" or rest in PROFILE_PORTS:  # a profile: its constant
        return VariantPath("supply", (rest,))
    section, _, parameter = rest.partition(".")
    if section not in SUPPLY_SECTIONS or not parameter or "." in parameter:
        raise _refuse(path, "expected supply.<section>.<parameter> (sections: "
                      f"{', '.join(SUPPLY_SECTIONS)}), supply.converter_efficiency or a profile's "
                      f"constant: supply.<{'|'.join(PROFILE_PORTS)}>", where)
    fields = type(getattr(scenario.supply, section)).model_fields
    if parameter not in fields:
        raise _refuse(path, f"names no parameter of supply.{section} (known: {', '.join(fields)})",
                      where)
    return VariantPath("supply", (section, parameter))


def _is_input(name: str, sim: Simulation) -> bool:
    """Whether ``name`` is an input of the scenario: with a solar supply, the ``current`` input
    is the current asked of its energy manager (:func:`co2twin.supply.attach_supply`)."""
    return driven_input(resolve_input(name), sim.external_inputs) in sim.external_inputs


def apply_variant(scenario: Scenario, variant: Mapping[str, Any], *,
                  record: Mapping[str, Any] | None = None) -> Scenario:
    """The scenario with ``variant``'s overrides applied, validated as a file would be: what
    the variant of an ensemble equals when run alone (``co2twin.run(apply_variant(s, v))``).
    ``record``: a ``record:`` section to run it with instead of the scenario's."""
    built = probe(scenario)  # the paths are checked against its components and inputs
    parsed = {path: parse_path(path, scenario, built, "variant") for path in variant}
    data = scenario.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if record is not None:
        data["record"] = dict(record)
    for path, value in variant.items():
        p = parsed[path]
        if p.kind == "seed":
            data["seed"] = value
        elif p.kind == "parameter":
            component, parameter = p.key
            data.setdefault("plant", {}).setdefault(component, {})[parameter] = value
        elif p.kind == "input":
            target, field = p.key
            inputs = data.setdefault("inputs", {})
            key = next((k for k in inputs if resolve_input(k) == target), target)
            if field == "scale":
                inputs[key] = _scaled_spec(inputs.get(key), value, built.port(target).start, path)
            elif field:
                inputs[key] = {field: value}
            else:
                inputs[key] = value
        elif p.kind == "controller":
            name, field = p.key
            spec = data["controllers"][name]
            *parents, leaf = field.split(".")
            for parent in parents:
                spec = spec.setdefault(parent, {})
            spec[leaf] = value
        elif p.kind == "supply":
            *section, parameter = p.key
            node = data["supply"]
            for name in section:
                node = node.setdefault(name, {})
            node[parameter] = value
        else:
            index, field = p.key
            data["events"][index][field] = value
    return parse_scenario(data, source=f"{scenario.source} (variant)", base_dir=scenario.base_dir)


def _scaled_spec(spec: Any, factor: float, start: float, path: str) -> Any:
    """An input's spec (as dumped) with its values times ``factor``."""
    if spec is None:
        return start * factor
    if isinstance(spec, (int, float)):
        return spec * factor
    spec = dict(spec)
    if spec.get("constant") is not None:
        spec["constant"] = spec["constant"] * factor
    elif spec.get("steps") is not None:
        spec["steps"] = [[t, v * factor] for t, v in spec["steps"]]
    elif spec.get("ramp") is not None:
        ramp = dict(spec["ramp"])
        ramp["from"], ramp["to"] = ramp["from"] * factor, ramp["to"] * factor
        spec["ramp"] = ramp
    else:
        raise ScenarioError(f"{path}: a CSV profile cannot be scaled by a variant; scale the "
                            "file's values, or give the variant's profile as steps")
    return spec



def probe(scenario: Scenario) -> Simulation:
    """The scenario built without its events on the physics models, closed: the components,
    parameters and inputs the variants' paths are checked against. None of those depends on
    the models, and loading the networks would cost more than the rest of the probe (those
    the scenario's validation loaded stay for the run's own build)."""
    spec = scenario.model_copy(update={"events": [], "models": ModelsSpec(default="physics")})
    spec._loaded_models = []  # a list of its own: model_copy shares the scenario's
    probe = build(spec)
    _close(probe.components.values())
    return probe
