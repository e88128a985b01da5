"""Run each document through the rules of its kind, in parallel, and account for every change.

A document is source code when its ``kind`` field says so (set by the download stage's reader:
pretrain.sources.kinds) or its ``source`` is in ``clean.code_sources``; it then goes through
``clean.code_filters``, any other document (prose, and HTML, which ``html_to_text`` turns into
prose first) through ``clean.filters``. A document table without the ``kind`` column (written
before it existed) stops the stage, naming the file: guessing the kind from the id again would
send the code of a WARC record or a JSON lines record through the prose rules unseen. Rules run in the listed order; the first filter
that drops a document names the reason, and a modifier that leaves no text drops it as
``<modifier>.empty``; every filter drops a blank text as ``empty`` too, so a document blank
from the start is dropped as ``empty`` by the first rule that sees it (``whitespace.empty`` with
the default rules, whose whitespace modifier strips "  " to nothing).

Each shard of the input is one task on the executor (pretrain.executor): shard i of data/clean
holds the kept documents of shard i of data/raw, in order, and the counts of every shard are
added up in shard order, so the output and every count are the same for any executor and any
number of workers. A task's memory depends on its shard, not on the corpus.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any, NamedTuple, Optional

from pretrain.clean.course import LanguageFilter
from pretrain.clean.registry import FILTERS, Rule, check_names
from pretrain.clean.report import Tally
from pretrain.config.clean import CleanConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.errors import LOW_YIELD, DataError
from pretrain.executor.shards import Shard, run_shards, stage_key, work_folder
from pretrain.sources.kinds import KINDS
from pretrain.io import (
    DocumentWriter,
    atomic_path,
    document_shards,
    iter_documents,
    place,
    read_schema,
    shard_name,
    write_json,
    write_json_list,
)



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
    """"code" or "prose": the rules a document goes through (see the module docstring).
    Raises DataError for a kind no reader writes."""
    kind = doc["kind"]
    if kind not in KINDS:
        raise DataError(f"document {doc['id']!r}: kind {kind!r} is none of {', '.join(KINDS)}")
    return "code" if kind == "code" or doc["source"] in cfg.code_sources else "prose"


def check_kind_column(shards: list[Path]) -> None:
    """Raise DataError naming the first shard without the ``kind`` column (see the module
    docstring); only the footers are read."""
    for shard in shards:
        if "kind" not in read_schema(shard).names:
            raise DataError(f"{shard}: no 'kind' column (written before documents had a kind); "
                            "rerun the download stage (dvc repro download)")


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


def cleaner_for(cfg: CleanConfig) -> Cleaner:
    """This process's Cleaner for ``cfg``, built once (the fastText model loads in a second)."""
    global _cleaner
    if _cleaner is None or _cleaner.cfg != cfg:
        _cleaner = Cleaner(cfg)
    return _cleaner


def clean_shard(cfg: CleanConfig, shard: Shard) -> dict[str, Any]:
    """One shard task: the kept documents of ``shard.source``, in order, to
    ``part-NNNNN.parquet`` and one score per document to ``part-NNNNN.scores.json`` in the work
    folder; returns the shard's accounting (Tally.state)."""
    cleaner, tally = cleaner_for(cfg), Tally(cfg.samples_per_reason)
    with DocumentWriter(shard.output(".parquet")) as writer:
        for doc in iter_documents(shard.source):
            outcome = cleaner(doc)
            tally.add(outcome)
            if outcome.reason is None:
                writer.write(outcome.doc)
    write_json(shard.output(".scores.json"), tally.scores)
    return tally.state()


def clean(cfg: CleanConfig, executor: ExecutorConfig, src: Path, out_dir: Path, work_root: Path,
          scores_path: Optional[Path] = None) -> dict[str, Any]:
    """Clean the shards of ``src`` into the shards of ``out_dir`` (shard i from shard i; dropped
    samples beside them), one task per shard on ``executor`` with its work and completion
    markers in ``work_root`` (pretrain.executor.shards); write the per-document scores to
    ``scores_path`` and return the report, with ``warnings`` (one line) when the rules kept
    under ``LOW_YIELD`` of the documents. Raises DataError when they drop every document."""
    check_names(cfg.filters)
    check_names(cfg.code_filters, key="code_filters")
    shards = document_shards(src)
    check_kind_column(shards)
    work = work_folder(work_root, stage_key("clean", cfg))
    states = run_shards(executor, "clean", functools.partial(clean_shard, cfg), shards, work)
    tally = Tally.merged(states, cfg.samples_per_reason)
    if tally.documents_in and not tally.documents_out:
        raise DataError(tally.all_dropped_message())
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for i in range(len(shards)):
            place(work / f"part-{i:05d}.parquet", tmp / shard_name(i))
        tally.write_samples(tmp / "dropped_samples.jsonl")
    if scores_path is not None:
        write_json_list(scores_path, [work / f"part-{i:05d}.scores.json" for i in range(len(shards))])
    shutil.rmtree(work)
    report = tally.report()
    warning = tally.low_yield_warning(LOW_YIELD, out_dir / "dropped_samples.jsonl")
    return {**report, "warnings": [warning]} if warning else report
