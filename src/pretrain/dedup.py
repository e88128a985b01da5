"""Exact deduplication: keep the first occurrence (in input order) of each text.

The course deduplicates on the whole text (60,009 documents: 52,327 -> 43,598). With
``normalize`` the comparison ignores Unicode normalisation form and runs of whitespace.
Only 16-byte digests are held in memory, not the texts.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pretrain.config import DedupConfig
from pretrain.io import DocumentWriter, atomic_path, count_rows, iter_documents

WHITESPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped."""
    return WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def digest(text: str, normalized: bool) -> bytes:
    """The key two documents must share to count as duplicates."""
    return hashlib.blake2b((normalize(text) if normalized else text).encode("utf-8"),
                           digest_size=16).digest()


def dedup(cfg: DedupConfig, src: Path, out_dir: Path, samples: int = 20) -> dict[str, Any]:
    """Copy ``src`` to ``out_dir/documents.parquet`` without exact duplicates; return the report."""
    first: dict[bytes, str] = {}
    stats: Counter = Counter()
    removed = []
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with DocumentWriter(tmp / "documents.parquet") as writer:
            for doc in tqdm(iter_documents(src), total=count_rows(src), desc="dedup", unit="doc"):
                key = digest(doc["text"], cfg.normalize)
                stats["documents_in"] += 1
                stats["chars_in"] += len(doc["text"])
                if key in first:
                    stats["duplicates_removed"] += 1
                    if len(removed) < samples:
                        removed.append({"removed": doc["id"], "kept": first[key]})
                    continue
                first[key] = doc["id"]
                writer.write(doc)
                stats["documents_out"] += 1
                stats["chars_out"] += len(doc["text"])
        with open(tmp / "removed_samples.jsonl", "w", encoding="utf-8") as handle:
            for pair in removed:
                handle.write(json.dumps(pair) + "\n")
    return {k: stats[k] for k in ("documents_in", "documents_out", "duplicates_removed",
                                  "chars_in", "chars_out")}
