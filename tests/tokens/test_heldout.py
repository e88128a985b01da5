"""Held-out evaluation sets: bytes per token, the multiple-choice set, contamination."""

import numpy as np
import pytest

from pretrain.evaluate.bits_per_byte import TextBytes
from pretrain.evaluate.contamination import ngram_hashes, overlap, training_ngrams
from pretrain.tokens.heldout import multiple_choice_items, split_at_tokens
from pretrain.tokens.tokenizer import document_ids

# 64 bytes of words; then text with multi-byte characters, a special token's literal text, a
# leading word after a newline and runs of spaces.
TEXTS = ["The river rose through the night, and by morning the fields were",
         "def naïve(x):\n    return '日本語 🐍' * x  # ünïcode <s> </s>\n\n  done"]


@pytest.mark.parametrize("text", TEXTS)
def test_text_bytes_of_a_whole_document_are_its_utf8_length(any_tokenizer, text):
    """Bits per byte divides by the bytes of the text scored, for every tokenizer family (a
    SentencePiece piece decoded on its own loses its word's leading space: 64 bytes counted 50)."""
    row = np.array([document_ids(any_tokenizer, text)])
    assert TextBytes(any_tokenizer)(row) == len(text.encode("utf-8"))


def test_text_bytes_add_up_over_several_documents_in_rows(any_tokenizer):
    ids = [i for text in TEXTS * 3 for i in document_ids(any_tokenizer, text)]
    rows = np.array([[ids[0]] + ids])  # one row, every document scored whole
    assert TextBytes(any_tokenizer)(rows) == 3 * sum(len(t.encode("utf-8")) for t in TEXTS)
    counter = TextBytes(any_tokenizer)
    assert counter.inner[any_tokenizer.bos_token_id] == counter.inner[any_tokenizer.eos_token_id] == 0


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


def _mc_documents(tokenizer, texts, context=12, continuation=8):
    splits = [(f"d{i}", split_at_tokens(tokenizer, t, context, continuation)) for i, t in enumerate(texts)]
    return [(doc_id, *split) for doc_id, split in splits if split is not None]


def test_multiple_choice_items_hide_the_true_continuation_among_others(tiny_tokenizer):
    texts = [f"document number {i} says: " + " ".join(f"w{i}_{j}" for j in range(40)) for i in range(6)]
    docs = _mc_documents(tiny_tokenizer, texts + ["too short"])
    assert len(docs) == 6  # the short document is left out
    items = multiple_choice_items(docs)
    assert len(items) == 6
    for item in items:
        text = texts[int(item["id"][1:])]
        ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert item["context"] == tiny_tokenizer.decode(ids[:12])
        assert item["choices"][item["label"]] == tiny_tokenizer.decode(ids[12:20])
        assert len(set(item["choices"])) == 4
    assert len({item["label"] for item in items}) > 1  # the answer is not always in one place
    again = multiple_choice_items(list(reversed(docs)))
    assert sorted(again, key=lambda x: x["id"]) == sorted(items, key=lambda x: x["id"])


def test_multiple_choice_text_is_cut_between_characters_not_bytes(any_tokenizer):
    """A byte-level BPE splits 日, é and emoji between tokens: decoding a span cut there gives
    U+FFFD. Every context and choice is an exact substring of a held-out document."""
    texts = ["".join(f"日{i}本{j}語é{i}🐍{j} café{i}" for j in range(12)) for i in range(8)]
    docs = _mc_documents(any_tokenizer, texts, context=17, continuation=9)
    items = multiple_choice_items(docs)
    assert len(items) >= 6
    for item in items:
        own = texts[int(item["id"][1:])]
        assert own.startswith(item["context"] + item["choices"][item["label"]])
        for choice in item["choices"]:
            assert "\ufffd" not in choice and any(choice in text for text in texts)
        assert "\ufffd" not in item["context"] and item["context"]


def test_the_space_before_a_word_goes_with_the_continuation(tiny_tokenizer):
    """Also for tokenizers whose offsets leave the space out of the word's token (GPT-2's and
    RoBERTa's ``trim_offsets``): the cut does not move."""
    from conftest import trimmed_offsets

    trimmed = trimmed_offsets(tiny_tokenizer)
    text = "Hello world, this is a cafe by the sea where the waves come in every day " * 2
    for cut in range(2, 12):
        context, continuation = split_at_tokens(tiny_tokenizer, text, cut, 4)
        assert split_at_tokens(trimmed, text, cut, 4) == (context, continuation)
        assert not context.endswith(" ") and text.startswith(context + continuation)


def test_too_few_documents_give_no_items():
    docs = [("a", "context a", " continues"), ("b", "context b", " goes on")]
    assert multiple_choice_items(docs) == []
