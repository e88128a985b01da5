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
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow.parquet as pq

from pretrain.errors import ConfigError, DataError
from pretrain.tokenizer import document_ids

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


def split_at_tokens(tokenizer, text: str, context_tokens: int,
                    continuation_tokens: int) -> tuple[str, str] | None:
    """``(context, continuation)``: the text of a document's first ``context_tokens`` tokens and
    of the ``continuation_tokens`` after them, or None when the document is shorter.

    Cut by the tokens' character offsets in ``text``, not by decoding token spans: a byte-level
    BPE can split one character (é, 日, an emoji) between two tokens, and decoding either half
    gives U+FFFD. A character split at a cut goes wholly to the continuation, so both parts are
    exact substrings of ``text`` and ``context + continuation`` is a prefix of it. The cut lies
    where the token before it ends (or the next one starts, if earlier), so the space before a
    word goes with the word also for tokenizers that trim it from their offsets (RoBERTa's
    ``trim_offsets``). Needs a fast (Rust-backed) tokenizer, which ``AutoTokenizer`` returns.
    """
    offsets = tokenizer(text, add_special_tokens=False, split_special_tokens=True,
                        return_offsets_mapping=True)["offset_mapping"]
    need = context_tokens + continuation_tokens
    if len(offsets) < need:
        return None
    cut = _boundary(offsets, context_tokens)
    end = _boundary(offsets, need) if len(offsets) > need else len(text)
    if not 0 < cut < end:
        return None
    return text[:cut], text[cut:end]


def _boundary(offsets: list[tuple[int, int]], index: int) -> int:
    """The character position between token ``index - 1`` and token ``index``."""
    return min(offsets[index - 1][1], offsets[index][0])


def multiple_choice_items(documents: list[tuple[str, str, str]],
                          choices: int = 4) -> list[dict[str, Any]]:
    """Items {id, context, choices, label} from ``(id, context, continuation)`` triples of
    held-out documents (``split_at_tokens``): the true continuation of each among the
    continuations of ``choices - 1`` other documents; order fixed by id hashes. Empty when fewer
    than ``choices`` documents are given."""
    ranked = sorted(documents, key=lambda d: _rank(d[0], "order"))
    if len(ranked) < choices:
        return []
    items = []
    for i, (doc_id, context, continuation) in enumerate(ranked):
        others = [ranked[(i + k) % len(ranked)][2] for k in range(1, choices)]
        label = _rank(doc_id, "label") % choices
        options = others[:label] + [continuation] + others[label:]
        if len(set(options)) < choices:
            continue  # two documents continue identically: no right answer to pick
        items.append({"id": doc_id, "context": context, "choices": options, "label": label})
    return items


def is_byte_level(tokenizer) -> bool:
    """Whether the tokenizer is byte-level BPE (GPT-2 style): one token character = one byte."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and '"ByteLevel"' in backend.to_str()


class TextBytes:
    """Counts the UTF-8 bytes of text that the scored tokens of packed rows stand for: the
    denominator of bits per byte, which compares models across tokenizers (lm-eval's
    ``bits_per_byte``: the loss in bits over the UTF-8 length of the text scored).

    ``self(rows)`` takes an (n, seq_len) integer array of packed rows and returns the bytes of
    the targets ``rows[:, 1:]``. Special tokens (BOS, EOS, PAD) stand for no bytes. A
    SentencePiece-style tokenizer (Llama, Mistral, TinySolar) marks a word's leading space
    inside the token ("▁the"), so a token stands for its space too; but at the start of a
    document that space is the dummy prefix the tokenizer added, not text, and is not counted.
    Byte-fallback pieces (``<0xE6>``) are one byte each; for byte-level BPE (GPT-2) each
    character of a token's string is one byte. A document scored whole therefore counts
    exactly ``len(text.encode("utf-8"))`` bytes, for every tokenizer family (tests/test_heldout.py).

    Attributes: ``inner`` and ``first``, (vocab,) int64 arrays of the bytes each id stands for
    inside a text and as the first token of a document; ``start``, the id that precedes a
    document (BOS, or EOS for a tokenizer without BOS).
    """

    def __init__(self, tokenizer):
        self.inner, leading_space = _inner_bytes(tokenizer)
        probe = encode_probe(tokenizer)
        dummy = int(self.inner[probe].sum()) - 1 if probe else 0  # bytes added before "a"
        self.first = np.maximum(self.inner - dummy * leading_space, 0)
        self.start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id

    def __call__(self, rows: np.ndarray) -> int:
        previous, targets = rows[:, :-1], rows[:, 1:]
        return int(np.where(previous == self.start, self.first[targets], self.inner[targets]).sum())


def encode_probe(tokenizer) -> list[int]:
    """The ids of the text "a" (what a tokenizer adds before a text shows up around it)."""
    return tokenizer("a", add_special_tokens=False, split_special_tokens=True)["input_ids"]


def _inner_bytes(tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """Bytes each id stands for inside a text, and whether that text starts with a space."""
    size = len(tokenizer)
    backend = tokenizer.backend_tokenizer
    state = json.loads(backend.to_str())
    special = set(tokenizer.all_special_ids)
    added = {t["id"] for t in state.get("added_tokens", [])}
    tokens = [backend.id_to_token(i) or "" for i in range(size)]
    if is_byte_level(tokenizer):
        inner = np.array([len(t) for t in tokens], dtype=np.int64)
        space = np.array([t.startswith("\u0120") for t in tokens], dtype=np.int64)  # "Ġ" = byte 0x20
        for i in added:  # an added token's string is its text, not byte-level characters
            if i < size:
                inner[i], space[i] = len(tokens[i].encode("utf-8")), tokens[i].startswith(" ")
    else:
        # Decode each token after an anchor token: the decoder's own rules (SentencePiece's "▁"
        # for a space, the leading space stripped from the whole text) give its text in context.
        anchor = encode_probe(tokenizer)[-1]
        base = backend.decode([anchor], skip_special_tokens=False)
        texts = [t[len(base):] for t in backend.decode_batch(
            [[anchor, i] for i in range(size)], skip_special_tokens=False)]
        inner = np.array([len(t.encode("utf-8")) for t in texts], dtype=np.int64)
        space = np.array([t.startswith(" ") for t in texts], dtype=np.int64)
    if state.get("model", {}).get("byte_fallback"):
        fallback = np.array([bool(_BYTE_PIECE.fullmatch(t)) for t in tokens])
        inner[fallback], space[fallback] = 1, 0
    specials = [i for i in special if i < size]
    inner[specials], space[specials] = 0, 0
    return inner, space


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


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
    ``seq_len`` tokens; the last partial row is left out. Returns an (rows, seq_len) int64
    array; DataError when the texts do not fill one row."""
    ids: list[int] = []
    for text in texts:
        ids += document_ids(tokenizer, text)
    rows = len(ids) // seq_len
    if not rows:
        raise DataError(f"evaluate.general_text: {len(ids)} tokens, fewer than one row of {seq_len}")
    return np.asarray(ids[:rows * seq_len], dtype=np.int64).reshape(rows, seq_len)
