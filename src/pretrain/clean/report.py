"""The clean stage's accounting: counts in and out, drops by reason, changes by modifier, samples
of dropped documents and one score per document, all gathered in input order."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from pretrain.clean.registry import FILTERS

SAMPLE_CHARS = 2000
KIND_KEYS = {"prose": "clean.filters", "code": "clean.code_filters"}


class Tally:
    """Accumulates outcomes (pretrain.clean.runner.Outcome) into the report."""

    def __init__(self, samples_per_reason: int):
        self.samples_per_reason = samples_per_reason
        self.totals: Counter = Counter()
        self.dropped: Counter = Counter()
        self.dropped_by_kind: dict[str, Counter] = {}
        self.modified: Counter = Counter()
        self.by_kind: dict[str, Counter] = {}
        self.by_source: dict[str, Counter] = {}
        self.samples: dict[str, list] = {}
        self.scores: list[dict] = []

    @property
    def documents_in(self) -> int:
        return self.totals["documents_in"]

    @property
    def documents_out(self) -> int:
        return self.totals["documents_out"]

    def add(self, outcome) -> None:
        doc, kept = outcome.doc, outcome.reason is None
        self.totals.update(documents_in=1, chars_in=outcome.chars_in, words_in=outcome.words_in)
        self.modified.update(outcome.modified)
        for counts in (self.by_kind.setdefault(outcome.kind, Counter()),
                       self.by_source.setdefault(doc["source"], Counter())):
            counts.update(**{"in": 1, "out": int(kept)})
        if kept:
            self.totals.update(documents_out=1, chars_out=len(doc["text"]),
                               words_out=len(doc["text"].split()))
        else:
            self.dropped[outcome.reason] += 1
            self.dropped_by_kind.setdefault(outcome.kind, Counter())[outcome.reason] += 1
            bucket = self.samples.setdefault(outcome.reason, [])
            if len(bucket) < self.samples_per_reason:
                bucket.append({"id": doc["id"], "reason": outcome.reason, "kind": outcome.kind,
                               "text": doc["text"][:SAMPLE_CHARS]})
        self.scores.append({"id": doc["id"], "kind": outcome.kind, "language": outcome.language,
                            "language_score": outcome.score, "kept": kept,
                            "chars_in": outcome.chars_in, "chars_out": len(doc["text"]) if kept else 0})

    FIELDS = ("totals", "dropped", "dropped_by_kind", "modified", "by_kind", "by_source", "samples")

    def state(self) -> dict[str, Any]:
        """The counts and samples (not the scores) as plain JSON values, for ``merged``."""
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def merged(cls, states: list[dict[str, Any]], samples_per_reason: int) -> "Tally":
        """The Tally of shards whose ``state()`` are ``states``, in shard order: the same counts
        and samples as one Tally fed every document in that order."""
        tally = cls(samples_per_reason)
        for state in states:
            for name in ("totals", "dropped", "modified"):
                getattr(tally, name).update(state[name])
            for name in ("dropped_by_kind", "by_kind", "by_source"):
                for key, counts in state[name].items():
                    getattr(tally, name).setdefault(key, Counter()).update(counts)
            for reason, samples in state["samples"].items():
                bucket = tally.samples.setdefault(reason, [])
                bucket.extend(samples[: samples_per_reason - len(bucket)])
        return tally

    def report(self) -> dict[str, Any]:
        """The report of metrics/clean.json."""
        keys = ("documents_in", "documents_out", "chars_in", "chars_out", "words_in", "words_out")
        return {
            **{key: self.totals[key] for key in keys},
            "dropped": dict(sorted(self.dropped.items())),
            "modified": dict(sorted(self.modified.items())),
            "by_kind": {kind: {**counts, "dropped": dict(sorted(self.dropped_by_kind.get(kind, {}).items()))}
                        for kind, counts in sorted(self.by_kind.items())},
            "by_source": {s: dict(c) for s, c in sorted(self.by_source.items())},
        }

    def write_samples(self, path: Path) -> None:
        """The kept samples of dropped documents, by reason then input order, as JSON lines."""
        with open(path, "w", encoding="utf-8") as handle:
            for reason in sorted(self.samples):
                for sample in self.samples[reason]:
                    handle.write(json.dumps(sample, ensure_ascii=False) + "\n")

    def reasons(self, top: Optional[int] = None) -> list[tuple[str, int]]:
        """The drop reasons and their counts, most first (ties by name), the first ``top``."""
        return sorted(self.dropped.items(), key=lambda item: (-item[1], item[0]))[:top]

    def all_dropped_message(self) -> str:
        """The error when the rules leave no document: which rules removed them, and why."""
        reasons = self.reasons()
        return (f"clean: the filters dropped all {sum(self.dropped.values())} documents "
                f"({', '.join(f'{reason}: {n}' for reason, n in reasons)}); {self.remedy(reasons)}")

    def low_yield_warning(self, fraction: float, samples: Path) -> Optional[str]:
        """A one-line warning when the rules kept fewer than ``fraction`` of the documents
        (but some): the three reasons that dropped most, with their counts, the file of samples
        to read and the params to loosen if those documents are wanted; None otherwise."""
        kept, total = self.documents_out, self.documents_in
        if not kept or kept >= fraction * total:
            return None
        top = self.reasons(3)
        return (f"clean: kept {kept} of {total} documents ({kept / total:.1%}, under {fraction:.0%}); "
                f"most were dropped as {', '.join(f'{reason}: {n}' for reason, n in top)} (samples "
                f"in {samples}); if those documents are wanted, {self.remedy(top)}")

    def remedy(self, reasons: list[tuple[str, int]]) -> str:
        """What to change in params.yaml against the drops ``reasons``: the rules' sections to
        loosen, or the rule lists to take them out of."""
        names = list(dict.fromkeys(reason.split(".")[0] for reason, _ in reasons))
        sections = dict.fromkeys(f"clean.{FILTERS[name].section or name}" for name in names)
        kinds = [kind for kind, counts in self.dropped_by_kind.items() if any(r in counts for r, _ in reasons)]
        lists = " / ".join(KIND_KEYS[kind] for kind in sorted(kinds, reverse=True))
        return (f"loosen {', '.join(sections)} in params.yaml or take "
                f"{'it' if len(names) == 1 else 'them'} out of {lists}")
