"""The bucket and cluster steps of MinHash dedup over the shards' band files, in bounded memory.

Steps 2 and 3 of datatrove's MinHash deduplication (buckets, clusters), done with sorts instead
of an in-memory index. Pass 1 (pretrain.dedup.scan) left, for each shard and band, a file of one
64-bit bucket key per document. The bucket step runs as executor tasks (``bucket_task``), each
for one band, or a group of bands, or (past ``sort_chunk`` eligible documents) one key-range
part of a band (key mod parts, so that equal keys meet in one part): it reads that band's keys
of the eligible documents from every shard's file, in global order, sorts them, and pairs each
document with the first document of its bucket: k - 1 pairs for a bucket of k, not k(k-1)/2, as
in datatrove's bucket step (which pairs consecutive members instead). It writes the band's
candidate pairs and, with a threshold, those whose signatures (read from the shards' signature
files) estimate a Jaccard similarity at or above it. A pair shared by several bands is verified
in each of them (the same answer every time); the driver counts it once.

The cluster step runs in the driver, as datatrove's cluster step does: union-find over global
document indices (an int64 array of parents, O(documents)), merging band by band the pairs that
no earlier band produced (8 bytes per distinct candidate pair). Clusters keep their lowest
document index as root, so the document that survives a cluster is its first in global order
(shards in order, then rows), whatever the sharding or the order in which tasks finished.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from pretrain.config.dedup import DedupConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.dedup import minhash
from pretrain.dedup.scan import Scanned, band_file
from pretrain.executor.shards import Shard, file_digest, run_shards
from pretrain.io import atomic_path, write_json

VERIFY_BLOCK = 1 << 16
"""Candidate pairs verified at once: two blocks of signatures in memory (2 x 26 MB at 100
permutations), however many pairs a band has."""


def bucket_pairs(keys: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (lowest index in the bucket, other member) of documents sharing a bucket key;
    ``index`` must be ascending so that a stable sort keeps each bucket in input order."""
    order = np.argsort(keys, kind="stable")
    keys, index = keys[order], index[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    first = index[new][np.cumsum(new) - 1]
    return first[~new], index[~new]


def plan(eligible: int, bands: int, chunk: int) -> list[dict[str, Any]]:
    """The bucket step's tasks, in order: ``{"bands": [...], "part": p, "parts": P}``. A band of
    more than ``chunk`` eligible documents is split into P = ceil(eligible / chunk) parts by key
    (one task each), so that a task sorts about ``chunk`` keys at most; smaller bands are grouped,
    ``chunk // eligible`` bands to a task, so that a small corpus is one task, run in-process."""
    parts = max(1, math.ceil(eligible / chunk))
    if parts > 1:
        return [{"bands": [band], "part": part, "parts": parts} for band in range(bands) for part in range(parts)]
    per_task = max(1, chunk // max(eligible, 1))
    return [{"bands": list(range(lo, min(lo + per_task, bands))), "part": 0, "parts": 1}
            for lo in range(0, bands, per_task)]


def band_keys(scanned: Scanned, band: int, eligible: np.ndarray, part: int = 0,
              parts: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(bucket keys uint64, ascending global indices int64) of the ``eligible`` documents in
    ``band`` whose key is ``part`` mod ``parts``, read from every shard's band file in order."""
    offsets, keys, index = scanned.offsets, [], []
    for shard in range(len(scanned.rows)):
        local = np.flatnonzero(eligible[offsets[shard] : offsets[shard + 1]])
        found = np.asarray(scanned.read(shard, band_file(band), np.uint64)[local])
        if parts > 1:
            mine = found % np.uint64(parts) == part
            found, local = found[mine], local[mine]
        keys.append(found)
        index.append(local.astype(np.int64) + offsets[shard])
    return np.concatenate(keys), np.concatenate(index)


def similar(scanned: Scanned, codes: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each pair (code = u * n + v) has estimated Jaccard >= ``threshold`` (bool)."""
    keep = np.zeros(len(codes), dtype=bool)
    for lo in range(0, len(codes), VERIFY_BLOCK):
        u, v = np.divmod(codes[lo : lo + VERIFY_BLOCK], scanned.documents)
        estimate = minhash.estimated_jaccard(scanned.signatures(u), scanned.signatures(v))
        keep[lo : lo + VERIFY_BLOCK] = estimate >= threshold
    return keep


def bucket_task(shard: Shard) -> dict[str, int]:
    """One bucket-step task; ``shard.source`` is its spec (written by ``clusters``). For each of
    its bands writes ``<name>.band007.candidates.i8`` (the sorted distinct pair codes) and
    ``<name>.band007.verified.i8`` (those that pass verification)."""
    spec = json.loads(shard.source.read_text(encoding="utf-8"))
    scanned = Scanned.from_plain(spec["scanned"])
    eligible = np.memmap(spec["eligible"], dtype=bool, mode="r")  # read shard by shard, not whole
    counts = {"candidates": 0, "verified": 0}
    for band in spec["bands"]:
        keys, index = band_keys(scanned, band, eligible, spec["part"], spec["parts"])
        codes = pair_codes(*bucket_pairs(keys, index), scanned.documents)
        verified = codes if spec["threshold"] is None else codes[similar(scanned, codes, spec["threshold"])]
        for suffix, array in (("candidates", codes), ("verified", verified)):
            with atomic_path(shard.output(f".band{band:03d}.{suffix}.i8")) as tmp:
                array.tofile(tmp)
        counts["candidates"] += len(codes)
        counts["verified"] += len(verified)
    return counts


def find_roots(parent: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Root of each of ``nodes`` (parent[i] <= i; a root is its own parent)."""
    while True:
        up = parent[nodes]
        if (up == nodes).all():
            return nodes
        nodes = up


def union(parent: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Merge the clusters of each pair (u[i], v[i]), hooking the higher root under the lower one,
    so that every cluster's root is its lowest index. Leaves ``parent`` flat (parent = root)."""
    while u.size:
        ru, rv = find_roots(parent, u), find_roots(parent, v)
        apart = ru != rv
        u, v = ru[apart], rv[apart]
        np.minimum.at(parent, np.maximum(u, v), np.minimum(u, v))
    parent[:] = find_roots(parent, np.arange(len(parent)))


def pair_codes(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """Sorted distinct codes u[i] * n + v[i] (int64; u < v < n) of the pairs (u[i], v[i])."""
    return np.unique(u.astype(np.int64) * n + v)


def unseen(codes: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The values of the sorted array ``codes`` that are not in the sorted array ``seen``."""
    at = np.searchsorted(seen, codes)
    known = np.zeros(len(codes), dtype=bool)
    inside = at < len(seen)
    known[inside] = seen[at[inside]] == codes[inside]
    return codes[~known]


def merge_sorted(seen: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted int64 arrays with no value in common, in one linear pass
    over ``seen`` (no sort of the whole, as ``np.union1d`` does)."""
    return np.insert(seen, np.searchsorted(seen, new), new)


def clusters(executor: ExecutorConfig, cfg: DedupConfig, scanned: Scanned, eligible: np.ndarray,
             digests: list[str], work: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Root (lowest global index) of each document's near-duplicate cluster (int64, one per
    document), from the bucket step's tasks (``bucket_task``, run on ``executor`` with their
    specs, outputs and markers in ``work``) and union-find in this process; only ``eligible``
    documents take part. With ``cfg.verify`` a pair counts when its signatures' estimated Jaccard
    similarity reaches ``cfg.threshold``.

    A task's spec holds the digests of everything it reads (the input shards' ``digests``, the
    eligibility array), so a rerun reuses a finished task only when its inputs are unchanged.
    Also returns ``candidate_pairs``, the distinct pairs (bucket's first member, other member)
    compared, and ``verified_pairs``, those that passed (all without verification): a pair
    sharing buckets in several bands counts once, so neither exceeds n * (n - 1) / 2. Memory
    here: the parents (8 bytes per document) and 8 bytes per distinct candidate pair.
    """
    tasks = plan(int(eligible.sum()), cfg.bands, cfg.sort_chunk) if eligible.any() else []
    work.mkdir(exist_ok=True)
    with atomic_path(work / "eligible.u8") as tmp:
        eligible.tofile(tmp)
    common = {"scanned": scanned.plain(), "eligible": str(work / "eligible.u8"), "sources": digests,
              "eligible_digest": file_digest(work / "eligible.u8"),
              "threshold": cfg.threshold if cfg.verify else None}
    specs = [work / f"part-{k:05d}.spec.json" for k in range(len(tasks))]
    for spec, task in zip(specs, tasks):
        write_json(spec, {**common, **task})
    run_shards(executor, "dedup buckets", bucket_task, specs, work)
    return merge_bands(tasks, work, scanned.documents, cfg.bands)


def merge_bands(tasks: list[dict[str, Any]], work: Path, n: int, bands: int) -> tuple[np.ndarray, dict[str, int]]:
    """Union-find over the pairs that the bucket tasks ``tasks`` wrote to ``work``, band by band,
    each distinct pair counted once (see ``clusters``)."""
    root = np.arange(n)
    seen, verified = np.zeros(0, dtype=np.int64), 0
    for band in range(bands):
        # A document is in one bucket per band, so it is the second member of at most one pair
        # per band: the parts of a band hold disjoint pairs, merged into ``seen`` once per band.
        fresh = []
        for k in (k for k, task in enumerate(tasks) if band in task["bands"]):
            stem = work / f"part-{k:05d}.band{band:03d}"
            codes = unseen(np.fromfile(f"{stem}.candidates.i8", dtype=np.int64), seen)
            good = codes[np.isin(codes, np.fromfile(f"{stem}.verified.i8", dtype=np.int64), assume_unique=True)]
            verified += len(good)
            union(root, *np.divmod(good, n))
            fresh.append(codes)
        if fresh:
            seen = merge_sorted(seen, np.unique(np.concatenate(fresh)))
    return root, {"candidate_pairs": len(seen), "verified_pairs": verified}
