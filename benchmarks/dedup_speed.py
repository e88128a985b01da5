"""Near-duplicate removal: throughput and accuracy of pretrain.dedup against rensa and datasketch.

Every contender runs end to end from the document texts, shingling included, with the same
shingles (lower-cased word 5-grams, words as pretrain.dedup.minhash splits them: ``word_regex()``,
one character a word in scripts written without spaces), the same
num_perm / bands / rows, and the same keep-the-first rule: a document is flagged when an earlier
kept document shares an LSH bucket with it and, when ``verify`` is on, the two signatures
estimate a Jaccard similarity >= threshold.

- ours: ``pretrain.dedup.runner.dedup`` on a folder of Parquet shards (``--shard-mb`` MB of text
  each, as download writes them), on the local executor with 1 worker and with every core,
  timed whole: one task per shard reading the text and writing keys, signatures and band keys
  (exact deduplication, NFC/whitespace normalisation), the bucket step, clustering, one task per
  shard writing the kept rows, worker processes started for each step included. The others
  start from texts already in memory and do no exact deduplication, so the comparison favours
  them.
- rensa: ``RMinHash.update`` per document + ``RMinHashLSH`` query/insert (Rust; one process).
- datasketch: ``MinHash.bulk`` (numpy over all shingles of a batch) + ``MinHashLSH``.

Corpora: the built-in corpus (pretrain.sources' default parts) and a planted set: the built-in
documents that have no near-duplicate among themselves (true Jaccard < 0.5, computed exactly),
plus edited copies of some of those with at least 100 words, inserted after their original, with 1%, 2% or 3% of the
words substituted, deleted or followed by an inserted word. Recall: planted copies flagged /
planted copies. Precision: flagged documents that are planted copies / flagged documents.

Environment (rensa and datasketch are benchmark-only):
    python3 -m venv /tmp/venvs/bench-dedup
    /tmp/venvs/bench-dedup/bin/pip install -r benchmarks/requirements-dedup.txt
    /tmp/venvs/bench-dedup/bin/pip install --no-deps -e .
    /tmp/venvs/bench-dedup/bin/python benchmarks/dedup_speed.py
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

from pretrain.config.dedup import DedupConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.config.sources import DownloadConfig
from pretrain.dedup.minhash import word_regex
from pretrain.dedup.runner import dedup
from pretrain.io import ShardedDocumentWriter, iter_documents, worker_count
from pretrain.sources.download import download

WORD = word_regex()  # pretrain.dedup.minhash's words, as a regular expression
TOKEN = re.compile(f"({WORD.pattern})")
RATES = (0.01, 0.02, 0.03)
MIN_WORDS = 100
"""Only documents this long get a planted copy: in a 10-word text one edit is 10% of it."""


def shingles(text: str, n: int) -> list[str]:
    """The word n-grams pretrain.dedup.minhash hashes, as strings (for rensa and datasketch)."""
    words = WORD.findall(unicodedata.normalize("NFC", text).lower())  # as pretrain.dedup does
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


# --- corpora -------------------------------------------------------------------------------------


def builtin_texts(tmp: Path, corpus: Path | None) -> list[tuple[str, str]]:
    """The built-in corpus (or the documents table or shard folder ``corpus``) as (id, text) pairs."""
    if corpus is None:
        download(DownloadConfig(), tmp / "raw")
        corpus = tmp / "raw"
    return [(d["id"], d["text"]) for d in iter_documents(corpus)]


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
    vocab = sorted({w for _, t in base[:200] for w in WORD.findall(t)})
    docs = list(base)
    truth, jaccards = set(), defaultdict(list)
    long_enough = [d for d in base if len(WORD.findall(d[1])) >= MIN_WORDS]
    for k, (doc_id, text) in enumerate(rng.sample(long_enough, copies)):
        rate = RATES[k % len(RATES)]
        copy = edit(text, rate, rng, vocab)
        copy_id = f"{doc_id}#copy{k}"
        position = docs.index((doc_id, text))
        docs.insert(rng.randint(position + 1, len(docs)), (copy_id, copy))
        truth.add(copy_id)
        jaccards[rate].append(exact_jaccard(set(shingles(text, n)), set(shingles(copy, n))))
    return docs, truth, jaccards


# --- contenders ----------------------------------------------------------------------------------


def run_ours(docs, cfg: DedupConfig, executor: ExecutorConfig, shard_mb: float, tmp: Path) -> tuple[set, float]:
    src = tmp / "in"
    shutil.rmtree(src, ignore_errors=True)
    with ShardedDocumentWriter(src, round(shard_mb * 1e6)) as writer:
        for doc_id, text in docs:
            writer.write({"id": doc_id, "text": text, "source": "bench", "provenance": "bench"})
    start = time.perf_counter()
    dedup(cfg, executor, src, tmp / "out", tmp / "work")
    seconds = time.perf_counter() - start
    kept = {d["id"] for d in iter_documents(tmp / "out")}
    return {doc_id for doc_id, _ in docs} - kept, seconds


def run_rensa(docs, cfg: DedupConfig) -> tuple[set, float]:
    from rensa import RMinHash, RMinHashLSH

    start = time.perf_counter()
    lsh = RMinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, num_bands=cfg.bands)
    kept, flagged = {}, set()
    for i, (doc_id, text) in enumerate(docs):
        m = RMinHash(num_perm=cfg.num_perm, seed=cfg.seed)
        m.update(shingles(text, cfg.ngram))
        if any(not cfg.verify or m.jaccard(kept[j]) >= cfg.threshold for j in lsh.query(m)):
            flagged.add(doc_id)
        else:
            lsh.insert(i, m)
            kept[i] = m
    return flagged, time.perf_counter() - start


def run_datasketch(docs, cfg: DedupConfig, batch: int = 256) -> tuple[set, float]:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(num_perm=cfg.num_perm, params=(cfg.bands, cfg.rows))
    kept, flagged = {}, set()
    for lo in range(0, len(docs), batch):
        part = docs[lo : lo + batch]
        sets = [[s.encode("utf-8") for s in shingles(text, cfg.ngram)] for _, text in part]
        for (doc_id, _), m in zip(part, MinHash.bulk(sets, num_perm=cfg.num_perm, seed=cfg.seed)):
            if any(not cfg.verify or m.jaccard(kept[j]) >= cfg.threshold for j in lsh.query(m)):
                flagged.add(doc_id)
            else:
                lsh.insert(doc_id, m)
                kept[doc_id] = m
    return flagged, time.perf_counter() - start


# --- report --------------------------------------------------------------------------------------


def accuracy(flagged: set, truth: set) -> str:
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 1.0
    return f"recall {hits / len(truth):.3f} precision {precision:.3f} ({len(flagged)} flagged)"


def compare(name: str, docs, cfg: DedupConfig, tmp: Path, truth: set | None, repeats: int,
            shard_mb: float) -> None:
    megabytes = sum(len(t.encode("utf-8")) for _, t in docs) / 1e6
    print(f"\n{name}: {len(docs)} documents, {megabytes:.1f} MB in shards of {shard_mb:g} MB; best of {repeats} runs")
    contenders = {
        f"ours, {worker_count(0)} workers": lambda: run_ours(docs, cfg, ExecutorConfig(), shard_mb, tmp),
        "ours, 1 worker": lambda: run_ours(docs, cfg, ExecutorConfig(workers=1), shard_mb, tmp),
        "rensa 0.5 (RMinHash + RMinHashLSH)": lambda: run_rensa(docs, cfg),
        "datasketch 2.0 (MinHash.bulk + MinHashLSH)": lambda: run_datasketch(docs, cfg),
    }
    results = {}
    for _ in range(repeats):  # interleaved, so that load from other processes hits all alike
        for label, run in contenders.items():
            flagged, seconds = run()
            best = results.get(label, (None, float("inf")))[1]
            results[label] = (flagged, min(seconds, best))
    ours = results[next(iter(contenders))][1]
    print(f"  ours: {len(list((tmp / 'in').glob('part-*.parquet')))} input shards")
    for label, (flagged, seconds) in results.items():
        line = (f"  {label:44s} {len(docs) / seconds:9.0f} docs/s {megabytes / seconds:7.1f} MB/s  "
                f"ours/this {seconds / ours:5.2f}x")
        print(line + (f"  {accuracy(flagged, truth)}" if truth is not None else f"  {len(flagged)} flagged"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=600, help="planted near-duplicates")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, help="a documents table or shard folder instead of the built-in corpus")
    parser.add_argument("--shard-mb", type=float, default=DownloadConfig().shard_mb,
                        help="MB of text per input shard of ours (default: download.shard_mb's default)")
    args = parser.parse_args()
    cfg = DedupConfig()
    print(f"dedup params: ngram {cfg.ngram}, num_perm {cfg.num_perm} = {cfg.bands} bands x {cfg.rows} rows, "
          f"threshold {cfg.threshold}, verify {cfg.verify}; {worker_count(0)} cores")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        docs = builtin_texts(tmp, args.corpus)
        compare("built-in corpus", docs, cfg, tmp, None, args.repeats, args.shard_mb)
        base = distinct_base(docs, cfg.ngram)
        docs, truth, jaccards = planted(base, args.copies, args.seed, cfg.ngram)
        for rate, values in jaccards.items():
            print(f"planted copies with {rate:.0%} of words edited: {len(values)}, true Jaccard "
                  f"min {min(values):.3f} mean {sum(values) / len(values):.3f}")
        compare(f"planted set ({len(base)} distinct built-in documents + {len(truth)} edited copies)",
                docs, cfg, tmp, truth, args.repeats, args.shard_mb)


if __name__ == "__main__":
    main()
