"""Contamination: the share of an evaluation set's 13-grams (of token ids) that also occur in
the training rows. 13-grams follow GPT-3's contamination study (Brown et al. 2020, C.2), which
counts words; counting tokens of the model's own tokenizer needs no second tokenizer and is
exact for what the model saw."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from pretrain.token_store import PackedRows
from pretrain.tokens.tokenizer import encode_texts

NGRAM = 13


# Odd 64-bit multipliers of a polynomial hash over token ids (uint64 arithmetic wraps around).
_MULTIPLIERS = np.random.default_rng(20201210).integers(1, 2**63, size=NGRAM, dtype=np.uint64) | np.uint64(1)


def ngram_hashes(ids: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """64-bit hashes of every n-gram of a 1-D array of token ids (empty if shorter than n)."""
    ids = np.asarray(ids, dtype=np.uint64)
    if len(ids) < n:
        return np.zeros(0, dtype=np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(ids + np.uint64(1), n)
    with np.errstate(over="ignore"):
        return (windows * _MULTIPLIERS[:n]).sum(axis=1, dtype=np.uint64)


def training_ngrams(rows: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """Sorted unique n-gram hashes of the training rows (n-grams across row ends are left out)."""
    if rows.shape[1] < n or not len(rows):
        return np.zeros(0, dtype=np.uint64)
    parts = []
    for start in range(0, len(rows), 512):  # 512 rows at a time bounds the window array
        windows = np.lib.stride_tricks.sliding_window_view(
            rows[start:start + 512].astype(np.uint64) + np.uint64(1), n, axis=1)
        with np.errstate(over="ignore"):
            parts.append(np.unique((windows * _MULTIPLIERS[:n]).sum(axis=2, dtype=np.uint64)))
    return np.unique(np.concatenate(parts))


def overlap(documents: Iterable[np.ndarray], train: np.ndarray, n: int = NGRAM,
            flag_fraction: float = 0.05) -> dict[str, Any]:
    """How much of an evaluation set's n-grams occur in training; flagged above ``flag_fraction``."""
    total = found = docs = touched = 0
    for ids in documents:
        hashes = ngram_hashes(ids, n)
        if not len(hashes):
            continue
        # ``train`` is sorted and unique: a binary search per n-gram (np.isin re-sorts both).
        hits = train[np.minimum(np.searchsorted(train, hashes), len(train) - 1)] == hashes if len(train) \
            else np.zeros(len(hashes), dtype=bool)
        docs += 1
        total += len(hashes)
        found += int(hits.sum())
        touched += bool(hits.any())
    fraction = found / total if total else 0.0
    return {"documents": docs, "documents_with_overlap": touched, "ngram_overlap": fraction,
            "contaminated": fraction > flag_fraction}


def contamination(data_dir: Path, tokens_dir: Path, tokenizer, general: list[str] | None = None) -> dict[str, Any]:
    """13-gram overlap of each local evaluation set (the held-out files pretrain.tokens.pack
    writes to ``data_dir``, and ``general``) with the training rows of the token store
    ``tokens_dir``. DataError without training rows.

    Memory follows the evaluation sets, not the corpus: their n-gram hashes are collected
    first, then the training rows stream past them a chunk at a time, marking which occur; no
    set of all training n-grams (8 bytes a training token) is built."""
    rows = PackedRows(tokens_dir, "train")  # fails before any work without training rows
    with open(data_dir / "heldout_docs.jsonl", encoding="utf-8") as handle:
        sets = {"heldout_documents": [json.loads(line)["text"] for line in handle]}
    if general:
        sets["general_text"] = general
    mc_path = data_dir / "heldout_mc.jsonl"
    if mc_path.exists():
        with open(mc_path, encoding="utf-8") as handle:
            items = [json.loads(line) for line in handle]
        sets["heldout_multiple_choice"] = [i["context"] + i["choices"][i["label"]] for i in items]
    encoded = {name: [np.asarray(ids) for ids in encode_texts(tokenizer, texts)] for name, texts in sets.items()}
    wanted = np.unique(np.concatenate([np.zeros(0, dtype=np.uint64)]
                                      + [ngram_hashes(ids) for docs in encoded.values() for ids in docs]))
    seen = np.zeros(len(wanted), dtype=bool)
    for chunk in rows.chunks():
        seen |= np.isin(wanted, training_ngrams(chunk), assume_unique=True)
    rows.close()
    return {name: overlap(docs, wanted[seen]) for name, docs in encoded.items()}
