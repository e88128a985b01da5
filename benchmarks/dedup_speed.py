"""Near-duplicate removal: speed, peak memory and accuracy of pretrain.dedup against rensa and datasketch.

Like for like: every contender runs in a fresh process of its own (benchmarks/dedup_contenders.py),
pinned to one core (``--core``, default the last one this process may use), from the same Parquet shards
(``--shard-mb`` MB of text each, as download writes them) to the set of documents it flags, with
the same shingles (lower-cased word 5-grams, words as pretrain.dedup.minhash splits them:
``word_regex()``, one character a word in scripts written without spaces), the same
num_perm / bands / rows, and the same keep-the-first rule: a document is flagged when an earlier
kept document shares an LSH bucket with it and, when ``verify`` is on, the two signatures
estimate a Jaccard similarity >= threshold. Contenders are interleaved, run after run, so that
the other processes of a shared machine slow all of them alike; ratios are the median of the
per-run (paired) ratios.

- ours: ``pretrain.dedup.runner.dedup`` on the local executor with 1 worker (every task in the
  contender's own process): each shard read and hashed in slices (keys, signatures and band keys written to
  disk, exact deduplication and NFC/whitespace normalisation included), the bucket step,
  clustering, each shard's kept rows written back to Parquet.
- rensa: the shards' texts read into memory, then ``RMinHash.update`` per document +
  ``RMinHashLSH`` query/insert (Rust).
- datasketch: the same, with ``MinHash.bulk`` (numpy over all shingles of a batch) + ``MinHashLSH``.

Printed per contender: the time from the first read of the shards to the flagged set (best of
``--repeats``), the whole process's wall time (interpreter start, imports and, for rensa and
datasketch, building the word regex included), and its peak memory: the high-water resident set
of its process tree (the larger of the process's own VmHWM and of a sum over the tree sampled
every 10 ms, so that worker processes count). A separate line gives our
speed-up with a worker per core (unpinned) over our one worker, and whether both flag the same
documents.

Corpora (``--corpora``): ``builtin`` (pretrain.sources' default parts), ``builtin+tests`` (the
same with ``include_tests``: the standard library's test suites too), or ``--corpus`` (a
documents table or shard folder); for each, the corpus itself and a planted set: its documents
that have no near-duplicate among themselves (true Jaccard < 0.5, computed exactly), plus edited
copies of some of those with at least 100 words, inserted after their original, with 1%, 2% or
3% of the words substituted, deleted or followed by an inserted word. Recall: planted copies
flagged / planted copies. Precision: flagged documents that are planted copies / flagged
documents.

Environment (rensa and datasketch are benchmark-only):
    python3 -m venv /tmp/venvs/bench-dedup
    /tmp/venvs/bench-dedup/bin/pip install -r benchmarks/requirements-dedup.txt
    /tmp/venvs/bench-dedup/bin/pip install --no-deps -e .
    /tmp/venvs/bench-dedup/bin/python benchmarks/dedup_speed.py --corpora builtin builtin+tests
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from dedup_contenders import shingles, word
from machine import machine

from pretrain.config.dedup import DedupConfig
from pretrain.config.sources import DownloadConfig
from pretrain.io import ShardedDocumentWriter, iter_documents, worker_count
from pretrain.sources.download import download

TOKEN = re.compile(f"({word().pattern})")
RATES = (0.01, 0.02, 0.03)
CORPORA = {"builtin": False, "builtin+tests": True}
"""The built-in corpora by name, and whether each has the standard library's test suites."""
MIN_WORDS = 100
"""Only documents this long get a planted copy: in a 10-word text one edit is 10% of it."""


# --- corpora -------------------------------------------------------------------------------------


def builtin_texts(tmp: Path, corpus: str | Path) -> list[tuple[str, str]]:
    """The built-in corpus (``builtin``), with the standard library's tests (``builtin+tests``),
    or the documents table or shard folder ``corpus``, as (id, text) pairs."""
    if corpus in CORPORA:
        download(DownloadConfig(include_tests=CORPORA[corpus]), tmp / "raw")
        corpus = tmp / "raw"
    docs = [(d["id"], d["text"]) for d in iter_documents(corpus)]
    shutil.rmtree(tmp / "raw", ignore_errors=True)
    return docs


def exact_jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def distinct_base(docs: list[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """Documents with at least 2n words whose true shingle Jaccard with every earlier kept one is
    below 0.5 (an inverted index finds the pairs that share any shingle)."""
    kept, sets, index = [], [], defaultdict(list)
    for doc_id, text in docs:
        shingle_set = set(shingles(text, n))
        if len(shingle_set) < n:
            continue
        shared = defaultdict(int)
        for s in shingle_set:
            for j in index.get(s, ()):
                shared[j] += 1
        if any(c / (len(shingle_set) + len(sets[j]) - c) >= 0.5 for j, c in shared.items()):
            continue
        for s in shingle_set:
            index[s].append(len(sets))
        kept.append((doc_id, text))
        sets.append(shingle_set)
    return kept


def edit(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    """``text`` with each word, with probability ``rate``, substituted, deleted or followed by
    an inserted word (equally likely); separators are left as they are."""
    parts = TOKEN.split(text)
    for i in range(1, len(parts), 2):
        if rng.random() < rate:
            kind = rng.randrange(3)
            parts[i] = (rng.choice(vocab) if kind == 0 else "" if kind == 1
                        else f"{parts[i]} {rng.choice(vocab)}")
    return "".join(parts)


def planted(base: list[tuple[str, str]], copies: int, seed: int, n: int):
    """(documents, ids of planted copies, {rate: [true Jaccard of each copy]})."""
    rng = random.Random(seed)
    vocab = sorted({w for _, t in base[:200] for w in word().findall(t)})
    docs = list(base)
    truth, jaccards = set(), defaultdict(list)
    long_enough = [d for d in base if len(word().findall(d[1])) >= MIN_WORDS]
    for k, (doc_id, text) in enumerate(rng.sample(long_enough, copies)):
        rate = RATES[k % len(RATES)]
        copy = edit(text, rate, rng, vocab)
        copy_id = f"{doc_id}#copy{k}"
        position = docs.index((doc_id, text))
        docs.insert(rng.randint(position + 1, len(docs)), (copy_id, copy))
        truth.add(copy_id)
        jaccards[rate].append(exact_jaccard(set(shingles(text, n)), set(shingles(copy, n))))
    return docs, truth, jaccards


# --- one contender in its own process -------------------------------------------------------------

HERE = Path(__file__).resolve().parent


def tree_rss(pid: int) -> int:
    """Resident set of process ``pid`` and all its descendants, in bytes (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as handle:
                    todo += [int(c) for c in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run(name: str, shards: Path, workers: int, core: int | None) -> dict:
    """Contender ``name`` in a fresh process (pinned to ``core`` unless None): its flagged ids,
    its timed ``seconds``, the process's ``wall`` seconds and its tree's ``peak`` RSS (MiB)."""
    result = shards.parent / "result.json"
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / "dedup_contenders.py"), name, str(shards), str(result),
                             str(workers), *([] if core is None else [str(core)])], stderr=subprocess.DEVNULL)
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status = os.waitpid(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{name} failed with exit code {proc.returncode}")
    out = json.loads(result.read_text())
    return {"flagged": set(out["flagged"]), "seconds": out["seconds"], "wall": wall,
            "peak": max(out["peak"], peak[0]) / 2**20}


# --- report --------------------------------------------------------------------------------------


def accuracy(flagged: set, truth: set) -> str:
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 1.0
    return f"recall {hits / len(truth):.3f} precision {precision:.3f}"


def compare(name: str, docs, tmp: Path, truth: set | None, args) -> None:
    """Every contender on ``docs``, written as Parquet shards, ``args.repeats`` times interleaved."""
    shards = tmp / "in"
    shutil.rmtree(shards, ignore_errors=True)
    with ShardedDocumentWriter(shards, round(args.shard_mb * 1e6)) as writer:
        for doc_id, text in docs:
            writer.write({"id": doc_id, "text": text, "source": "bench", "provenance": "bench"})
    megabytes = sum(len(t.encode("utf-8")) for _, t in docs) / 1e6
    count = len(list(shards.glob("part-*.parquet")))
    cores = worker_count(0)
    print(f"\n{name}: {len(docs)} documents, {megabytes:.1f} MB of text in {count} shards of {args.shard_mb:g} MB; "
          f"best of {args.repeats} interleaved runs, each in a fresh process")
    contenders = {"ours, 1 worker": ("ours", 1, args.core),
                  "rensa 0.5 (RMinHash + RMinHashLSH)": ("rensa", 1, args.core),
                  "datasketch 2.0 (MinHash.bulk + MinHashLSH)": ("datasketch", 1, args.core),
                  f"ours, {cores} workers (all cores, unpinned)": ("ours", cores, None)}
    runs = defaultdict(list)
    for _ in range(args.repeats):
        for label, (contender, workers, core) in contenders.items():
            runs[label].append(run(contender, shards, workers, core))
    ours = runs["ours, 1 worker"]
    print(f"  {'one core each (core ' + str(args.core) + ')':44s} {'seconds':>8s} {'MB/s':>6s} {'process s':>9s} "
          f"{'peak MiB':>8s} {'this/ours':>9s}  flagged")
    for label, results in runs.items():
        if label.startswith(f"ours, {cores} workers"):
            continue
        best = min(r["seconds"] for r in results)
        ratio = statistics.median(r["seconds"] / o["seconds"] for r, o in zip(results, ours))
        flagged = results[0]["flagged"]
        print(f"  {label:44s} {best:8.2f} {megabytes / best:6.1f} {min(r['wall'] for r in results):9.2f} "
              f"{max(r['peak'] for r in results):8.0f} {ratio:8.2f}x  {len(flagged)}"
              + (f"  {accuracy(flagged, truth)}" if truth is not None else ""))
    many = runs[f"ours, {cores} workers (all cores, unpinned)"]
    same = all(r["flagged"] == ours[0]["flagged"] for r in many + ours)
    print(f"  ours, {cores} workers against ours, 1 worker: {min(r['seconds'] for r in many):.2f} s, speed-up "
          f"{statistics.median(o['seconds'] / r['seconds'] for r, o in zip(many, ours)):.2f}x, peak "
          f"{max(r['peak'] for r in many):.0f} MiB; same documents flagged: {'yes' if same else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=["builtin"], choices=list(CORPORA))
    parser.add_argument("--corpus", type=Path, help="a documents table or shard folder instead of --corpora")
    parser.add_argument("--copies", type=int, default=600, help="planted near-duplicates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--core", type=int, default=max(os.sched_getaffinity(0)),
                        help="the core every one-process contender is pinned to")
    parser.add_argument("--shard-mb", type=float, default=DownloadConfig().shard_mb,
                        help="MB of text per input shard (default: download.shard_mb's default)")
    args = parser.parse_args()
    cfg = DedupConfig()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M')}; load average {os.getloadavg()[0]:.1f}")
    print(f"dedup params: ngram {cfg.ngram}, num_perm {cfg.num_perm} = {cfg.bands} bands x {cfg.rows} rows, "
          f"threshold {cfg.threshold}, verify {cfg.verify}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for corpus in [args.corpus] if args.corpus else args.corpora:
            docs = builtin_texts(tmp, corpus)
            compare(f"{corpus} corpus", docs, tmp, None, args)
            base = distinct_base(docs, cfg.ngram)
            docs, truth, jaccards = planted(base, args.copies, args.seed, cfg.ngram)
            for rate, values in jaccards.items():
                print(f"planted copies with {rate:.0%} of words edited: {len(values)}, true Jaccard "
                      f"min {min(values):.3f} mean {sum(values) / len(values):.3f}")
            compare(f"{corpus}, planted set ({len(base)} distinct documents + {len(truth)} edited copies)",
                    docs, tmp, truth, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
