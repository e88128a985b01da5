"""Cleaning speed: pretrain's Gopher quality + repetition rules against datatrove's, side by side.

Both run on the same documents, in one process, one after the other on the same core, with the
same thresholds (Gopher's, the defaults of both) and in the same order (repetition, then quality
on the documents repetition kept, as FineWeb runs them). datatrove splits words with spaCy's
blank English tokenizer (its default for English; spaCy's blank pipeline needs no downloaded
model), pretrain with its own regular expressions (pretrain.words). Each side gets the texts
already in memory (datatrove's Document objects are built before its clock starts), its word
cache is cleared before each pass, and the best of ``--repeats`` passes counts (the machine is
shared: other processes slow both sides alike, so read the ratio, not the absolute numbers).

Printed: documents/s and MB/s (UTF-8) of each, the speed ratio, the fraction of identical
keep/drop decisions, and the documents they disagree on, with both reasons. Then the whole clean
stage (pretrain.clean.clean with the default params: every rule, Parquet in and out) with one
worker process and with one per core, to show what the parallel workers gain.

Environment (datatrove and spaCy are benchmark-only):
    python3 -m venv /tmp/venvs/bench-clean
    /tmp/venvs/bench-clean/bin/pip install -r benchmarks/requirements-clean.txt
    /tmp/venvs/bench-clean/bin/pip install --no-deps -e .
    /tmp/venvs/bench-clean/bin/python benchmarks/clean_speed.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

from pretrain.clean import clean
from pretrain.config import CleanConfig, DownloadConfig, GopherQualityConfig, GopherRepetitionConfig
from pretrain.gopher import GopherQualityFilter, GopherRepetitionFilter
from pretrain.io import DocumentWriter, iter_documents as read_table
from pretrain.records import Skipped
from pretrain.sources import iter_documents as builtin_documents
from pretrain.words import split_words


def load(path: Path | None) -> list[dict]:
    """The documents of a Parquet table, or the built-in corpus (download's default parts)."""
    if path is not None:
        return list(read_table(path))
    return list(builtin_documents(DownloadConfig(), Skipped()))


def ours(texts: list[str]) -> list[tuple[bool, str | None]]:
    rules = [GopherRepetitionFilter(GopherRepetitionConfig()), GopherQualityFilter(GopherQualityConfig())]
    split_words.cache_clear()
    return [first_drop(rules, text) for text in texts]


def first_drop(rules, doc) -> tuple[bool, str | None]:
    for rule in rules:
        result = rule.filter(doc)
        keep, reason = result if isinstance(result, tuple) else (result, None)
        if not keep:
            return False, f"{type(rule).__name__}.{reason}"
    return True, None


def datatrove_runner(texts: list[str]) -> Callable[[], list]:
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter as DQ, GopherRepetitionFilter as DR
    from datatrove.utils.text import split_into_parts

    rules = [DR(), DQ()]
    docs = [Document(text=text, id=str(i)) for i, text in enumerate(texts)]
    first_drop(rules, docs[0])  # loads spaCy before the clock starts

    def run() -> list:
        split_into_parts.cache_clear()
        return [first_drop(rules, doc) for doc in docs]

    return run


def same_words(texts: list[str]) -> int:
    """Documents whose words pretrain.words splits exactly as datatrove's spaCy tokenizer does."""
    from datatrove.utils.text import split_into_words

    return sum(split_into_words(text) == split_words(text) for text in texts)


def best_time(run: Callable[[], list], repeats: int) -> tuple[float, list]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def stage_times(docs: list[dict], megabytes: float) -> None:
    """The whole clean stage on ``docs``, with 1 worker and with one per core."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "raw.parquet"
        with DocumentWriter(src) as writer:
            for doc in docs:
                writer.write({"source": "files", "provenance": "", **doc})
        times = {}
        for workers in sorted({1, os.cpu_count() or 1}):
            start = time.perf_counter()
            clean(CleanConfig(workers=workers), src, Path(tmp) / f"clean{workers}")
            times[workers] = time.perf_counter() - start
            print(f"clean stage, {workers:2d} worker(s): {times[workers]:6.2f} s  "
                  f"{len(docs) / times[workers]:7.1f} docs/s  {megabytes / times[workers]:5.2f} MB/s")
        if len(times) > 1:
            print(f"speed-up with {max(times)} workers: {times[1] / times[max(times)]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="a documents.parquet (default: the built-in corpus)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--show", type=int, default=10, help="disagreements to list")
    parser.add_argument("--no-stage", action="store_true", help="skip the clean-stage timing")
    args = parser.parse_args()
    docs = load(args.input)
    texts = [doc["text"] for doc in docs]
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    print(f"corpus: {len(texts)} documents, {megabytes:.1f} MB"
          f" ({'built-in' if args.input is None else args.input})")
    dt_time, dt_result = best_time(datatrove_runner(texts), args.repeats)
    our_time, our_result = best_time(lambda: ours(texts), args.repeats)
    for name, seconds, result in (("datatrove", dt_time, dt_result), ("pretrain", our_time, our_result)):
        kept = sum(keep for keep, _ in result)
        print(f"{name:10s} {seconds:7.2f} s  {len(texts) / seconds:8.1f} docs/s  "
              f"{megabytes / seconds:6.2f} MB/s  kept {kept}")
    agree = [d[0] == o[0] for d, o in zip(dt_result, our_result)]
    print(f"speed ratio pretrain / datatrove: {dt_time / our_time:.1f}x")
    print(f"identical keep/drop decisions: {sum(agree)} of {len(agree)} "
          f"({100 * sum(agree) / len(agree):.2f}%)")
    print(f"identical word lists (pretrain.words vs spaCy): {same_words(texts)} of {len(texts)}")
    shown = [i for i, same in enumerate(agree) if not same][:args.show]
    for i in shown:
        print(f"  {docs[i]['id']}: datatrove {dt_result[i][1] or 'keep'}, pretrain {our_result[i][1] or 'keep'}")
    if not args.no_stage:
        stage_times(docs, megabytes)


if __name__ == "__main__":
    main()
