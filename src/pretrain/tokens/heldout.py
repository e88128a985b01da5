"""The held-out multiple-choice set that pack builds from validation documents: given the start
of a document the model never trained on, pick its true continuation among continuations cut
at the same place from other held-out documents (chance is 1 / choices)."""

from __future__ import annotations

import hashlib
from typing import Any


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
    from pretrain.tokens.tokenizer import encode_with_offsets  # transformers: not for pack's import

    (_, offsets), = encode_with_offsets(tokenizer, [text])
    return split_at_offsets(text, offsets, context_tokens, continuation_tokens)


def split_at_offsets(text: str, offsets: list[tuple[int, int]], context_tokens: int,
                     continuation_tokens: int) -> tuple[str, str] | None:
    """``split_at_tokens`` for a text already encoded: ``offsets`` are its tokens' character
    spans (``pretrain.tokens.tokenizer.encode_with_offsets``)."""
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
