"""From a scenario's ``models:`` choices to the :class:`ModelSet` a reactor uses.

A choice per variable is a kind (``physics``, ``nn``, ``hybrid``, ``valco2t``)
or a ``.keras`` file with an optional input mapping. ``nn`` and ``hybrid`` come
from the trained-models folder (the committed ``models/trained`` unless the
scenario names another), ``valco2t`` from the VALCO2T models folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any
from collections.abc import Mapping

from cosim.errors import ModelError

from .cards import model_path
from .model_set import ModelSet
from .surrogate import DEFAULT_KIND, TRAINED_DIR, Surrogate, load_network_surrogate
from .variables import FILE_KINDS, KINDS, VARIABLES

__all__ = ["select", "model_set"]


def _resolve(path: str | Path, base_dir: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else base_dir / path


def select(
    variable: str,
    choice: str | Mapping[str, Any],
    *,
    directory: str | Path | None = None,
    valco2t_dir: str | Path | None = None,
    base_dir: str | Path = ".",
) -> Surrogate | None:
    """The surrogate for one variable (``None`` for physics); raise :class:`ModelError`."""
    base = Path(base_dir)
    if isinstance(choice, Mapping):
        path = _resolve(choice["path"], base)
        return load_network_surrogate(
            variable, path, kind=choice.get("kind"), inputs=choice.get("inputs"),
            constants=choice.get("constants"), absolute=bool(choice.get("absolute", False)),
        )
    if choice == "physics":
        return None
    if choice == "valco2t":
        from . import valco2t

        folder = _resolve(valco2t_dir, base) if valco2t_dir is not None else None
        return valco2t.load(variable, folder)
    if choice in FILE_KINDS:
        folder = _resolve(directory, base) if directory is not None else None
        path = model_path(folder or TRAINED_DIR, variable, choice)
        if not path.is_file():
            raise ModelError(f"{path}: no trained {choice} model of {variable} (run "
                             f"`co2twin train` to make it, or choose physics)")
        return load_network_surrogate(variable, path, kind=choice)
    raise ModelError(f"unknown model kind {choice!r}; expected one of {', '.join(KINDS)} "
                     "or a .keras file")


def model_set(
    choices: Mapping[str, str | Mapping[str, Any]] | None = None,
    *,
    default: str = DEFAULT_KIND,
    envelope: str = "warn",
    directory: str | Path | None = None,
    valco2t_dir: str | Path | None = None,
    base_dir: str | Path = ".",
) -> ModelSet:
    """Every variable's surrogate; all problems are raised together, one line per variable."""
    choices = dict(choices or {})
    problems = [f"{name}: unknown variable; expected one of {', '.join(VARIABLES)}"
                for name in choices if name not in VARIABLES]
    surrogates: dict[str, Surrogate] = {}
    for variable in VARIABLES:
        try:
            s = select(variable, choices.get(variable, default), directory=directory,
                       valco2t_dir=valco2t_dir, base_dir=base_dir)
        except ModelError as exc:
            problems.append(f"{variable}: {exc}")
            continue
        if s is not None:
            surrogates[variable] = s
    if problems:
        raise ModelError("\n".join(problems))
    return ModelSet(surrogates, envelope=envelope)
