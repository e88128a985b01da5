"""LSH buckets from on-disk band files, and union-find clusters over document indices.

Steps 2 and 3 of datatrove's MinHash deduplication (buckets, clusters), done with sorts instead
of an in-memory index: each band file holds one 64-bit bucket key per document, in input order;
a band (or, past ``chunk`` entries, one key-range part of it) is sorted, and each document and
the first document of its bucket become a candidate pair: k - 1 pairs for a bucket of k, not
k(k-1)/2, as in datatrove's bucket step (which pairs consecutive members instead), each pair
compared once however many bands it shares. Clusters keep their lowest document index as root,
so the document that survives a cluster is its first in input order.
"""

from __future__ import annotations

import math
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import numpy as np

from pretrain.dedup import minhash


def bucket_pairs(keys: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (lowest index in the bucket, other member) of documents sharing a bucket key;
    ``index`` must be ascending so that a stable sort keeps each bucket in input order."""
    order = np.argsort(keys, kind="stable")
    keys, index = keys[order], index[order]
    new = np.ones(len(keys), dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    first = index[new][np.cumsum(new) - 1]
    return first[~new], index[~new]


def band_parts(path: Path, eligible: np.ndarray, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(bucket keys, ascending document indices) of one band's ``eligible`` documents, in parts
    of about ``chunk`` entries split by key value (key mod parts), so that equal keys meet in one
    part and no more than a part is sorted in memory. Parts are spilled next to ``path``."""
    if not eligible.any():
        return
    parts = math.ceil(int(eligible.sum()) / chunk)
    band = np.memmap(path, dtype=np.uint64, mode="r")
    if parts == 1:
        index = np.flatnonzero(eligible)
        yield np.asarray(band[index]), index
        return
    names = [f"{path}.part{p}" for p in range(parts)]
    with ExitStack() as files:
        handles = [(files.enter_context(open(f"{n}.key", "wb")), files.enter_context(open(f"{n}.idx", "wb")))
                   for n in names]
        for lo in range(0, len(band), chunk):
            index = lo + np.flatnonzero(eligible[lo : lo + chunk])
            keys = np.asarray(band[index])
            part = keys % np.uint64(parts)
            for p, (key_file, idx_file) in enumerate(handles):
                keys[part == p].tofile(key_file)
                index[part == p].astype(np.int64).tofile(idx_file)
    for name in names:
        yield np.fromfile(f"{name}.key", dtype=np.uint64), np.fromfile(f"{name}.idx", dtype=np.int64)
        os.remove(f"{name}.key")
        os.remove(f"{name}.idx")


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


def clusters(work: Path, signatures: np.ndarray, eligible: np.ndarray, bands: int,
             threshold: float | None, chunk: int) -> tuple[np.ndarray, dict[str, int]]:
    """Root (lowest index) of each document's near-duplicate cluster, from the band files
    ``work/band{i}.u64``; with a ``threshold``, a candidate pair counts only when its
    signatures' estimated Jaccard similarity reaches it.

    Also returns ``candidate_pairs``, the distinct pairs (bucket's first member, other member)
    compared, and ``verified_pairs``, those of them that passed verification (all of them
    without a threshold). A pair that shares a bucket in several bands is compared and counted
    once, so neither count can exceed n * (n - 1) / 2. Memory: 8 bytes per distinct pair (16
    while a band's new pairs are merged in, once per band).
    """
    n = len(eligible)
    root = np.arange(n)
    seen = np.zeros(0, dtype=np.int64)  # sorted codes u * n + v (u < v) of the pairs compared
    verified = 0
    for band in range(bands):
        # A document is in one bucket per band, so it is the second member of at most one pair
        # per band: the parts of a band yield disjoint pairs, and ``seen`` (the earlier bands'
        # pairs) is merged with the band's new ones once per band, not re-sorted for every part.
        fresh = []
        for keys, index in band_parts(work / f"band{band}.u64", eligible, chunk):
            codes = new_pairs(*bucket_pairs(keys, index), n, seen)
            fresh.append(codes)
            u, v = np.divmod(codes, n)
            if threshold is not None and len(u):
                similar = minhash.estimated_jaccard(signatures[u], signatures[v]) >= threshold
                u, v = u[similar], v[similar]
            verified += len(u)
            union(root, u, v)
        if fresh:
            seen = merge_sorted(seen, np.unique(np.concatenate(fresh)))
    return root, {"candidate_pairs": len(seen), "verified_pairs": verified}


def new_pairs(u: np.ndarray, v: np.ndarray, n: int, seen: np.ndarray) -> np.ndarray:
    """Sorted distinct codes u[i] * n + v[i] (int64; u < v < n) of the pairs (u[i], v[i]) whose
    code is not in the sorted array ``seen``."""
    codes = np.unique(u.astype(np.int64) * n + v)
    at = np.searchsorted(seen, codes)
    known = np.zeros(len(codes), dtype=bool)
    inside = at < len(seen)
    known[inside] = seen[at[inside]] == codes[inside]
    return codes[~known]


def merge_sorted(seen: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The sorted union of two sorted int64 arrays with no value in common, in one linear pass
    over ``seen`` (no sort of the whole, as ``np.union1d`` does)."""
    return np.insert(seen, np.searchsorted(seen, new), new)
