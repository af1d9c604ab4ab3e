"""The reactor's surrogates as a scenario's ``models:`` section chooses them.

Validation loads them (a model that does not load is a scenario problem) and keeps
the loaded set on the scenario; :func:`co2twin.scenario.build` takes it from there, so
a run reads each ``.keras`` file once. The set is handed out once only: a second
build of the same scenario loads its own, so two simulations never share the
surrogates' state (warnings given, checkpoints).
"""
from __future__ import annotations

from cosim.errors import ModelError, ScenarioError
from models.selection import model_set
from models.model_set import ModelSet

from .scenario_schema import Scenario

__all__ = ["load_models", "models_for_build"]


def load_models(scenario: Scenario, *, keep: bool = False) -> ModelSet:
    """Load the surrogates the scenario chooses; raise :class:`ScenarioError` naming each bad one.

    ``keep`` stores the loaded set on the scenario for the first build to take.
    """
    m = scenario.models
    try:
        models = model_set(m.choices(), default=m.default, envelope=m.envelope,
                           directory=m.directory, valco2t_dir=m.valco2t_dir,
                           base_dir=scenario.base_dir)
    except ModelError as exc:
        raise ScenarioError(_model_problems(exc), scenario.source) from None
    if keep:
        scenario._loaded_models[:] = [models]
    return models


def models_for_build(scenario: Scenario) -> ModelSet:
    """The set validation loaded (once), else a freshly loaded one."""
    if scenario._loaded_models:
        return scenario._loaded_models.pop()
    return load_models(scenario)


def _model_problems(exc: ModelError) -> list[str]:
    """One problem per variable: ``models.<variable>: ...`` with continuation lines kept."""
    problems: list[str] = []
    for line in str(exc).splitlines():
        if line.startswith("  ") and problems:
            problems[-1] += "\n" + line
        else:
            problems.append(f"models.{line}")
    return problems
