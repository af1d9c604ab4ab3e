"""Writing files so that a failure leaves nothing: a temporary name beside, then a rename.

Every file co2twin writes (results, plant logs, plots, model files and cards,
FMUs, generated scripts) goes through here.
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_frame(frame: Any, path: Path, fmt: str, meta: dict[str, Any], meta_key: bytes,
                *, index: bool) -> Path:
    """``frame`` as Parquet (``meta`` as JSON under ``meta_key`` in the schema metadata) or
    CSV (``meta`` in a ``<file>.meta.json`` sidecar), all or nothing: a CSV whose sidecar
    could not be written is removed too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(meta, indent=1)
    targets: list[tuple[Path, Path]] = []
    done: list[Path] = []
    try:
        tmp = temp_beside(path)
        targets.append((tmp, path))
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=index)
            merged = {**(table.schema.metadata or {}), meta_key: text.encode()}
            pq.write_table(table.replace_schema_metadata(merged), tmp)
        else:
            frame.to_csv(tmp, index=index, float_format="%.17g")
            side = Path(str(path) + ".meta.json")
            targets.append((temp_beside(side), side))
            targets[-1][0].write_text(text)
        for tmp, final in targets:
            os.replace(tmp, final)
            done.append(final)
    except BaseException:
        for tmp, _ in targets:
            tmp.unlink(missing_ok=True)
        for final in done:
            final.unlink(missing_ok=True)
        raise
    return path
