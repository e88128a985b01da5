"""Evaluation sets made from held-out documents, and the contamination check.

* A multiple-choice set: given the start of a held-out document, pick its true continuation
  among continuations cut at the same place from other held-out documents (the model has seen
  none of them). Chance is 1 / choices.
* Contamination: the share of an evaluation set's 13-grams (of token ids) that also occur in
  the training rows. 13-grams follow GPT-3's contamination study (Brown et al. 2020, C.2), which
  counts words; counting tokens of the model's own tokenizer needs no second tokenizer and
  is exact for what the model saw.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow.parquet as pq

from pretrain.errors import ConfigError, DataError

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


def _rank(doc_id: str, salt: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}\0{doc_id}".encode(), digest_size=8).digest(), "big")


def multiple_choice_items(documents: list[tuple[str, list[int]]], tokenizer, context_tokens: int,
                          continuation_tokens: int, choices: int = 4) -> list[dict[str, Any]]:
    """Items {id, context, choices, label}: the true continuation of each long enough held-out
    document among the same span of ``choices - 1`` other documents; order fixed by id hashes."""
    need = context_tokens + continuation_tokens
    long_enough = sorted((d for d in documents if len(d[1]) >= need), key=lambda d: _rank(d[0], "order"))
    if len(long_enough) < choices:
        return []
    spans = [tokenizer.decode(ids[context_tokens:need]) for _, ids in long_enough]
    items = []
    for i, (doc_id, ids) in enumerate(long_enough):
        others = [spans[(i + k) % len(spans)] for k in range(1, choices)]
        label = _rank(doc_id, "label") % choices
        options = others[:label] + [spans[i]] + others[label:]
        if len(set(options)) < choices:
            continue  # two documents continue identically: no right answer to pick
        items.append({"id": doc_id, "context": tokenizer.decode(ids[:context_tokens]),
                      "choices": options, "label": label})
    return items


def is_byte_level(tokenizer) -> bool:
    """Whether the tokenizer is byte-level BPE (GPT-2 style): one token character = one byte."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and '"ByteLevel"' in backend.to_str()


def token_byte_lengths(tokenizer) -> np.ndarray:
    """UTF-8 bytes of text each token id stands for; 0 for special tokens.

    Exact for byte-level BPE, where each character of a token's string is one byte of text.
    For other tokenizers (SentencePiece) it is the length of the token decoded on its own.
    """
    size = len(tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    byte_level = is_byte_level(tokenizer)
    lengths = np.zeros(size, dtype=np.int64)
    for i, token in enumerate(tokens):
        if i in special or token is None:
            continue
        if byte_level and i not in added:
            lengths[i] = len(token)
        else:
            lengths[i] = len(tokenizer.convert_tokens_to_string([token]).encode("utf-8"))
    return lengths


def read_texts(path: str | Path) -> list[str]:
    """Documents of a general-text evaluation set: a JSONL file (``text`` field), a plain-text
    file (one document) or a Parquet file (``text`` column), or a folder of them."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.suffix in READERS) if path.is_dir() else [path]
    if not files or files[0].suffix not in READERS:
        raise ConfigError(f"evaluate.general_text: {path}: expected a .jsonl, .txt or .parquet file "
                          "or a folder of them")
    texts = [text for file in files for text in READERS[file.suffix](file) if text.strip()]
    if not texts:
        raise DataError(f"evaluate.general_text: {path}: no text found")
    return texts


def _jsonl_texts(path: Path) -> list[str]:
    texts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}:{number}: expected a JSON object with a \"text\" string") from None
    return texts


READERS = {
    ".jsonl": _jsonl_texts,
    ".txt": lambda path: [path.read_text(encoding="utf-8", errors="replace")],
    ".parquet": lambda path: pq.read_table(path, columns=["text"]).column(0).to_pylist(),
}


def text_rows(texts: list[str], tokenizer, seq_len: int) -> np.ndarray:
    """Documents tokenized as pack does (BOS, text, EOS, concatenated) and cut into full rows of
    ``seq_len`` tokens; the last partial row is left out."""
    head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    tail = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids: list[int] = []
    for text in texts:
        ids += head + tokenizer(text, add_special_tokens=False)["input_ids"] + tail
    rows = len(ids) // seq_len
    if not rows:
        raise DataError(f"evaluate.general_text: {len(ids)} tokens, fewer than one row of {seq_len}")
    return np.asarray(ids[:rows * seq_len], dtype=np.int64).reshape(rows, seq_len)
