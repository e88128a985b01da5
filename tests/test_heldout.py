"""Held-out evaluation sets: bytes per token, the multiple-choice set, contamination."""

import numpy as np
import pytest

from pretrain.heldout import (multiple_choice_items, ngram_hashes, overlap, token_byte_lengths,
                              training_ngrams)


def test_byte_lengths_add_up_to_the_text_bytes(tiny_tokenizer):
    text = "def naïve(x):\n    return '日本語 🐍' * x  # ünïcode\n"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    lengths = token_byte_lengths(tiny_tokenizer)
    assert lengths[ids].sum() == len(text.encode("utf-8"))
    assert lengths[tiny_tokenizer.bos_token_id] == lengths[tiny_tokenizer.eos_token_id] == 0


def test_ngram_hashes_match_equal_windows_only():
    a = np.arange(20)
    h = ngram_hashes(a, 13)
    assert len(h) == 8 and len(set(h.tolist())) == 8
    assert np.array_equal(ngram_hashes(a[3:16], 13), h[3:4])
    assert len(ngram_hashes(a[:12], 13)) == 0


def test_overlap_finds_copied_text_and_flags_it():
    rng = np.random.default_rng(0)
    train_rows = rng.integers(0, 1000, size=(50, 64))
    train = training_ngrams(train_rows)
    copied = train_rows[7, 10:40]
    fresh = rng.integers(1000, 2000, size=30)
    clean = overlap([fresh], train)
    assert clean["ngram_overlap"] == 0.0 and not clean["contaminated"]
    dirty = overlap([copied, fresh], train)
    assert dirty["documents_with_overlap"] == 1 and dirty["contaminated"]
    assert dirty["ngram_overlap"] == pytest.approx(18 / (18 + 18))


def test_multiple_choice_items_hide_the_true_continuation_among_others(tiny_tokenizer):
    texts = [f"document number {i} says: " + " ".join(f"w{i}_{j}" for j in range(40)) for i in range(6)]
    docs = [(f"d{i}", tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) for i, t in enumerate(texts)]
    docs.append(("short", docs[0][1][:5]))
    items = multiple_choice_items(docs, tiny_tokenizer, context_tokens=12, continuation_tokens=8)
    assert len(items) == 6  # the short document is left out
    for item in items:
        ids = dict(docs)[item["id"]]
        assert item["context"] == tiny_tokenizer.decode(ids[:12])
        assert item["choices"][item["label"]] == tiny_tokenizer.decode(ids[12:20])
        assert len(set(item["choices"])) == 4
    assert len({item["label"] for item in items}) > 1  # the answer is not always in one place
    again = multiple_choice_items(list(reversed(docs)), tiny_tokenizer, 12, 8)
    assert sorted(again, key=lambda x: x["id"]) == sorted(items, key=lambda x: x["id"])


def test_too_few_documents_give_no_items(tiny_tokenizer):
    docs = [("a", list(range(30))), ("b", list(range(30)))]
    assert multiple_choice_items(docs, tiny_tokenizer, 10, 5) == []
