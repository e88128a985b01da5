"""The contenders of benchmarks/dedup_speed.py, one per process: ``python dedup_contenders.py NAME
SHARDS RESULT [WORKERS [CORE]]`` deduplicates the Parquet shards in the folder SHARDS with contender
NAME (``ours``, ``rensa``, ``datasketch``) and writes to RESULT (JSON) the ids it flags and
``seconds``, the time from the first read of the shards to the flagged set, and ``peak``, the
process's own peak resident set in bytes; pinned to CORE when given. Imports only what
its contender needs, so that a process's peak memory and wall time are the contender's own.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import time
import unicodedata
from pathlib import Path


@functools.cache
def word() -> re.Pattern:
    """pretrain.dedup.minhash's words, as a regular expression (built on first use: 0.1 s)."""
    from pretrain.dedup.minhash import word_regex

    return word_regex()


def shingles(text: str, n: int) -> list[str]:
    """The word n-grams pretrain.dedup.minhash hashes, as strings (for rensa and datasketch)."""
    words = word().findall(unicodedata.normalize("NFC", text).lower())  # as pretrain.dedup does
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def read_texts(shards: Path) -> list[tuple[str, str]]:
    """(id, text) of every document of the shards, in order, in memory (as rensa and datasketch
    take them)."""
    import pyarrow.parquet as pq

    docs = []
    for path in sorted(shards.glob("part-*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        docs += zip(table.column("id").to_pylist(), table.column("text").to_pylist())
    return docs


def run_ours(shards: Path, workers: int) -> set[str]:
    import pyarrow.parquet as pq

    from pretrain.config.dedup import DedupConfig
    from pretrain.config.executor import ExecutorConfig
    from pretrain.dedup.runner import dedup

    out, work = shards.parent / f"{shards.name}-out", shards.parent / f"{shards.name}-work"
    dedup(DedupConfig(), ExecutorConfig(workers=workers), shards, out, work)
    def ids(folder: Path) -> set[str]:
        return {i for path in sorted(folder.glob("part-*.parquet"))
                for i in pq.read_table(path, columns=["id"]).column("id").to_pylist()}

    return ids(shards) - ids(out)


def run_rensa(shards: Path, workers: int) -> set[str]:
    from rensa import RMinHash, RMinHashLSH

    from pretrain.config.dedup import DedupConfig

    cfg = DedupConfig()
    lsh = RMinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, num_bands=cfg.bands)
    kept, flagged = {}, set()
    for i, (doc_id, text) in enumerate(read_texts(shards)):
        m = RMinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update(shingles(text, cfg.ngram))
        if any(not cfg.verify or m.jaccard(kept[j]) >= cfg.threshold for j in lsh.query(m)):
            flagged.add(doc_id)
        else:
            lsh.insert(i, m)
            kept[i] = m
    return flagged


def run_datasketch(shards: Path, workers: int, batch: int = 256) -> set[str]:
    from datasketch import MinHash, MinHashLSH

    from pretrain.config.dedup import DedupConfig

    cfg = DedupConfig()
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows))
    kept, flagged = {}, set()
    docs = read_texts(shards)
    for lo in range(0, len(docs), batch):
        part = docs[lo : lo + batch]
        sets = [[s.encode("utf-8") for s in shingles(text, cfg.ngram)] for _, text in part]
        for (doc_id, _), m in zip(part, MinHash.bulk(sets, num_perm=cfg.num_perm, seed=cfg.seed)):
            if any(not cfg.verify or m.jaccard(kept[j]) >= cfg.threshold for j in lsh.query(m)):
                flagged.add(doc_id)
            else:
                lsh.insert(doc_id, m)
                kept[doc_id] = m
    return flagged


CONTENDERS = {"ours": run_ours, "rensa": run_rensa, "datasketch": run_datasketch}
IMPORTS = {"ours": ["pretrain.dedup.runner"], "rensa": ["rensa"], "datasketch": ["datasketch"]}
"""Imported before the clock starts (the whole process's wall time counts them)."""


def main() -> None:
    name, shards, result = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if len(sys.argv) > 5:  # pinned here, not by the parent between fork and exec (see high_water)
        os.sched_setaffinity(0, {int(sys.argv[5])})
    for module in ["pyarrow.parquet", "pretrain.config.dedup", *IMPORTS[name]]:
        importlib.import_module(module)
    if name != "ours":
        word()  # the benchmark's stand-in for a regex the user would write: not timed
    start = time.perf_counter()
    flagged = CONTENDERS[name](shards, workers)
    seconds = time.perf_counter() - start
    result.write_text(json.dumps({"seconds": seconds, "peak": high_water(), "flagged": sorted(flagged)}))


def high_water() -> int:
    """This process's peak resident set (VmHWM, bytes). Not getrusage's ``ru_maxrss`` seen from
    the parent: a child's starts at its parent's resident set at fork time and survives exec
    (Linux), so it would report the benchmark's own memory."""
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


if __name__ == "__main__":
    main()
