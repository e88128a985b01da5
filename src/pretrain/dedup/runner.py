"""Exact and near-duplicate removal in one streaming stage.

Exact (pretrain.dedup.exact): documents with the same text, after NFC and whitespace normalisation
unless ``normalize`` is off. Near: MinHash LSH over word n-grams (pretrain.dedup.minhash; in scripts
written without spaces, such as Chinese, Japanese or Thai, a word is one character), laid out
like datatrove's four MinHash steps (signatures -> buckets -> clusters -> filter) in one stage:

1. signatures: worker processes hash batches of documents, in input order; the main process
   appends each band's 64-bit bucket key per document to that band's file on disk, and the
   signatures to a (documents x num_perm) uint32 file;
2. buckets: one band at a time (past ``sort_chunk`` documents, one key-range part of a band at a
   time) is sorted; each document and the first document of its bucket are a candidate pair
   (k - 1 pairs per bucket of k, as in datatrove's bucket step, which pairs consecutive
   members), compared once however many bands they share, verified by their signatures'
   estimated Jaccard similarity when ``verify`` is on (pretrain.dedup.lsh);
3. clusters: union-find over document indices, always hooking the higher index under the lower;
4. filter: of each cluster the document first in input order (the lowest index) survives.

The same rule holds for exact duplicates: the first occurrence survives. A document identical to
an earlier one is counted as ``exact`` and takes no part in near-duplicate clustering, nor does a
document without any word. Clusters are transitive: if A~B and B~C, B and C are removed even
when A and C are less similar than the threshold (as in datatrove).

Memory: about 100 bytes per document at most (16-byte digests, character, token and word
counts, union-find parents, the decision) and 8 bytes per distinct candidate pair, plus one
band (or one part of a band) at a time; signatures stay on disk and are read back only for
candidate pairs and the audit sample. Results do not depend on the number of workers: every
per-document value is computed the same way whichever process computes it, and the main
process consumes batches in input order.
"""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from collections import deque
from contextlib import ExitStack
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from pretrain.config.dedup import DedupConfig
from pretrain.dedup import lsh, minhash
from pretrain.dedup.exact import exact_keys, first_occurrence
from pretrain.io import atomic_path, count_rows, iter_batches, worker_count

REASONS = ("exact", "near")
SAMPLE_CHARS = 300
"""Characters of each text in the audit sample."""


# --- pass 1: per-document keys, counts and signatures, in worker processes ----------------------


def _scan_batch(cfg: DedupConfig, texts: list[str]) -> dict[str, np.ndarray]:
    """Exact keys, character and whitespace-token counts, signatures and band keys of ``texts``."""
    keys, tokens = exact_keys(texts, cfg.normalize)
    out = {"keys": keys, "tokens": tokens, "chars": np.array([len(t) for t in texts], dtype=np.int64)}
    if cfg.near:
        a, b = minhash.permutations(cfg.num_perm, cfg.seed)
        if cfg.normalize:  # NFC, so that composed and decomposed accents make the same words
            texts = [t if t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
        out["sig"], out["words"] = minhash.signatures(texts, cfg.ngram, a, b)
        out["bands"] = minhash.band_hashes(out["sig"], cfg.bands, cfg.rows)
    return out


def _scan_arrow(data: bytes) -> dict[str, np.ndarray]:
    """_scan_batch in a worker, on a record batch sent as Arrow IPC bytes: the main process
    copies buffers instead of pickling a Python string per document, and the worker makes
    the strings."""
    texts = pa.ipc.open_stream(data).read_next_batch().column(0).to_pylist()
    return _scan_batch(_WORKER_CFG, texts)


def _init_worker(cfg: DedupConfig) -> None:
    global _WORKER_CFG
    _WORKER_CFG = cfg


_WORKER_CFG: DedupConfig | None = None


def scan_batches(cfg: DedupConfig, batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, np.ndarray]]:
    """_scan_batch of each batch of texts, in order, over ``cfg.workers`` processes: the main
    process hashes every workers-th batch itself (it would otherwise mostly wait) and a pool of
    workers - 1 the others, at most two tasks each in flight (Pool.imap would read the whole
    input ahead into its queue)."""
    workers = worker_count(cfg.workers)
    if workers == 1:
        for batch in batches:
            yield _scan_batch(cfg, batch.column(0).to_pylist())
        return
    # fork starts a worker in milliseconds (spawn re-imports numpy and pyarrow); it is the
    # default on Linux, and unsafe on macOS, where spawn is.
    context = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with context.Pool(workers - 1, initializer=_init_worker, initargs=(cfg,)) as pool:
        pending: deque = deque()
        for k, batch in enumerate(batches):
            if k % workers == 0:
                pending.append(_scan_batch(cfg, batch.column(0).to_pylist()))
            else:
                pending.append(pool.apply_async(_scan_arrow, (_arrow_bytes(batch),)))
            while len(pending) > 2 * workers or (pending and isinstance(pending[0], dict)):
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())


def _arrow_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _result(item: Any) -> dict[str, np.ndarray]:
    return item if isinstance(item, dict) else item.get()


def text_batches(src: Path, batch_chars: int) -> Iterator[pa.RecordBatch]:
    """The text column of ``src`` in order, in slices of about ``batch_chars`` bytes of UTF-8
    (at least one document each)."""
    for batch in iter_batches(src, columns=["text"], batch_size=1024):
        ends = np.cumsum(pc.binary_length(batch.column(0)).to_numpy(zero_copy_only=False))
        start = 0
        while start < batch.num_rows:
            before = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, before + batch_chars, side="right")))
            yield batch.slice(start, stop - start)
            start = stop


def scan(cfg: DedupConfig, src: Path, work: Path, total: int) -> dict[str, np.ndarray]:
    """Pass 1: per-document keys and counts in memory; band keys and signatures to ``work``."""
    parts: dict[str, list[np.ndarray]] = {"keys": [], "chars": [], "tokens": [], "words": []}
    with ExitStack() as files:
        sig_file = files.enter_context(open(work / "signatures.u32", "wb"))
        band_files = [files.enter_context(open(work / f"band{i}.u64", "wb"))
                      for i in range(cfg.bands if cfg.near else 0)]
        progress = files.enter_context(tqdm(total=total, desc="dedup: hash", unit="doc"))
        for out in scan_batches(cfg, text_batches(src, cfg.batch_chars)):
            for name in parts:
                if name in out:
                    parts[name].append(out[name])
            if cfg.near:
                out["sig"].tofile(sig_file)
                for i, handle in enumerate(band_files):
                    np.ascontiguousarray(out["bands"][:, i]).tofile(handle)
            progress.update(len(out["chars"]))
    empty = {"keys": np.zeros((0, 2), np.uint64)}
    return {k: np.concatenate(v) if v else empty.get(k, np.zeros(0, np.int64)) for k, v in parts.items()}


# --- decisions, output and report ----------------------------------------------------------------


def decide(cfg: DedupConfig, scanned: dict[str, np.ndarray], work: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per document: the reason it is removed (0 kept, 1 exact, 2 near) and the document it
    duplicates (its first occurrence, or the first document of its near-duplicate cluster)."""
    n = len(scanned["keys"])
    kept_by = first_occurrence(scanned["keys"])
    exact = kept_by != np.arange(n)
    reason = np.where(exact, 1, 0).astype(np.int8)
    if not cfg.near:
        return reason, kept_by, {}
    eligible = ~exact & (scanned["words"] > 0)
    root, stats = lsh.clusters(work, _signatures(work, n, cfg.num_perm), eligible, cfg.bands,
                               cfg.threshold if cfg.verify else None, cfg.sort_chunk)
    near = eligible & (root != np.arange(n))
    reason[near], kept_by[near] = 2, root[near]
    stats["clusters"] = int((np.bincount(root[eligible], minlength=n) >= 2).sum())
    return reason, kept_by, stats


def write_documents(src: Path, dst: Path, reason: np.ndarray, wanted: set[int]) -> dict[int, dict]:
    """Pass 2: copy the kept rows of ``src`` (every column, metadata included) to ``dst``; return
    the id, start of the text and metadata of the ``wanted`` documents (the audit sample)."""
    found, offset = {}, 0
    with pq.ParquetWriter(dst, pq.read_schema(src), compression="zstd") as writer, \
            tqdm(total=len(reason), desc="dedup: write", unit="doc") as progress:
        for batch in iter_batches(src, batch_size=2048):
            rows = range(offset, offset + batch.num_rows)
            for i in sorted(wanted.intersection(rows)):
                meta = batch.column("metadata")[i - offset].as_py() if "metadata" in batch.schema.names else None
                found[i] = {"id": batch.column("id")[i - offset].as_py(),
                            "text": batch.column("text")[i - offset].as_py()[:SAMPLE_CHARS],
                            "metadata": json.loads(meta) if meta else {}}
            writer.write_batch(batch.filter(pa.array(reason[rows.start : rows.stop] == 0)))
            offset += batch.num_rows
            progress.update(batch.num_rows)
    return found


def sample_pairs(cfg: DedupConfig, reason: np.ndarray, kept_by: np.ndarray, work: Path) -> list[dict]:
    """The first ``cfg.samples`` removed documents of each reason, with the document kept in
    their place and the estimated Jaccard similarity of the two (from their signatures)."""
    sig = _signatures(work, len(reason), cfg.num_perm) if cfg.near else None
    pairs = []
    for code, name in enumerate(REASONS, start=1):
        for removed in np.flatnonzero(reason == code)[: cfg.samples].tolist():
            kept = int(kept_by[removed])
            jaccard = None if sig is None else round(float(minhash.estimated_jaccard(sig[kept], sig[removed])), 4)
            pairs.append({"reason": name, "kept": kept, "removed": removed, "jaccard": jaccard})
    return pairs


def write_pairs(path: Path, pairs: list[dict], docs: dict[int, dict]) -> None:
    """The audit sample, one JSON line per removed document."""
    with open(path, "w", encoding="utf-8") as handle:
        for pair in pairs:
            kept, removed = docs[pair["kept"]], docs[pair["removed"]]
            handle.write(json.dumps({"reason": pair["reason"], "kept_id": kept["id"], "removed_id": removed["id"],
                                     "jaccard": pair["jaccard"], "kept_text": kept["text"],
                                     "removed_text": removed["text"], "kept_metadata": kept["metadata"],
                                     "removed_metadata": removed["metadata"]}, ensure_ascii=False) + "\n")


def report(cfg: DedupConfig, scanned: dict[str, np.ndarray], reason: np.ndarray, stats: dict) -> dict[str, Any]:
    """metrics/dedup.json: documents, characters and words in and out (whitespace-separated,
    len(text.split()), as clean's words_in / words_out), documents removed by reason."""
    kept = reason == 0
    out: dict[str, Any] = {
        "documents_in": len(reason), "documents_out": int(kept.sum()),
        "chars_in": int(scanned["chars"].sum()), "chars_out": int(scanned["chars"][kept].sum()),
        "words_in": int(scanned["tokens"].sum()), "words_out": int(scanned["tokens"][kept].sum()),
        "removed": {name: int((reason == code).sum()) for code, name in enumerate(REASONS, start=1)},
    }
    if cfg.near:
        out["near"] = {**stats, "implied_threshold": round(minhash.implied_threshold(cfg.bands, cfg.rows), 4),
                       "detection_probability": minhash.detection_curve(cfg.bands, cfg.rows)}
    return out


def dedup(cfg: DedupConfig, src: Path, out_dir: Path) -> dict[str, Any]:
    """Copy ``src`` to ``out_dir/documents.parquet`` without exact and near duplicates, with an
    audit sample in ``out_dir/removed_pairs.jsonl``; return the report."""
    total = count_rows(src)
    with atomic_path(out_dir) as tmp:
        work = tmp / "work"
        work.mkdir(parents=True)
        scanned = scan(cfg, src, work, total)
        reason, kept_by, stats = decide(cfg, scanned, work)
        pairs = sample_pairs(cfg, reason, kept_by, work)
        wanted = {p["kept"] for p in pairs} | {p["removed"] for p in pairs}
        docs = write_documents(src, tmp / "documents.parquet", reason, wanted)
        write_pairs(tmp / "removed_pairs.jsonl", pairs, docs)
        shutil.rmtree(work)
    return report(cfg, scanned, reason, stats)


def lsh_summary(cfg: DedupConfig) -> list[str]:
    """What the LSH settings detect: the S-curve at Jaccard 0.5..1.0 and its implied threshold."""
    if not cfg.near:
        return ["near-duplicate removal off (dedup.near: false): exact duplicates only"]
    curve = "  ".join(f"{s}: {p:.3f}" for s, p in minhash.detection_curve(cfg.bands, cfg.rows).items())
    return [f"MinHash LSH on word {cfg.ngram}-grams: {cfg.bands} bands x {cfg.rows} rows = {cfg.num_perm} "
            f"permutations; S-curve threshold (1/bands)^(1/rows) = "
            f"{minhash.implied_threshold(cfg.bands, cfg.rows):.3f}; "
            + (f"pairs verified at estimated Jaccard >= {cfg.threshold}" if cfg.verify else "no verification"),
            f"P(candidate | Jaccard s) = 1-(1-s^{cfg.rows})^{cfg.bands}:  {curve}"]


def _signatures(work: Path, n: int, num_perm: int) -> np.ndarray:
    """The (documents x num_perm) signatures written by scan(), mapped from disk."""
    if n == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    return np.memmap(work / "signatures.u32", dtype=np.uint32, mode="r", shape=(n, num_perm))
