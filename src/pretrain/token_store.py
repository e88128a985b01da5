"""The token store: packed rows as flat token files, read a row at a time without loading the rest.

pack writes, next to the Parquet row shards (kept for ``datasets`` users), each row shard as a
pair of files in Megatron-LM's indexed-dataset layout (``megatron/core/datasets/indexed_dataset.py``,
the ``MMIDIDX`` format that Megatron-LM, NeMo and GPT-NeoX train from):

- ``train-00000.bin``: the shard's token ids, row after row, little-endian, in the narrowest type
  Megatron knows that holds the vocabulary: uint16 up to 65,536 ids (2 bytes a token, as
  nanoGPT's ``train.bin``), else int32 (Megatron has no uint32; int32 holds any vocabulary
  below 2^31). ``np.memmap(path, dtype=...).reshape(-1, seq_len)`` maps it.
- ``train-00000.idx``: ``b"MMIDIDX\\x00\\x00"``, version ``<Q`` 1, dtype code ``<B`` (8 uint16,
  4 int32), sequence count ``<Q`` N, document count ``<Q`` N + 1, then N int32 sequence lengths
  (all ``seq_len``), N int64 byte offsets, N + 1 int64 document indices (0 .. N: a row is a
  sequence and a document). Megatron's ``IndexedDataset("data/packed/train-00000")`` reads it.
- ``manifest.json``: this store's own index over the shards: the dtype, ``seq_len``, the
  vocabulary size, and per split its rows and shards (name, rows, BLAKE2b of the ``.bin``), so a
  reader finds row ``i`` of a split by arithmetic, and the train stage keys its checkpoints to the
  data without reading it.

The format is written here by hand (about 40 lines): megatron-core's own builder takes one torch
tensor per item and importing it pulls in the whole Megatron package.

``PackedRows`` reads rows with positional reads (``os.pread``) through the page cache rather than
mapping the files: resident memory and address space stay the size of a batch whatever the
corpus size (a mapping's touched pages count in RSS until unmapped, the reason nanoGPT re-creates
its ``np.memmap`` every batch), and the processes of a multi-process run share the page cache
instead of each holding a copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pretrain.errors import DataError
from pretrain.io import atomic_path

INDEX_HEADER = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
DTYPE_CODES = {np.dtype("<u2"): 8, np.dtype("<i4"): 4}
"""Megatron's dtype codes (``megatron.core.datasets.indexed_dataset.DType``) for the two types used."""
MANIFEST = "manifest.json"
FORMAT = "megatron-mmidx"


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest token type for ids below ``vocab_size``: uint16 up to 65,536, else int32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<i4")


def store_name(split: str, index: int) -> str:
    """The file-name stem of shard ``index`` of ``split``: ``train-00003`` (+ ``.bin``, ``.idx``)."""
    return f"{split}-{index:05d}"


class IndexedShardWriter:
    """Write one shard, ``<stem>.bin`` and ``<stem>.idx``, atomically; rows come in with ``write``.

    ``dtype`` is the token type (``token_dtype``); an id it cannot hold raises DataError.
    """

    def __init__(self, folder: Path, stem: str, seq_len: int, dtype: np.dtype):
        self.folder, self.stem, self.seq_len, self.dtype = Path(folder), stem, seq_len, np.dtype(dtype)
        self.rows = 0
        self._digest = hashlib.blake2b(digest_size=16)
        self._ctx = atomic_path(self.folder / f"{stem}.bin")
        self._handle = open(self._ctx.__enter__(), "wb")
        self._limit = np.iinfo(self.dtype).max

    def write(self, ids: np.ndarray) -> None:
        """Append whole rows: ``ids`` is a flat integer array of ``k * seq_len`` ids."""
        if len(ids) % self.seq_len:
            raise ValueError(f"{len(ids)} ids are not whole rows of {self.seq_len}")
        if len(ids) and (ids.min() < 0 or ids.max() > self._limit):
            raise DataError(f"pack: token id {int(ids.max())} does not fit the token store's "
                            f"{self.dtype.name} (the tokenizer's vocabulary size is wrong)")
        data = np.asarray(ids).astype(self.dtype, copy=False).tobytes()
        self._handle.write(data)
        self._digest.update(data)
        self.rows += len(ids) // self.seq_len

    def close(self) -> dict[str, Any]:
        """Finish the ``.bin``, write the ``.idx``; ``{"name", "rows", "blake2b"}`` for the manifest."""
        self._handle.close()
        self._ctx.__exit__(None, None, None)
        with atomic_path(self.folder / f"{self.stem}.idx") as tmp:
            write_index(tmp, self.rows, self.seq_len, self.dtype)
        return {"name": self.stem, "rows": self.rows, "blake2b": self._digest.hexdigest()}

    def abort(self) -> None:
        """Drop the half-written ``.bin``."""
        self._handle.close()
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_index(path: Path, rows: int, seq_len: int, dtype: np.dtype) -> None:
    """Megatron's ``.idx`` for ``rows`` sequences of ``seq_len`` tokens of ``dtype``, one per document."""
    row_bytes = seq_len * np.dtype(dtype).itemsize
    with open(path, "wb") as handle:
        handle.write(INDEX_HEADER + struct.pack("<Q", INDEX_VERSION) + struct.pack("<B", DTYPE_CODES[np.dtype(dtype)]))
        handle.write(struct.pack("<Q", rows) + struct.pack("<Q", rows + 1))
        for start in range(0, rows, 1 << 20):  # bounded memory for any number of rows
            n = min(1 << 20, rows - start)
            handle.write(np.full(n, seq_len, dtype="<i4").tobytes())
        for start in range(0, rows, 1 << 20):
            n = min(1 << 20, rows - start)
            handle.write((np.arange(start, start + n, dtype="<i8") * row_bytes).tobytes())
        for start in range(0, rows + 1, 1 << 20):
            handle.write(np.arange(start, min(start + (1 << 20), rows + 1), dtype="<i8").tobytes())


def read_index_header(path: Path) -> tuple[np.dtype, int]:
    """The token dtype and sequence count of a Megatron ``.idx``; DataError when it is not one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(INDEX_HEADER) + 8 + 1 + 16)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the token store's index ({exc.strerror})") from None
    if len(head) < len(INDEX_HEADER) + 25 or head[:len(INDEX_HEADER)] != INDEX_HEADER:
        raise DataError(f"{path}: not a Megatron indexed-dataset index (no MMIDIDX header); run the pack stage")
    (version,) = struct.unpack_from("<Q", head, len(INDEX_HEADER))
    code = head[len(INDEX_HEADER) + 8]
    (count,) = struct.unpack_from("<Q", head, len(INDEX_HEADER) + 9)
    dtypes = {c: d for d, c in DTYPE_CODES.items()}
    if version != INDEX_VERSION or code not in dtypes:
        raise DataError(f"{path}: index version {version}, dtype code {code}: not one this reader knows")
    return dtypes[code], count


def write_manifest(folder: Path, seq_len: int, dtype: np.dtype, vocab_size: int,
                   splits: dict[str, list[dict[str, Any]]]) -> None:
    """``manifest.json`` over the shards each split's writers returned (``IndexedShardWriter.close``)."""
    manifest = {"format": FORMAT, "dtype": np.dtype(dtype).name, "seq_len": seq_len, "vocab_size": vocab_size,
                "splits": {split: {"rows": sum(s["rows"] for s in shards), "shards": shards}
                           for split, shards in splits.items()}}
    with atomic_path(Path(folder) / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The store's manifest in ``folder``; DataError when there is none or it is not one."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{folder}: no token store ({MANIFEST}, train-00000.bin, ...); run the pack stage") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable token-store manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a token-store manifest (format {FORMAT!r}); run the pack stage")
    return manifest


def has_split(folder: Path, split: str) -> bool:
    """Whether the store in ``folder`` holds rows of ``split``."""
    return (Path(folder) / MANIFEST).is_file() and read_manifest(folder)["splits"].get(split, {}).get("rows", 0) > 0


class PackedRows:
    """The rows of one split of the token store in ``folder``, read lazily.

    Behaves as a read-only (rows, seq_len) array for what the training and evaluation loops ask:
    ``len``, ``shape``, ``rows[i]`` (one row), ``rows[a:b]`` (consecutive rows) and
    ``rows[indices]`` (an integer array, any order); each returns a new int64 array, as the
    embedding takes. Nothing is read until asked; file handles are opened per process, so the
    object can be handed to DataLoader workers or forked. Raises DataError for a missing split,
    a shard whose ``.bin`` has the wrong size or whose ``.idx`` disagrees with the manifest.
    """

    def __init__(self, folder: str | Path, split: str):
        self.folder, self.split = Path(folder), split
        manifest = read_manifest(self.folder)
        self.seq_len = int(manifest["seq_len"])
        self.dtype = np.dtype(manifest["dtype"]).newbyteorder("<")
        shards = manifest["splits"].get(split, {}).get("shards", [])
        if not shards or not sum(s["rows"] for s in shards):
            raise DataError(f"{self.folder}: no packed {split} rows in the token store; run the pack stage")
        self.shards = [self.folder / f"{s['name']}.bin" for s in shards]
        self._row_bytes = self.seq_len * self.dtype.itemsize
        for path, shard in zip(self.shards, shards):
            self._check(path, shard["rows"])
        self.ends = np.cumsum([s["rows"] for s in shards])
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def _check(self, path: Path, rows: int) -> None:
        dtype, count = read_index_header(path.with_suffix(".idx"))
        try:
            size = path.stat().st_size
        except OSError:
            raise DataError(f"{path}: missing from the token store; run the pack stage") from None
        if dtype != self.dtype or count != rows or size != rows * self._row_bytes:
            raise DataError(f"{path}: {size} bytes and an index of {count} {dtype.name} rows, the manifest "
                            f"says {rows} rows of {self.seq_len} {self.dtype.name} ids; run the pack stage")

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.ends[-1]), self.seq_len

    def __len__(self) -> int:
        return int(self.ends[-1])

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors are not ours to share
            self._fds, self._pid = {}, os.getpid()
        if shard not in self._fds:
            self._fds[shard] = os.open(self.shards[shard], os.O_RDONLY)
        return self._fds[shard]

    def _read(self, start: int, count: int, out: np.ndarray) -> None:
        """Rows ``start .. start + count`` (consecutive, maybe across shards) into ``out``."""
        done = 0
        while done < count:
            row = start + done
            shard = int(np.searchsorted(self.ends, row, side="right"))
            first = row - (int(self.ends[shard - 1]) if shard else 0)
            n = min(count - done, int(self.ends[shard]) - row)
            data = os.pread(self._fd(shard), n * self._row_bytes, first * self._row_bytes)
            out[done:done + n] = np.frombuffer(data, dtype=self.dtype).reshape(n, self.seq_len)
            done += n

    def __getitem__(self, key: Any) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                raise IndexError("PackedRows: slices with a step are not supported")
            out = np.empty((max(0, stop - start), self.seq_len), dtype=np.int64)
            self._read(start, len(out), out)
            return out
        if isinstance(key, (int, np.integer)):
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"row {key} of {n}")
            out = np.empty((1, self.seq_len), dtype=np.int64)
            self._read(index, 1, out)
            return out[0]
        indices = np.asarray(key)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise IndexError(f"PackedRows: index with an int, a slice or a 1-D integer array, not {key!r}")
        if len(indices) and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"rows {indices.min()}..{indices.max()} of {n}")
        out = np.empty((len(indices), self.seq_len), dtype=np.int64)
        for k, index in enumerate(indices % n if len(indices) else indices):
            self._read(int(index), 1, out[k:k + 1])
        return out

    def chunks(self, rows: int = 8192) -> Iterator[np.ndarray]:
        """All rows in order, ``rows`` at a time, as (n, seq_len) int64 arrays."""
        for start in range(0, len(self), rows):
            yield self[start:start + rows]

    def close(self) -> None:
        """Close the file handles this process opened (reading again reopens them)."""
        if self._pid == os.getpid():
            for fd in self._fds.values():
                os.close(fd)
        self._fds = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: os may be gone
            pass
