"""Pass 1 of dedup, one executor task per input shard: keys, counts, signatures and band keys.

``scan_shard`` reads the text column of one shard in slices of ``dedup.batch_chars`` bytes and
streams, per document and in row order, into files of the work folder named after the shard
(``part-00003.keys.u64``, ...; the layout of datatrove's signature step, which writes one file
per bucket per task, ``bucket_003/00003.minhash.sig``):

- ``keys.u64``: the 16-byte exact-duplicate key (rows x 2 uint64, pretrain.dedup.exact);
- ``counts.i64``: characters, whitespace-separated words (``len(text.split())``) and MinHash
  words (rows x 3 int64);
- with ``dedup.near``: ``sig.u32``, the MinHash signatures (rows x num_perm uint32), and
  ``band007.u64``, one 64-bit bucket key per document for each band.

A task holds one slice of text and its arrays at a time, so its memory is bounded by
``batch_chars``, not by the shard or the corpus. ``Scanned`` finds these files again for the
later steps, which address documents by their global index: the shards in order, then the rows.

The speed-ups, times and memory figures this module's docstrings gained on 2026-11-30 were
measured on one core of a 2-core Xeon @ 2.80 GHz with AVX-512F, no AVX-512 BF16.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from pretrain.config.dedup import DedupConfig
from pretrain.dedup import minhash
from pretrain.dedup.exact import exact_keys
from pretrain.executor.shards import Shard
from pretrain.io import atomic_path, iter_batches

READ_ROWS = 256
"""Rows of a shard read from Parquet at once (then sliced by ``batch_chars``): 256 rather than
1024 lowers the peak resident memory of dedup on the built-in corpus with the stdlib tests
(36 MB of text in 8 MB shards) from 290 to 275 MiB (one run each), with no change in speed
beyond the noise of a shared machine."""
CHARS, WORDS, MINHASH_WORDS = range(3)
"""Columns of ``counts.i64``."""


def scan_batch(cfg: DedupConfig, texts: list[str]) -> dict[str, np.ndarray]:
    """Exact keys (n x 2 uint64), counts (n x 3 int64, columns CHARS, WORDS, MINHASH_WORDS) and,
    with ``cfg.near``, signatures (n x num_perm uint32) and band keys (n x bands uint64)."""
    counts = np.zeros((len(texts), 3), dtype=np.int64)
    counts[:, CHARS] = [len(t) for t in texts]
    if cfg.normalize:  # NFC, so that composed and decomposed accents make the same words
        texts = [t if t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
    keys, counts[:, WORDS] = exact_keys(texts, cfg.normalize)  # its NFC of NFC text is a quick check
    out = {"keys": keys, "counts": counts}
    if cfg.near:
        a, b = minhash.permutations(cfg.num_perm, cfg.seed)
        out["sig"], counts[:, MINHASH_WORDS] = minhash.signatures(texts, cfg.ngram, a, b)
        out["bands"] = minhash.band_hashes(out["sig"], cfg.bands, cfg.rows)
    return out


def text_batches(src: Path, batch_chars: int) -> Iterator[list[str]]:
    """The texts of ``src`` in order, in slices of about ``batch_chars`` bytes of UTF-8 (at least
    one document each)."""
    for batch in iter_batches(src, columns=["text"], batch_size=READ_ROWS):
        ends = value_ends(batch.column(0))
        start = 0
        while start < batch.num_rows:
            before = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, before + batch_chars, side="right")))
            yield batch.column(0).slice(start, stop - start).to_pylist()
            start = stop


def value_ends(column: pa.Array) -> np.ndarray:
    """Where each value of a string (or binary) array ends, in bytes from the start of its first
    value (int64), read from the array's offsets buffer: ``pc.binary_length(...).to_numpy()``
    makes pyarrow import pandas (0.4 s and 40 MB per process, for nothing)."""
    wide = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1].astype(np.int64)
    return offsets[1:] - offsets[0]


def file_names(cfg: DedupConfig) -> list[str]:
    """The suffixes of the files ``scan_shard`` writes for one shard."""
    names = ["keys.u64", "counts.i64"]
    if cfg.near:
        names += ["sig.u32", *(band_file(band) for band in range(cfg.bands))]
    return names


def band_file(band: int) -> str:
    """The suffix of one band's bucket-key file."""
    return f"band{band:03d}.u64"


def scan_shard(cfg: DedupConfig, shard: Shard) -> dict[str, int]:
    """Pass 1 over ``shard.source`` (see the module docstring); each file is written atomically.
    Returns the shard's documents, characters and whitespace-separated words."""
    total = {"documents": 0, "chars": 0, "words": 0}
    with ExitStack() as stack:
        files = {name: stack.enter_context(open(stack.enter_context(atomic_path(shard.output(f".{name}"))), "wb"))
                 for name in file_names(cfg)}
        for texts in text_batches(shard.source, cfg.batch_chars):
            out = scan_batch(cfg, texts)
            out["keys"].tofile(files["keys.u64"])
            out["counts"].tofile(files["counts.i64"])
            if cfg.near:
                out["sig"].tofile(files["sig.u32"])
                for band in range(cfg.bands):
                    np.ascontiguousarray(out["bands"][:, band]).tofile(files[band_file(band)])
            total["documents"] += len(texts)
            total["chars"] += int(out["counts"][:, CHARS].sum())
            total["words"] += int(out["counts"][:, WORDS].sum())
    return total


@dataclasses.dataclass(frozen=True)
class Scanned:
    """Where pass 1 wrote each shard's files (``folder/part-00003.<suffix>``) and how many
    documents each shard holds; document ``i`` of the corpus (global index: shards in order,
    then rows) is row ``i - offsets[s]`` of shard ``s``. JSON-able (``plain``) for a task spec."""

    folder: Path
    rows: tuple[int, ...]
    num_perm: int

    @property
    def offsets(self) -> np.ndarray:
        """Global index of each shard's first document, and the total at the end (int64)."""
        return np.concatenate(([0], np.cumsum(self.rows, dtype=np.int64)))

    @property
    def documents(self) -> int:
        return int(sum(self.rows))

    def path(self, shard: int, suffix: str) -> Path:
        return self.folder / f"part-{shard:05d}.{suffix}"

    def read(self, shard: int, suffix: str, dtype: Any, width: int | None = None) -> np.ndarray:
        """One shard's file as an array (rows, or rows x width), mapped from disk."""
        shape = (self.rows[shard],) if width is None else (self.rows[shard], width)
        if not self.rows[shard]:  # np.memmap refuses an empty file
            return np.zeros(shape, dtype=dtype)
        return np.memmap(self.path(shard, suffix), dtype=dtype, mode="r", shape=shape)

    def concat(self, suffix: str, dtype: Any, width: int | None = None) -> np.ndarray:
        """Every shard's file, concatenated in global order (O(documents) memory)."""
        return np.concatenate([np.asarray(self.read(s, suffix, dtype, width)) for s in range(len(self.rows))])

    def signatures(self, index: np.ndarray) -> np.ndarray:
        """The signatures (len(index) x num_perm uint32) of the documents with global ``index``,
        read from the shards' signature files."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.num_perm), dtype=np.uint32)
        offsets = self.offsets
        shard = np.searchsorted(offsets, index, side="right") - 1
        for s in np.unique(shard).tolist():
            here = shard == s
            out[here] = self.read(s, "sig.u32", np.uint32, self.num_perm)[index[here] - offsets[s]]
        return out

    def plain(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "rows": list(self.rows), "num_perm": self.num_perm}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> "Scanned":
        return cls(Path(plain["folder"]), tuple(plain["rows"]), plain["num_perm"])
