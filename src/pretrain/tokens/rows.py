"""Token streams on disk, and the fixed-length rows cut from them.

A pack task writes each split's token stream of its shard as a flat file of little-endian int32
ids (``TokenFile``); the driver reads those files in shard order and cuts the one concatenated
stream into rows of ``seq_len`` (``RowShardWriter``), as the course does: no padding, the tail
remainder dropped once, at the very end. The rows go to row shards ``train-00000.parquet``, ...
(pretrain.io.row_shard_name), a new one every ``rows_per_shard`` rows, in row groups of
``rows_per_group`` rows. Where the shards and row groups start depends only on the stream, so
any number of input shards or workers writes the same files, and memory is a few row groups
whatever the corpus size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pretrain.io import atomic_path, row_shard_name
from pretrain.token_store import IndexedShardWriter, store_name

ROWS_SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32()))])
TOKEN_DTYPE = np.dtype("<i4")
"""Token ids on disk: int32, little-endian (every vocabulary here is far below 2^31)."""


class TokenFile:
    """Append token ids to a flat int32 file, written atomically (renamed into place on close)."""

    def __init__(self, path: Path):
        self._ctx = atomic_path(path)
        self._handle = open(self._ctx.__enter__(), "wb")
        self.tokens = 0

    def write(self, ids: np.ndarray) -> None:
        """Append ``ids`` (any integer array)."""
        self._handle.write(np.ascontiguousarray(ids, dtype=TOKEN_DTYPE).data)
        self.tokens += len(ids)

    def __enter__(self) -> "TokenFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._handle.close()
        finally:
            self._ctx.__exit__(exc_type, exc, tb)


def read_tokens(paths: Iterable[Path], chunk: int) -> Iterable[np.ndarray]:
    """The ids of the token files ``paths``, in order, ``chunk`` ids at a time (at most)."""
    for path in paths:
        with open(path, "rb") as handle:
            while True:
                ids = np.fromfile(handle, dtype=TOKEN_DTYPE, count=chunk)
                if not len(ids):
                    break
                yield ids


class RowShardWriter:
    """Cut a token stream into rows of ``seq_len`` and write them to ``folder/<split>-NNNNN.parquet``
    and, given ``store_folder``, the same rows to the token store's ``<split>-NNNNN.bin`` / ``.idx``
    there (pretrain.token_store) in ``store_dtype``.

    The stream comes in pieces of any size (``add``); memory holds the pieces not yet cut plus
    one row group. ``close`` drops the remainder shorter than a row and returns the counts.
    """

    def __init__(self, folder: Path, split: str, seq_len: int, rows_per_shard: int,
                 store_folder: Optional[Path] = None, store_dtype: np.dtype = np.dtype("<i4"),
                 rows_per_group: int = 4096):
        self.folder, self.split, self.seq_len = Path(folder), split, seq_len
        self.rows_per_shard, self.rows_per_group = rows_per_shard, rows_per_group
        self.store_folder, self.store_dtype = store_folder, np.dtype(store_dtype)
        self.store_shards: list[dict] = []
        self._store: Optional[IndexedShardWriter] = None
        self.buffer = np.zeros(0, dtype=np.int32)
        self.start = 0  # ids of buffer[:start] are written
        self.rows = 0
        self.shards = 0
        self._writer: Optional[pq.ParquetWriter] = None
        self._in_shard = 0

    def add(self, ids: np.ndarray) -> None:
        """Append ``ids`` to the stream; write every full row group it completes."""
        self.buffer = np.concatenate([self.buffer[self.start:], np.asarray(ids, dtype=np.int32)])
        self.start = 0
        while True:
            # A group ends every rows_per_group rows of a shard and where the shard ends.
            n = min(self.rows_per_group, self.rows_per_shard - self._in_shard)
            if len(self.buffer) - self.start < n * self.seq_len:
                return
            self._write(n)

    def _write(self, n: int) -> None:
        end = self.start + n * self.seq_len
        offsets = np.arange(0, n * self.seq_len + 1, self.seq_len, dtype=np.int32)
        array = pa.ListArray.from_arrays(pa.array(offsets), pa.array(self.buffer[self.start:end], pa.int32()))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.folder / row_shard_name(self.split, self.shards),
                                            ROWS_SCHEMA, compression="zstd")
            if self.store_folder is not None:
                self._store = IndexedShardWriter(self.store_folder, store_name(self.split, self.shards),
                                                 self.seq_len, self.store_dtype)
        self._writer.write_table(pa.Table.from_arrays([array], schema=ROWS_SCHEMA))
        if self._store is not None:
            self._store.write(self.buffer[self.start:end])
        self.start, self.rows, self._in_shard = end, self.rows + n, self._in_shard + n
        if self._in_shard == self.rows_per_shard:
            self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            if self._store is not None:
                self.store_shards.append(self._store.close())
            self._writer, self._store, self.shards, self._in_shard = None, None, self.shards + 1, 0

    def close(self) -> dict[str, int]:
        """Write the last full rows, drop the rest; ``{rows, tokens_in_rows, dropped_tail_tokens, shards}``."""
        full = (len(self.buffer) - self.start) // self.seq_len  # fewer than a group: add wrote those
        if full:
            self._write(full)
        self._close_shard()
        return {"rows": self.rows, "tokens_in_rows": self.rows * self.seq_len,
                "dropped_tail_tokens": len(self.buffer) - self.start, "shards": self.shards}
