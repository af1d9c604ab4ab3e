"""Atomic writes: temporaries flushed before the rename, earlier files kept on any failure."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from cosim import write_results
from cosim.atomic import atomic_path


def _frame(value: float) -> pd.DataFrame:
    frame = pd.DataFrame({"x": [value, value + 1.0]}, index=pd.Index([0.0, 1.0], name="time_s"))
    frame.attrs["units"] = {"x": "1"}
    return frame


def _contents(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` (hidden temporaries and backups included) with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def earlier(tmp_path: Path) -> dict[str, bytes]:
    """A results CSV and its sidecar from an earlier run, as they are on disk."""
    write_results(_frame(1.0), tmp_path / "run.csv")
    return _contents(tmp_path)


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, str]]:
    """Every fsync and rename, in order, as (call, inode of the file, name of the target)."""
    calls: list[tuple[str, int, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.fstat(fd).st_ino, ""))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        calls.append(("replace", os.stat(src).st_ino, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return calls


def _flushed_before_renamed(calls: list[tuple[str, int, str]], target: str) -> bool:
    moves = [i for i, (call, _, name) in enumerate(calls) if call == "replace" and name == target]
    assert len(moves) == 1, calls
    inode = calls[moves[0]][1]
    return ("fsync", inode, "") in calls[: moves[0]]


def test_failed_sidecar_rename_keeps_the_earlier_csv(tmp_path, earlier, monkeypatch):
    """When the new CSV is in place but its sidecar cannot be renamed, the earlier CSV comes back."""
    real = os.replace

    def refuse_sidecar(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "run.csv.meta.json" and ".tmp" in Path(src).name:
            raise OSError("rename of the sidecar failed")
        real(src, dst)

    monkeypatch.setattr(os, "replace", refuse_sidecar)
    with pytest.raises(OSError, match="sidecar failed"):
        write_results(_frame(2.0), tmp_path / "run.csv")
    assert _contents(tmp_path) == earlier


def test_failed_flush_keeps_the_earlier_csv_and_sidecar(tmp_path, earlier, monkeypatch):
    """When a temporary cannot be flushed to disk, nothing is replaced and the error is raised."""
    def broken(fd: int) -> None:
        raise OSError("fsync: input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="input/output error"):
        write_results(_frame(2.0), tmp_path / "run.csv")
    assert _contents(tmp_path) == earlier


def test_csv_and_sidecar_are_flushed_before_they_replace_the_targets(tmp_path, earlier, trace):
    """write_results fsyncs both temporaries before renaming either onto its target."""
    write_results(_frame(2.0), tmp_path / "run.csv")
    assert _flushed_before_renamed(trace, "run.csv"), trace
    assert _flushed_before_renamed(trace, "run.csv.meta.json"), trace
    first_rename = next(i for i, call in enumerate(trace) if call[0] == "replace")
    assert sum(call[0] == "fsync" for call in trace[:first_rename]) >= 2, trace


def test_atomic_path_flushes_the_file_before_the_rename(tmp_path, trace):
    """atomic_path fsyncs what was written to the temporary before it replaces the target."""
    with atomic_path(tmp_path / "model.bin") as tmp:
        tmp.write_bytes(b"new weights")
    assert _flushed_before_renamed(trace, "model.bin"), trace
    assert (tmp_path / "model.bin").read_bytes() == b"new weights"


@pytest.mark.skipif(os.name != "posix", reason="only POSIX can open a directory to fsync it")
def test_atomic_path_flushes_the_directory_after_the_rename(tmp_path, trace):
    """atomic_path fsyncs the directory after the rename, so the new entry survives a crash."""
    with atomic_path(tmp_path / "model.bin") as tmp:
        tmp.write_bytes(b"new weights")
    rename = next(i for i, call in enumerate(trace) if call[0] == "replace")
    assert ("fsync", tmp_path.stat().st_ino, "") in trace[rename + 1:], trace


def test_atomic_path_failed_flush_keeps_the_earlier_file(tmp_path, monkeypatch):
    """When atomic_path cannot flush the temporary, the earlier file stays and no temporary is left."""
    (tmp_path / "model.bin").write_bytes(b"old weights")

    def broken(fd: int) -> None:
        raise OSError("fsync: input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="input/output error"), atomic_path(tmp_path / "model.bin") as tmp:
        tmp.write_bytes(b"new weights")
    assert _contents(tmp_path) == {"model.bin": b"old weights"}
