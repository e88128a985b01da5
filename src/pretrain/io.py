"""Atomic writes and streaming Parquet I/O.

Every artifact is written under a temporary name in its destination folder and renamed into
place only when complete, so an interrupted stage never leaves a half-written output that DVC
could cache as good.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pretrain.errors import DataError

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("provenance", pa.string()),
        ("metadata", pa.string()),
    ]
)
"""Columns of every document table (raw, clean, dedup). ``metadata`` is a JSON object as text:
the fields a record brought besides its text and id, ``{}`` for none (pretrain.sources.records says why
text and not a struct column)."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (file or folder); rename it to ``path`` on success."""
    path = Path(path)
    if path.exists() and not (path.is_file() or path.is_dir()):
        # Renaming over a device or pipe (say /dev/null) would replace it with a regular file.
        raise DataError(f"{path}: exists and is not a regular file or folder; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(path: Path) -> None:
    """Delete what a killed earlier run left beside ``path`` (its temporary and old copies)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*-*"):
        if stale.name.startswith((f".{path.name}.tmp-", f".{path.name}.old-")):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class DocumentWriter:
    """Stream documents into a Parquet file in row groups, atomically."""

    def __init__(self, path: str | Path, row_group_size: int = 2048):
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, DOCUMENT_SCHEMA, compression="zstd")
        self._rows: list[dict[str, str]] = []
        self._row_group_size = row_group_size
        self.count = 0

    def write(self, doc: dict[str, str]) -> None:
        """Add one document; one without ``metadata`` (a table written before the column
        existed, a test's) gets ``{}``."""
        if "metadata" not in doc:
            doc = {**doc, "metadata": "{}"}
        self._rows.append(doc)
        self.count += 1
        if len(self._rows) >= self._row_group_size:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=DOCUMENT_SCHEMA))
            self._rows = []

    def __enter__(self) -> "DocumentWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._flush()
        finally:
            self._writer.close()
            self._ctx.__exit__(exc_type, exc, tb)


def iter_documents(path: str | Path, batch_size: int = 1024) -> Iterator[dict[str, str]]:
    """Yield documents of a document table one by one, reading it in batches."""
    for batch in iter_batches(path, batch_size=batch_size):
        yield from batch.to_pylist()


def iter_batches(path: str | Path, columns: list[str] | None = None,
                 batch_size: int = 1024) -> Iterator[pa.RecordBatch]:
    """Yield record batches of a Parquet file without loading it whole."""
    try:
        reader = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read Parquet ({exc})") from None
    yield from reader.iter_batches(batch_size=batch_size, columns=columns)


def count_rows(path: str | Path) -> int:
    """Number of rows of a Parquet file, from its footer."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read Parquet ({exc})") from None


def worker_count(workers: int) -> int:
    """``workers``, or every core this process may run on when it is 0."""
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
