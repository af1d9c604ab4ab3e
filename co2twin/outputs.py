"""Where a run's results go, safely: file names made from scenario names, scenario files
kept inside the working directory, and no file overwritten that co2twin did not write.

The rules, and who may break them:

- without ``-o`` or ``output.file`` the results go to ``results/<safe name>.parquet``,
  the safe name made from the scenario's name (``../../../x`` -> ``x``,
  ``A/B test 1/2`` -> ``A_B_test_1_2``): a name never makes a folder;
- ``output.file`` in a scenario file is a relative path that stays inside the working
  directory (a scenario from someone else cannot write elsewhere); ``-o`` on the command
  line may point anywhere, that is the user's own choice;
- a suffix that contradicts the format (``x.xlsx`` or ``x.csv`` with format ``parquet``)
  is an error, not a Parquet file under another name;
- an existing file is replaced only when co2twin wrote it (its results metadata: the
  Parquet schema key ``co2twin``, a CSV's ``.meta.json`` sidecar), or with ``--overwrite``.
"""
from __future__ import annotations

import ntpath
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from cosim.errors import CosimError
from cosim.recorder import FORMATS, is_results_file

from .scenario_schema import Scenario

__all__ = ["OutputError", "ResultsTarget", "RESULTS_DIR", "safe_name", "default_results_file",
           "output_file_problems", "results_target", "check_overwrite"]

#: the folder default results go to, relative to the working directory
RESULTS_DIR = Path("results")
_MAX_NAME = 100
# words of letters and digits, dots and dashes only inside a word: no "..", no hidden files
_WORD = re.compile(r"[^\W_]+(?:[.-][^\W_]+)*")
# names Windows reserves in every folder, whatever the suffix
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])$", re.IGNORECASE)


class OutputError(CosimError, ValueError):
    """A results file cannot be written where or as asked (path, format, an existing file)."""


@dataclass(frozen=True)
class ResultsTarget:
    """The results file of a run and its format (``parquet`` or ``csv``)."""

    path: Path
    fmt: str


def safe_name(name: str) -> str:
    """A file name made from ``name``: its words (letters, digits, inner dots and dashes)
    joined by ``_``; never a path, a hidden file or empty."""
    words = _WORD.findall(name)
    text = "_".join(words)[:_MAX_NAME].strip("._-") or "scenario"
    return f"{text}_" if _RESERVED.match(text) else text


def default_results_file(name: str) -> Path:
    """``results/<safe name>.parquet`` for a scenario called ``name``."""
    return RESULTS_DIR / f"{safe_name(name)}.parquet"


def output_file_problems(file: str, fmt: str | None) -> list[str]:
    """What is wrong with ``output.file`` (and ``output.format``) of a scenario file.

    The file must be relative and stay inside the working directory, read as a POSIX
    and as a Windows path (a scenario file travels), and end in ``.parquet`` or ``.csv``,
    the suffix of the format when one is given.
    """
    problems = []
    expected = ("expected a relative path inside the working directory (-o on the command line "
                "may write elsewhere)")
    if posixpath.isabs(file) or ntpath.isabs(file) or ntpath.splitdrive(file)[0]:
        problems.append(f"{expected}, found the absolute path {file!r}")
    elif any(_escapes(normalise(file)) for normalise in (posixpath.normpath, _nt_normpath)):
        problems.append(f"{expected}, found {file!r}, which leads out of it ('..')")
    problems += _format_problems(file, fmt)
    return problems


def _nt_normpath(file: str) -> str:
    return ntpath.normpath(file).replace("\\", "/")


def _escapes(normalised: str) -> bool:
    return normalised == ".." or normalised.startswith("../")


def _format_problems(file: str, fmt: str | None) -> list[str]:
    """The suffix must name a known format, and the format given if there is one."""
    suffix = posixpath.splitext(file.replace("\\", "/"))[1].lstrip(".").lower()
    if fmt is not None and suffix != fmt:
        shown = f"'.{suffix}'" if suffix else "no suffix"
        return [f"expected a file ending in .{fmt} (the format is {fmt}), found {shown} in {file!r}"]
    if fmt is None and suffix not in FORMATS:
        return [f"expected a .parquet or .csv file (or output.format), found {file!r}"]
    return []


def results_target(sc: Scenario, output: Path | None, *, overwrite: bool = False) -> ResultsTarget:
    """The results file of a run of ``sc``: ``-o`` (``output``), else the scenario's
    ``output.file``, else :func:`default_results_file`; checked before anything runs.

    Raises :class:`OutputError` naming the file and what is wrong: an unknown or
    contradicted format, a directory, a scenario path outside the working directory, an
    existing file co2twin did not write (unless ``overwrite``).
    """
    fmt: str | None
    if output is not None:
        path, fmt, field = output, None, "-o"
    elif sc.output is not None:
        path, fmt, field = Path(sc.output.file), sc.output.format, f"{sc.source}: output.file"
        problems = output_file_problems(sc.output.file, sc.output.format)
        if problems:  # a scenario built without load_scenario's checks
            raise OutputError(f"{field} {problems[0]}")
    else:
        path, fmt, field = default_results_file(sc.name), None, "results file"
    suffix = path.suffix.lstrip(".").lower()
    if fmt is None:
        if suffix not in FORMATS:
            raise OutputError(f"{path}: expected a .parquet or .csv results file ({field})")
        fmt = suffix
    elif suffix != fmt:
        raise OutputError(f"{path}: expected a file ending in .{fmt} (format {fmt}), found "
                          f"{'.' + suffix if suffix else 'no suffix'} ({field})")
    if path.is_dir():
        raise OutputError(f"{path}: expected a results file name, found a directory")
    check_overwrite(path, fmt, overwrite=overwrite)
    return ResultsTarget(path, fmt)


def check_overwrite(path: Path, fmt: str, *, overwrite: bool = False) -> None:
    """Refuse to replace ``path`` (or a CSV's sidecar) unless co2twin wrote it or
    ``overwrite`` is set. Checked before a run and again just before the file is replaced."""
    if overwrite:
        return
    candidates = [path, Path(f"{path}.meta.json")] if fmt == "csv" else [path]
    existing = [p for p in candidates if p.exists() or p.is_symlink()]
    if not existing:
        return
    if not is_results_file(path):
        found = existing[0]
        what = "a directory" if found.is_dir() else "a file co2twin did not write"
        raise OutputError(
            f"{found}: exists and is {what} (no co2twin results metadata); expected a new "
            "file or earlier co2twin results: choose another name, or pass --overwrite to "
            "replace it")
