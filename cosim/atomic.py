"""Writing files so that a failure leaves the previous ones: a temporary name beside, flushed
to the disk, then a rename.

Every file co2twin writes (results, plant logs, plots, model files and cards,
FMUs, generated scripts) goes through here.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from collections.abc import Iterator

__all__ = ["temp_beside", "atomic_path", "write_frame"]


def temp_beside(path: Path) -> Path:
    """A new empty file next to ``path`` with the same suffix (writers that pick the format
    from the suffix, such as Keras and matplotlib, see the real one), created with the
    permissions the umask allows (``tempfile.mkstemp`` would make the result owner-only)."""
    while True:
        name = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp{path.suffix}"
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return name


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    A failure or interruption leaves ``path`` as it was and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_frame(frame: Any, path: Path, fmt: str, meta: dict[str, Any], meta_key: bytes,
                *, index: bool) -> Path:
    """``frame`` as Parquet (``meta`` as JSON under ``meta_key`` in the schema metadata) or
    CSV (``meta`` in a ``<file>.meta.json`` sidecar), all or nothing.

    Every file is written and flushed to a temporary first; the targets are replaced only
    then, and should one replacement fail, the targets already replaced get their previous
    content back. A failure thus leaves the previous files (or none) as they were.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, indent=1)
    pending: list[tuple[Path, Path]] = []  # (temporary, target)
    try:
        tmp = temp_beside(path)
        pending.append((tmp, path))
        if fmt == "parquet":
            _write_parquet(frame, tmp, text, meta_key, index=index)
        else:
            frame.to_csv(tmp, index=index, float_format="%.17g")
            side = Path(str(path) + ".meta.json")
            pending.append((temp_beside(side), side))
            pending[-1][0].write_text(text)
        for tmp, _ in pending:
            _fsync(tmp)
        _replace_all(pending)
    except BaseException:
        for tmp, _ in pending:
            tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _write_parquet(frame: Any, path: Path, text: str, meta_key: bytes, *, index: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=index)
    merged = {**(table.schema.metadata or {}), meta_key: text.encode()}
    pq.write_table(table.replace_schema_metadata(merged), path)


def _replace_all(pending: list[tuple[Path, Path]]) -> None:
    """Move every temporary onto its target; on a failure undo the moves already made.

    Two renames cannot be one atomic step, so each target about to be replaced keeps a
    second name (a backup) until all are in place.
    """
    done: list[tuple[Path, Path | None]] = []  # (target, its backup or None if it was new)
    try:
        for tmp, final in pending:
            backup = _backup(final)
            try:
                os.replace(tmp, final)
            except BaseException:
                if backup is not None:
                    backup.unlink(missing_ok=True)
                raise
            done.append((final, backup))
    except BaseException:
        _roll_back(done)
        raise
    for _, backup in done:
        # every target is written: a backup that cannot be removed is a stray hidden file,
        # not a reason to report the write as failed
        if backup is not None:
            with suppress(OSError):
                backup.unlink(missing_ok=True)


def _roll_back(done: list[tuple[Path, Path | None]]) -> None:
    """Give the replaced targets their previous content again; remove those that were new.

    Should a restore itself fail, its backup and the later ones stay on disk (hidden files
    beside the target) so nothing of the user's is deleted.
    """
    for final, backup in reversed(done):
        if backup is None:
            final.unlink(missing_ok=True)
        else:
            os.replace(backup, final)


def _backup(path: Path) -> Path | None:
    """A second name for the file now at ``path``; None when there is no file to keep."""
    if not path.is_file():
        return None
    backup = temp_beside(path)
    try:
        # a hard link keeps the old content at no cost; file systems without hard links
        # (FAT, some network shares) get a copy
        backup.unlink()
        try:
            os.link(path, backup)
        except OSError:
            shutil.copy2(path, backup)
    except BaseException:
        backup.unlink(missing_ok=True)
        raise
    return backup


def _fsync(path: Path) -> None:
    """Flush the data of ``path`` to the disk, so that a crash right after the rename cannot
    leave an empty or partial file under the target's name."""
    # opened for writing: Windows flushes (``_commit``) only descriptors that may write
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry a rename changed, where the OS allows it.

    Windows cannot open a directory and some file systems refuse to flush one; there the
    rename is left to the OS. The files are in place by now, so this is durability only.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
