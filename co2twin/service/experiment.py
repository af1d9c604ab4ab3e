"""What an experiment asks for, and the scenario it becomes.

An experiment is either a base experiment (an operating point in ``base_experiments``) plus
overrides — what the VALCO2T operator's form set: current, CO2 flow and concentration,
humidity — or a full scenario (YAML or a JSON mapping) validated by co2twin's schema. Both
become a scenario mapping that :func:`co2twin.service.untrusted.load_untrusted` checks: the
queue is untrusted whatever wrote to it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sqlalchemy.engine import Engine

from co2twin.scenario import Scenario
from co2twin.scenario_schema import keys_at, unknown_key

from .config import Pace, ServiceConfig, parse_pace
from .db import base_experiments, electrodes, transaction
from .errors import Invalid
from .untrusted import load_untrusted, sanitise

__all__ = ["Overrides", "ExperimentRequest", "Prepared", "scenario_mapping", "prepare",
           "request_problems", "error_lines", "parse_request", "resolve", "OVERRIDE_INPUTS",
           "VALCO2T_DEFAULTS"]


def _finite(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a finite number")
    return value


Number = Annotated[float, BeforeValidator(_finite)]

#: override -> (scenario input, unit, base_experiments column it replaces)
OVERRIDE_INPUTS: dict[str, tuple[str, str, str | None]] = {
    "current": ("current", "A", "current_a"),
    "gas_flow": ("gas_flow", "mL/min", "co2_flow"),
    "co2_fraction": ("co2_fraction", "%", "co2_concentration"),
    "humidity": ("humidity", "%", None),
    "anolyte_flow": ("anolyte_flow", "mL/min", "anolyte_flow"),
    "catholyte_flow": ("catholyte_flow", "mL/min", "catholyte_flow"),
    "anolyte_conc": ("anolyte_conc", "mol/L", "anolyte_conc"),
    "catholyte_conc": ("catholyte_conc", "mol/L", "catholyte_conc"),
    "ambient_temperature": ("ambient_temperature", "degC", None),
    "recycle_fraction": ("recycle_fraction", "1", None),
}

#: the VALCO2T service's run: 60 iterations, one per second (config.json n_iter, t_samples_DT)
VALCO2T_DEFAULTS = {"duration": 60.0, "step": 1.0, "record_every": 1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Overrides(_Strict):
    """Values that replace the base experiment's (plant units), and the run's length."""

    current: Number | None = Field(default=None, description="cell current [A]")
    gas_flow: Number | None = Field(default=None, description="gas flow into the cell [mL/min]")
    co2_fraction: Number | None = Field(default=None, description="CO2 in the inlet gas [%]")
    humidity: Number | None = Field(default=None, description="gas relative humidity [%]")
    anolyte_flow: Number | None = Field(default=None, description="[mL/min]")
    catholyte_flow: Number | None = Field(default=None, description="[mL/min]")
    anolyte_conc: Number | None = Field(default=None, description="[mol/L]")
    catholyte_conc: Number | None = Field(default=None, description="[mol/L]")
    ambient_temperature: Number | None = Field(default=None, description="[degC]")
    recycle_fraction: Number | None = Field(default=None, description="CO2 recycled [0..1]")
    area_cm2: Number | None = Field(default=None, description="cathode area [cm2] (default: "
                                    "the base experiment's electrode)")
    duration: Number | str = Field(default=600.0, description="seconds, or '10 min', '2 h'")
    step: Number | str = Field(default=1.0, description="simulation step, s")
    record_every: int = Field(default=10, ge=1, description="write one row every N steps")
    seed: int = Field(default=0, ge=0, lt=2**63)
    models: Literal["physics", "nn", "hybrid", "valco2t"] | None = Field(
        default=None, description="model for every estimated variable (default: hybrid)")


class ExperimentRequest(_Strict):
    """An experiment to queue: a base experiment plus overrides, or a full scenario."""

    name: str = Field(default="experiment", min_length=1, max_length=200)
    base_experiment: int | None = Field(default=None, description="base_experiments.id")
    overrides: Overrides = Field(default_factory=Overrides)
    scenario: dict[str, Any] | None = Field(default=None, description="a full scenario (mapping)")
    scenario_yaml: str | None = Field(default=None, description="a full scenario (YAML text)")
    pace: str | None = Field(default=None, description="realtime, fast or Nx (default: the "
                             "worker's)")
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher runs first")

    @model_validator(mode="after")
    def _one_source(self) -> ExperimentRequest:
        full = [k for k in ("scenario", "scenario_yaml") if getattr(self, k) is not None]
        if len(full) > 1:
            raise ValueError("give scenario or scenario_yaml, not both")
        if full and (self.base_experiment is not None or self.overrides.model_fields_set):
            raise ValueError(f"{full[0]} is a full scenario: give it without base_experiment "
                             "and overrides")
        if self.pace is not None:
            parse_pace(self.pace)
        return self

    @property
    def full_scenario(self) -> str | None:
        """The full scenario as text (YAML, or JSON which is YAML), if one was given."""
        if self.scenario_yaml is not None:
            return self.scenario_yaml
        if self.scenario is not None:
            return json.dumps(self.scenario)
        return None

    def stored(self) -> dict[str, Any]:
        """What the queue row's ``request`` column keeps (the full scenario goes beside it)."""
        return self.model_dump(mode="json", exclude={"scenario", "scenario_yaml"},
                               exclude_defaults=False)


def request_problems(exc: ValidationError, prefix: str = "request") -> list[str]:
    """Pydantic's errors as one line each: ``request.overrides.current: expected ..., found ...``."""
    return error_lines(exc.errors(), ExperimentRequest, prefix=prefix)


def error_lines(errors: Iterable[Mapping[str, Any]], model: Any, *, prefix: str = "",
                outer: str | None = None) -> list[str]:
    """One line per pydantic error of validating ``model``: ``prefix.field: expected ...,
    found ...``; an unknown key's line lists the keys ``model`` takes there. ``outer``: the first
    part of a location when it is not the model's (FastAPI's ``body``)."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        loc = loc[1:] if outer is not None and loc[:1] == (outer,) else loc
        where = ".".join(str(p) for p in ((prefix, *loc) if prefix else loc)) or "request"
        found = repr(err.get("input"))
        found = found if len(found) <= 60 else found[:57] + "..."
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        message = message.removeprefix("Input should be ")
        if err.get("type") == "extra_forbidden":
            out.append(unknown_key(where, loc[-1] if loc else "", keys_at(model, loc[:-1])))
        elif err.get("type") == "missing":
            out.append(f"{where}: required key missing")
        else:
            out.append(f"{where}: expected {message[:1].lower() + message[1:]}, found {found}")
    return out


def scenario_mapping(request: ExperimentRequest, base: Mapping[str, Any] | None,
                     electrode: Mapping[str, Any] | None, *, experiment_id: int | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    """The scenario a base experiment plus overrides describes, and notes on what of the base
    experiment was not applied (and why)."""
    o = request.overrides
    notes: list[str] = []
    inputs: dict[str, Any] = {}
    area = o.area_cm2 if o.area_cm2 is not None else (electrode or {}).get("area_cm2")
    if base is not None:
        for target, unit, column in OVERRIDE_INPUTS.values():
            value = base.get(column) if column else None
            if value is not None:
                inputs[target] = {"constant": float(value), "unit": unit}
        if base.get("current_a") is None and base.get("current_density") is not None and area:
            # VALCO2T reports current density as I * 1000 / A in mA/cm2
            inputs["current"] = {"constant": float(base["current_density"]) * float(area) / 1000.0,
                                 "unit": "A"}
        for column, why in (("co2_humidity", "its unit (gH2O/h) has no counterpart in the feed's "
                             "relative humidity; give overrides.humidity in %"),
                            ("central_flow", "the twin's cell has no central compartment"),
                            ("h2_inlet", "the twin's feed carries no H2"),
                            ("catalyst_loading", "the twin's reactor has no loading parameter")):
            if base.get(column) is not None:
                notes.append(f"base experiment {base.get('id')}: {column} = {base[column]:g} not "
                             f"applied: {why}")
    for name, (target, unit, _) in OVERRIDE_INPUTS.items():
        value = getattr(o, name)
        if value is not None:
            inputs[target] = {"constant": float(value), "unit": unit}
    label = f"experiment {experiment_id}" if experiment_id is not None else "experiment"
    data: dict[str, Any] = {
        "name": request.name,
        "description": f"{label}: base experiment {request.base_experiment} with overrides"
        if request.base_experiment is not None else f"{label}: nominal plant with overrides",
        "duration": o.duration,
        "step": o.step,
        "seed": o.seed,
        "record": {"every": o.record_every},
        "inputs": inputs,
    }
    if area is not None:
        data["plant"] = {"reactor": {"area_cm2": float(area)}}
    if o.models is not None:
        data["models"] = {"default": o.models}
    return data, notes


@dataclass
class Prepared:
    """A queued experiment made ready to run."""

    scenario: Scenario
    pace: Pace | None
    notes: list[str] = field(default_factory=list)


def prepare(request: ExperimentRequest, scenario_text: str | None, base: Mapping[str, Any] | None,
            electrode: Mapping[str, Any] | None, config: ServiceConfig, *,
            experiment_id: int | None = None, default_pace: Pace | None = None) -> Prepared:
    """Validate what a queue row asks for (as untrusted) and return the scenario to run."""
    pace = parse_pace(request.pace) if request.pace is not None else default_pace
    speed = pace.speed if pace is not None else None
    source = f"experiment {experiment_id}" if experiment_id is not None else "experiment"
    if scenario_text is not None:
        checked = load_untrusted(scenario_text, config, source=source, realtime_speed=speed)
        return Prepared(checked.scenario, pace, checked.notes)
    if request.base_experiment is not None and base is None:
        raise Invalid(f"{source}: base_experiment: expected the id of a base experiment, found "
                      f"{request.base_experiment} (no such base experiment)")
    data, notes = scenario_mapping(request, base, electrode, experiment_id=experiment_id)
    checked = load_untrusted(data, config, source=source, realtime_speed=speed)
    return Prepared(checked.scenario, pace, notes + checked.notes)


def resolve(engine: Engine, request: ExperimentRequest, scenario_text: str | None,
            config: ServiceConfig, *, experiment_id: int | None = None) -> Prepared:
    """Look up the request's base experiment (and its electrode) and :func:`prepare` it."""
    def lookup(conn: sa.Connection) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        found = conn.execute(sa.select(base_experiments).where(
            base_experiments.c.id == request.base_experiment)).mappings().first()
        if found is None or found["electrode_id"] is None:
            return (dict(found) if found else None), None
        hit = conn.execute(sa.select(electrodes).where(
            electrodes.c.id == found["electrode_id"])).mappings().first()
        return dict(found), (dict(hit) if hit else None)

    base = electrode = None
    if request.base_experiment is not None:
        base, electrode = transaction(engine, lookup, write=False, give_up_s=config.db_outage_s)
    return prepare(request, scenario_text, base, electrode, config,
                   experiment_id=experiment_id, default_pace=config.pace)


def parse_request(data: Mapping[str, Any] | ExperimentRequest) -> ExperimentRequest:
    """An :class:`ExperimentRequest` from a mapping, or :class:`Invalid` listing every problem."""
    if isinstance(data, ExperimentRequest):
        return data
    try:
        return ExperimentRequest.model_validate(data)
    except ValidationError as exc:
        raise Invalid([sanitise(p) for p in request_problems(exc)]) from None
