"""Run the configured filters over a document table and account for every dropped document."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pretrain.config import CleanConfig
from pretrain.errors import DataError
from pretrain.filters import FILTERS, check_names
from pretrain.io import DocumentWriter, atomic_path, count_rows, iter_documents


def build_filters(cfg: CleanConfig) -> list:
    """Instantiate the filters named in ``cfg.filters``, in order."""
    check_names(cfg.filters)
    return [FILTERS[name](cfg) for name in cfg.filters]


def first_failure(filters: list, text: str) -> str | None:
    """``"<filter>.<reason>"`` of the first filter that drops ``text``, or None to keep it."""
    for flt in filters:
        keep, reason = flt.filter(text)
        if not keep:
            return f"{flt.name}.{reason}"
    return None


def all_dropped_message(dropped: Counter) -> str:
    """The error when the filters leave no document: which filters removed them, and why."""
    reasons = dropped.most_common()
    names = list(dict.fromkeys(reason.split(".")[0] for reason, _ in reasons))
    return (f"clean: the filters dropped all {sum(dropped.values())} documents "
            f"({', '.join(f'{reason}: {n}' for reason, n in reasons)}); loosen "
            f"{', '.join('clean.' + name for name in names)} in params.yaml or take "
            f"{'it' if len(names) == 1 else 'them'} out of clean.filters")


def clean(cfg: CleanConfig, src: Path, out_dir: Path) -> dict[str, Any]:
    """Filter ``src`` into ``out_dir/documents.parquet``; return the report."""
    filters = build_filters(cfg)
    dropped: Counter = Counter()
    samples: dict[str, list] = {}
    stats = Counter()
    by_source: dict[str, Counter] = {}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with DocumentWriter(tmp / "documents.parquet") as writer:
            for doc in tqdm(iter_documents(src), total=count_rows(src), desc="clean", unit="doc"):
                reason = first_failure(filters, doc["text"])
                src_stats = by_source.setdefault(doc["source"], Counter())
                stats["documents_in"] += 1
                stats["chars_in"] += len(doc["text"])
                src_stats["in"] += 1
                if reason is None:
                    writer.write(doc)
                    stats["documents_out"] += 1
                    stats["chars_out"] += len(doc["text"])
                    src_stats["out"] += 1
                else:
                    dropped[reason] += 1
                    bucket = samples.setdefault(reason, [])
                    if len(bucket) < cfg.samples_per_reason:
                        bucket.append({"id": doc["id"], "reason": reason, "text": doc["text"][:2000]})
        with open(tmp / "dropped_samples.jsonl", "w", encoding="utf-8") as handle:
            for reason in sorted(samples):
                for sample in samples[reason]:
                    handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
        if stats["documents_in"] and not stats["documents_out"]:
            raise DataError(all_dropped_message(dropped))
    return {
        **{k: stats[k] for k in ("documents_in", "documents_out", "chars_in", "chars_out")},
        "dropped": dict(sorted(dropped.items())),
        "by_source": {s: dict(c) for s, c in sorted(by_source.items())},
    }
