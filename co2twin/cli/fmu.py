"""``co2twin fmu build|modelica``: the twin as an FMI 2.0 co-simulation FMU (PythonFMU),
and the files to use it from OpenModelica / OMSimulator.

Register with ``app.add_typer(fmu_app, name="fmu")`` in :mod:`co2twin.cli`.
"""
from __future__ import annotations

from pathlib import Path

import typer

from .console import fail, os_error, out
from cosim.errors import CosimError

fmu_app = typer.Typer(no_args_is_help=True, help="FMI 2.0 co-simulation FMU of the twin.")


@fmu_app.command("build")
def build_command(
    scenario: Path | None = typer.Option(
        None, "--scenario", "-s",
        help="scenario packed in the FMU (default: the nominal point, fmu/default_scenario.yaml)"),
    output: Path = typer.Option(Path("co2twin.fmu"), "-o", "--output", help="FMU file to write"),
    loader: bool = typer.Option(True, "--loader/--no-loader",
                                help="wrap PythonFMU's binary in the C loader so C hosts can load it"),
    supply: bool = typer.Option(
        False, "--supply", help="export the solar and battery supply too: inputs irradiance and price, "
        "outputs battery.soc, battery.capacity, bus.grid_import, ... (default scenario: "
        "fmu/default_supply_scenario.yaml; a --scenario must have a supply: section)"),
) -> None:
    """Package the whole twin as an FMI 2.0 co-simulation FMU."""
    try:
        from fmu.build import build_fmu
    except ImportError as exc:  # pythonfmu missing
        fail(f"co2twin fmu build needs PythonFMU (pip install pythonfmu): {exc}")
    try:
        path = build_fmu(scenario, output, loader=loader, supply=supply)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    out.print(f"FMU: {path} ({path.stat().st_size / 1e6:.1f} MB)", markup=False, soft_wrap=True)


@fmu_app.command("modelica")
def modelica_command(
    fmu: Path = typer.Argument(..., help="the FMU (co2twin fmu build)"),
    output: Path = typer.Option(Path("openmodelica"), "-o", "--output",
                                help="directory for the .mos script, the example model and the "
                                "OMSimulator script"),
) -> None:
    """Write an OpenModelica script, an example model and an OMSimulator script for an FMU."""
    from fmu.openmodelica import write_openmodelica_files

    try:
        paths = write_openmodelica_files(fmu, output)
    except CosimError as exc:
        fail(exc)
    except OSError as exc:
        fail(os_error(exc))
    for path in paths:
        out.print(f"wrote {path}", markup=False, soft_wrap=True)
