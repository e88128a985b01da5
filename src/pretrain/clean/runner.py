"""Run each document through the rules of its kind, in parallel, and account for every change.

A document is source code when its ``source`` is in ``clean.code_sources`` or its id (a file's
path) ends with one of ``clean.code_extensions``; it then goes through ``clean.code_filters``,
any other document through ``clean.filters``. Rules run in the listed order; the first filter
that drops a document names the reason, and a modifier that leaves no text drops it as
``<modifier>.empty``; every filter drops a blank text as ``empty`` too, so a document blank
from the start is dropped as ``empty`` by the first rule that sees it (``whitespace.empty`` with
the default rules, whose whitespace modifier strips "  " to nothing).

Documents are cleaned in batches by ``clean.workers`` processes and collected in input order,
with at most two batches per worker in flight (memory stays bounded), so the output table and
every count are the same for any number of workers.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Optional

from tqdm import tqdm

from pretrain.clean.course import LanguageFilter
from pretrain.clean.registry import FILTERS, Rule, check_names
from pretrain.clean.report import Tally
from pretrain.config.clean import CleanConfig
from pretrain.errors import DataError
from pretrain.io import (
    DocumentWriter,
    atomic_path,
    count_rows,
    iter_documents,
    worker_count,
    write_json,
)

BATCH_DOCUMENTS = 64
# Builtin parts whose ids name the .py file their text was extracted from: prose, not code.
BUILTIN_PROSE = ("pydoc_topics", "docstrings", "package_docs")


class Outcome(NamedTuple):
    """What cleaning did to one document."""

    doc: dict               # the document with its text as the last rule left it
    kind: str               # "prose" or "code"
    reason: Optional[str]   # "<rule>.<reason>" of the rule that dropped it; None: kept
    modified: tuple         # names of the modifiers that changed its text
    chars_in: int
    words_in: int           # whitespace-separated words
    language: str           # top fastText lid.176 label of the final text, and its score
    score: float


def build_rules(names: list[str], cfg: CleanConfig, key: str = "filters") -> list[Rule]:
    """Instantiate the rules named in ``names``, in order."""
    check_names(names, key=key)
    return [FILTERS[name](cfg) for name in names]


def document_kind(doc: dict, cfg: CleanConfig) -> str:
    """"code" or "prose" (see the module docstring)."""
    if doc["source"] in cfg.code_sources:
        return "code"
    if doc["source"] not in BUILTIN_PROSE and doc["id"].lower().endswith(tuple(cfg.code_extensions)):
        return "code"
    return "prose"


def apply_rules(rules: list[Rule], doc: dict) -> tuple[str, Optional[str], tuple]:
    """Run ``rules`` over the document's text: (final text, drop reason or None, modifiers that
    changed it)."""
    text, modified = doc["text"], []
    for rule in rules:
        if hasattr(rule, "applies_to") and not rule.applies_to(doc):
            continue
        if hasattr(rule, "modify"):
            new = rule.modify(text)
            if new != text:
                modified.append(rule.name)
                text = new
                if not text.strip():
                    return text, f"{rule.name}.empty", tuple(modified)
        else:
            keep, reason = rule.filter(text)
            if not keep:
                return text, f"{rule.name}.{reason}", tuple(modified)
    return text, None, tuple(modified)


class Cleaner:
    """The rules of both kinds, built once per process, and the language scorer."""

    def __init__(self, cfg: CleanConfig):
        self.cfg = cfg
        self.rules = {"prose": build_rules(cfg.filters, cfg),
                      "code": build_rules(cfg.code_filters, cfg, key="code_filters")}
        built = [rule for rules in self.rules.values() for rule in rules]
        # Reuse a configured language filter: the score of a document that reached it is the
        # prediction it made (LanguageFilter.last).
        self.scorer = next((r for r in built if isinstance(r, LanguageFilter)), None) \
            or LanguageFilter(cfg.language)

    def __call__(self, doc: dict) -> Outcome:
        kind = document_kind(doc, self.cfg)
        text, reason, modified = apply_rules(self.rules[kind], doc)
        last_text, prediction = self.scorer.last
        language, score = prediction if last_text is text else self.scorer.predict(text)
        return Outcome({**doc, "text": text}, kind, reason, modified, len(doc["text"]),
                       len(doc["text"].split()), language, round(score, 4))


_cleaner: Optional[Cleaner] = None


def _start_worker(cfg: CleanConfig) -> None:
    global _cleaner
    _cleaner = Cleaner(cfg)


def _clean_batch(docs: list[dict]) -> list[Outcome]:
    return [_cleaner(doc) for doc in docs]


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def clean_documents(cfg: CleanConfig, docs: Iterable[dict], workers: int) -> Iterator[Outcome]:
    """The outcome of every document, in input order, computed by ``workers`` processes (started
    with spawn: a script that calls this needs the ``if __name__ == "__main__":`` guard)."""
    if workers <= 1:
        yield from map(Cleaner(cfg), docs)
        return
    # spawn, not fork: the parent holds pyarrow's threads, which a forked child must not inherit.
    with multiprocessing.get_context("spawn").Pool(workers, _start_worker, (cfg,)) as pool:
        pending: deque = deque()
        for batch in batched(docs, BATCH_DOCUMENTS):
            pending.append(pool.apply_async(_clean_batch, (batch,)))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def clean(cfg: CleanConfig, src: Path, out_dir: Path,
          scores_path: Optional[Path] = None) -> dict[str, Any]:
    """Clean ``src`` into ``out_dir/documents.parquet`` (dropped samples beside it, per-document
    scores to ``scores_path``); return the report."""
    check_names(cfg.filters)
    check_names(cfg.code_filters, key="code_filters")
    workers = worker_count(cfg.workers)
    tally = Tally(cfg.samples_per_reason)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with DocumentWriter(tmp / "documents.parquet") as writer:
            outcomes = clean_documents(cfg, iter_documents(src), workers)
            for outcome in tqdm(outcomes, total=count_rows(src), desc="clean", unit="doc"):
                tally.add(outcome)
                if outcome.reason is None:
                    writer.write(outcome.doc)
        tally.write_samples(tmp / "dropped_samples.jsonl")
        if tally.documents_in and not tally.documents_out:
            raise DataError(tally.all_dropped_message())
    if scores_path is not None:
        write_json(scores_path, tally.scores)
    return tally.report()
