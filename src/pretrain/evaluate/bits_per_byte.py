"""Bits per byte: the loss in bits over the UTF-8 bytes of the text scored, which compares
models with different tokenizers (lm-eval's ``bits_per_byte``). ``TextBytes`` counts the bytes
that the scored tokens of packed rows stand for, for every tokenizer family."""

from __future__ import annotations

import json
import re

import numpy as np


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
    exactly ``len(text.encode("utf-8"))`` bytes, for every tokenizer family (tests/tokens/test_heldout.py).

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
