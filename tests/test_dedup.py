"""Exact deduplication keeps the first occurrence of each text."""

import json
import unicodedata

import pytest

from pretrain.config import DedupConfig
from pretrain.dedup import dedup, normalize
from pretrain.io import iter_documents

CAFE_NFC = unicodedata.normalize("NFC", "Le café est prêt.")
CAFE_NFD = unicodedata.normalize("NFD", "Le café est prêt.")


def run(tmp_path, write_docs, texts, **kwargs):
    src = write_docs(tmp_path / "in.parquet", [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)])
    out = tmp_path / "dedup"
    report = dedup(kwargs.pop("cfg", DedupConfig()), src, out, **kwargs)
    kept = list(iter_documents(out / "documents.parquet"))
    with open(out / "removed_samples.jsonl", encoding="utf-8") as handle:
        pairs = [json.loads(line) for line in handle]
    return report, kept, pairs


def test_exact_duplicates_are_removed_keeping_the_first(tmp_path, write_docs):
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
    report, kept, pairs = run(tmp_path, write_docs, texts)
    assert [(d["id"], d["text"]) for d in kept] == [("d0", "alpha"), ("d1", "beta"), ("d3", "gamma")]
    assert pairs == [{"removed": "d2", "kept": "d0"}, {"removed": "d4", "kept": "d1"},
                     {"removed": "d5", "kept": "d0"}]
    assert report == {"documents_in": 6, "documents_out": 3, "duplicates_removed": 3,
                      "chars_in": sum(map(len, texts)), "chars_out": len("alphabetagamma")}


def test_removed_samples_are_capped_but_all_duplicates_counted(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, ["x"] * 5, samples=2)
    assert len(kept) == 1 and report["duplicates_removed"] == 4
    assert pairs == [{"removed": "d1", "kept": "d0"}, {"removed": "d2", "kept": "d0"}]


VARIANTS = ["hello   world\n", "hello world", "\thello\nworld ", CAFE_NFC, CAFE_NFD]


def test_normalize_merges_whitespace_and_unicode_form_variants(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, VARIANTS, cfg=DedupConfig(normalize=True))
    assert [d["text"] for d in kept] == ["hello   world\n", CAFE_NFC]  # the first, unchanged
    assert pairs == [{"removed": "d1", "kept": "d0"}, {"removed": "d2", "kept": "d0"},
                     {"removed": "d4", "kept": "d3"}]


def test_without_normalize_only_identical_texts_are_duplicates(tmp_path, write_docs):
    report, kept, pairs = run(tmp_path, write_docs, VARIANTS + ["hello world"],
                              cfg=DedupConfig(normalize=False))
    assert [d["text"] for d in kept] == VARIANTS
    assert pairs == [{"removed": "d5", "kept": "d1"}]


def test_normalization_is_not_case_folding(tmp_path, write_docs):
    _, kept, _ = run(tmp_path, write_docs, ["Hello world", "hello world"])
    assert len(kept) == 2


@pytest.mark.parametrize("text, expected", [
    ("  a \t b\n\n c  ", "a b c"),
    (CAFE_NFD, CAFE_NFC),
])
def test_normalize(text, expected):
    assert normalize(text) == expected
