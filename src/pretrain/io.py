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
        ("kind", pa.string()),
    ]
)
"""Columns of every document table (raw, clean, dedup). ``metadata`` is a JSON object as text:
the fields a record brought besides its text and id, ``{}`` for none (pretrain.sources.records says why
text and not a struct column). ``kind``: ``prose``, ``code`` or ``html``, which the clean stage
chooses its rules by (pretrain.sources.kinds)."""


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


def write_json_list(path: str | Path, parts: list[Path]) -> None:
    """Write the JSON lists in the files ``parts`` as one list, atomically, one part in memory at
    a time; the text is what ``write_json`` of the whole list would write."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        first = True
        for part in parts:
            for item in json.loads(Path(part).read_text(encoding="utf-8")):
                text = json.dumps(item, indent=2, sort_keys=False).replace("\n", "\n  ")
                out.write(("[\n  " if first else ",\n  ") + text)
                first = False
        out.write("[]\n" if first else "\n]\n")


def place(src: Path, dst: Path) -> None:
    """Put the finished file ``src`` at ``dst`` too: a hard link (no copy) on one file system,
    else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


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
        existed, a test's) gets ``{}``, one without ``kind`` (a test's, a caller's that has
        none) "prose". The clean stage, the one reader of the kind, refuses a *table* without
        the column (pretrain.clean.runner.check_kind_column), so an old table is never read
        as all prose."""
        if "metadata" not in doc or "kind" not in doc:
            doc = {"metadata": "{}", "kind": "prose", **doc}
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


SHARD_GLOB = "part-*.parquet"
"""The shards of a document folder (data/raw, data/clean, data/dedup), in order by name."""


def shard_name(index: int) -> str:
    """The file name of shard ``index``: ``part-00003.parquet``."""
    return f"part-{index:05d}.parquet"


def document_shards(folder: str | Path) -> list[Path]:
    """The shards of a document folder in order; DataError when it has none."""
    shards = sorted(Path(folder).glob(SHARD_GLOB))
    if not shards:
        raise DataError(f"{folder}: no document shards ({SHARD_GLOB}); run the stage that writes it")
    return shards


def row_shard_name(split: str, index: int) -> str:
    """The file name of row shard ``index`` of a packed split (data/packed): ``train-00003.parquet``,
    ``val-00000.parquet``; ``datasets.load_dataset("parquet", data_dir=...)`` reads these names
    as its ``train`` and ``validation`` splits."""
    return f"{split}-{index:05d}.parquet"


def row_shards(folder: str | Path, split: str) -> list[Path]:
    """The row shards of ``split`` ("train" or "val") in a packed folder, in order (empty: none)."""
    return sorted(Path(folder).glob(f"{glob.escape(split)}-[0-9][0-9][0-9][0-9][0-9].parquet"))


class ShardedDocumentWriter:
    """Stream documents into ``folder/part-00000.parquet``, ``part-00001.parquet``, ..., starting a
    new shard once the current one holds ``shard_bytes`` of UTF-8 text (a shard holds at least
    one document; the folder is expected to be a stage's temporary output, renamed when done)."""

    def __init__(self, folder: str | Path, shard_bytes: int):
        self.folder, self.shard_bytes = Path(folder), shard_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shards = 0
        self.count = 0
        self._writer: DocumentWriter | None = None
        self._bytes = 0

    def write(self, doc: dict[str, str]) -> None:
        """Add one document (as DocumentWriter.write)."""
        if self._writer is None or self._bytes >= self.shard_bytes:
            self._close_shard()
            self._writer = DocumentWriter(self.folder / shard_name(self.shards))
            self.shards += 1
            self._bytes = 0
        self._writer.write(doc)
        self._bytes += len(doc["text"].encode("utf-8"))
        self.count += 1

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.__exit__(None, None, None)
            self._writer = None

    def __enter__(self) -> "ShardedDocumentWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._writer is not None:
            self._writer.__exit__(exc_type, exc, tb)
            self._writer = None


def iter_documents(path: str | Path, batch_size: int = 1024) -> Iterator[dict[str, str]]:
    """Yield documents of a document table (a Parquet file, or a folder of shards in order) one
    by one, reading it in batches."""
    for shard in document_shards(path) if Path(path).is_dir() else [path]:
        for batch in iter_batches(shard, batch_size=batch_size):
            yield from batch.to_pylist()


def iter_batches(path: str | Path, columns: list[str] | None = None,
                 batch_size: int = 1024) -> Iterator[pa.RecordBatch]:
    """Yield record batches of a Parquet file without loading it whole."""
    try:
        reader = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read Parquet ({exc})") from None
    yield from reader.iter_batches(batch_size=batch_size, columns=columns)


def read_schema(path: str | Path) -> pa.Schema:
    """The schema of a Parquet file, from its footer."""
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read Parquet ({exc})") from None


def count_rows(path: str | Path) -> int:
    """Number of rows of a Parquet file (or of every shard of a folder), from the footers."""
    if Path(path).is_dir():
        return sum(count_rows(shard) for shard in document_shards(path))
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"{path}: cannot read Parquet ({exc})") from None


def worker_count(workers: int) -> int:
    """``workers``, or every core this process may run on when it is 0."""
    if workers:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
