"""The ``co2twin`` command line (typer): the top layer, above the application and FMU export.

``app`` holds run, validate, schema, signals and bench; ``models`` the data, train and
models commands; ``fmu`` the FMU build and OpenModelica commands.
"""
from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
