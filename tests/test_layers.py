"""The layers hold: import-linter's contracts in pyproject.toml pass, and fail when broken.

    co2twin.cli, co2twin.bench        (top: the command line)
    fmu.build, fmu.slave, ...         (FMU export packs the application)
    co2twin.*                         (the application: scenarios, KPIs, plots)
    components | fmu.importer         (plant stages; foreign FMUs as components)
    models                            (physics, surrogates, training)
    cosim                             (the engine)
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("co2twin", "cosim", "components", "models", "fmu")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the tree at ``root`` (its pyproject.toml, its packages first on the path)."""
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from importlinter.cli import lint_imports_command; lint_imports_command()")
    return subprocess.run(
        [sys.executable, "-c", code, str(root), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    """The repository's packages (Python files only) and pyproject.toml in a scratch folder."""
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=lambda d, names: [n for n in names
                                                 if not (n.endswith(".py") or (Path(d) / n).is_dir())])
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_contracts_are_kept():
    """Every import-linter contract in pyproject.toml is kept by the repository as it is."""
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("cosim/graph.py", "import components.plant", "layers"),
    ("models/electrochemistry.py", "from co2twin import scenario", "layers"),
    ("cosim/events.py", "from cosim import simulation", "no import cycles"),
    ("co2twin/orphan.py", "import cosim", "every co2twin module has a layer"),
])
def test_a_broken_layer_fails(tmp_path, module, line, contract):
    """An engine that imports the plant, a model that imports the application, a cycle, or an
    application module with no layer: each breaks a contract, named in the output."""
    root = _copy(tmp_path)
    path = root / module
    path.write_text((path.read_text() if path.exists() else "") + f"\n{line}\n")
    done = _lint(root)
    assert done.returncode != 0, done.stdout
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout
