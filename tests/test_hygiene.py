"""The hygiene gate: ruff and mypy, as configured in pyproject.toml, find nothing.

They run inside the test suite so that the README's one test command (and so CI)
checks them; the rule sets and their reasons are in pyproject.toml.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("co2twin", "cosim", "components", "models", "fmu")


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)


def test_ruff_finds_nothing():
    """`ruff check` over the library packages and the tests reports no finding."""
    done = _tool("ruff", "check", "--no-cache", *LIBRARY, "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing():
    """`mypy` over the library packages (pyproject's [tool.mypy]) reports no error."""
    done = _tool("mypy", "--no-incremental", "--cache-dir", "/dev/null")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success" in done.stdout
