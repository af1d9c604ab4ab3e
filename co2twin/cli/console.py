"""What every ``co2twin`` command shares: consoles, failing with a message, strict JSON."""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from co2twin.strict_json import json_safe

__all__ = ["out", "err", "fail", "os_error", "json_safe", "SOURCE_ROOT", "in_source_checkout",
           "default_write_folder", "import_trainer"]

# no emoji codes: a scenario named ":x:" is shown as written (user text is also escaped)
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


def fail(exc: BaseException | str, code: int = 1) -> NoReturn:
    # the message quotes the user's file (names, values): never read it as markup
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True,
               soft_wrap=True)
    raise typer.Exit(code)


def os_error(exc: OSError) -> str:
    """``path: reason`` for a failed read or write."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


#: the folder holding co2twin's packages: a source checkout's root (with pyproject.toml), or,
#: once installed with ``pip install .``, the environment's site-packages
SOURCE_ROOT = Path(__file__).resolve().parents[2]

#: the packages of the ``train`` extra (pyproject.toml ``[project.optional-dependencies]``)
TRAIN_EXTRA = ("keras", "tensorflow")


def in_source_checkout(folder: Path) -> bool:
    """Whether ``folder`` lies inside co2twin's source checkout (the project folder with its
    pyproject.toml), not inside an installed copy of the packages (site-packages)."""
    if SOURCE_ROOT.name in ("site-packages", "dist-packages"):
        return False
    return (SOURCE_ROOT / "pyproject.toml").is_file() and folder.resolve().is_relative_to(SOURCE_ROOT)


def default_write_folder(folder: Path, option: str) -> Path:
    """``folder``, a command's default output inside the package, when co2twin runs from its
    source checkout; else fail: after ``pip install .`` it is inside the environment's
    site-packages, and writing there would change the installed package."""
    if not in_source_checkout(folder):
        fail(f"{option}: expected a folder to write into; the default, {folder}, is inside the "
             f"installed package, not a source checkout of co2twin. Give one with {option} DIR "
             "(nothing was written)")
    return folder


def import_trainer(module: str, command: str) -> ModuleType:
    """Import a training module (it imports Keras and TensorFlow); without the ``train`` extra,
    fail saying how to install it rather than with a traceback."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        fail(f'{command} needs the train extra: pip install ".[train]" in the co2twin source '
             f"folder (Keras on TensorFlow; {exc})")
