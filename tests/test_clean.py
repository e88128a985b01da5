"""The clean stage: every dropped document is counted under the first filter that drops it."""

import json

import pytest

from pretrain.clean import clean
from pretrain.config import CleanConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import iter_documents

ENGLISH = ("The standard library ships with every Python installation.\n"
           "It covers file handling, networking, text processing and much more,\n"
           "so most small programs need nothing else.")
FRENCH = ("La bibliothèque standard est livrée avec chaque installation de Python.\n"
          "Elle couvre les fichiers, le réseau et le traitement du texte.\n"
          "La plupart des petits programmes n'ont besoin de rien d'autre.")
REPEATED = "\n\n".join([ENGLISH, "Read the manual.", "Read the manual.", "Read the manual."])

DOCS = [
    {"id": "long-one-liner", "text": "x" * 3000, "source": "web"},
    {"id": "english-1", "text": ENGLISH, "source": "web"},
    {"id": "one-liner", "text": "just one line", "source": "web"},
    {"id": "short-lines", "text": "ab\nab\nab", "source": "code"},
    {"id": "french-one-liner", "text": "Bonjour tout le monde.", "source": "web"},
    {"id": "repeated", "text": REPEATED, "source": "web"},
    {"id": "french", "text": FRENCH, "source": "web"},
    {"id": "english-2", "text": ENGLISH + "\nOne more line.", "source": "code"},
]


@pytest.fixture
def corpus(tmp_path, write_docs):
    return write_docs(tmp_path / "raw.parquet", DOCS)


def read_samples(out):
    with open(out / "dropped_samples.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_report_counts_every_document_by_filter_and_reason(corpus, tmp_path):
    out = tmp_path / "clean"
    report = clean(CleanConfig(), corpus, out)
    assert report["dropped"] == {
        "paragraph_length.too_few_lines": 3,  # the French one-liner stops at the first filter
        "paragraph_length.short_lines": 1,
        "paragraph_repetition.dup_paragraph_frac": 1,
        "language.wrong_language": 1,
    }
    assert report["documents_in"] == 8 and report["documents_out"] == 2
    assert report["chars_in"] == sum(len(d["text"]) for d in DOCS)
    assert report["chars_out"] == len(DOCS[1]["text"]) + len(DOCS[7]["text"])
    assert report["by_source"] == {"code": {"in": 2, "out": 1}, "web": {"in": 6, "out": 1}}
    kept = list(iter_documents(out / "documents.parquet"))
    assert [d["id"] for d in kept] == ["english-1", "english-2"]
    assert kept[0] == {**DOCS[1], "provenance": "test"}


def test_filter_order_decides_the_reason(corpus, tmp_path):
    report = clean(CleanConfig(filters=["language"]), corpus, tmp_path / "clean")
    assert report["dropped"]["language.wrong_language"] == 2  # both French documents
    assert not any(reason.startswith("paragraph_length") for reason in report["dropped"])


def test_dropped_samples_are_capped_per_reason(corpus, tmp_path):
    out = tmp_path / "clean"
    clean(CleanConfig(samples_per_reason=2), corpus, out)
    samples = read_samples(out)
    assert [(s["reason"], s["id"]) for s in samples] == [
        ("language.wrong_language", "french"),
        ("paragraph_length.short_lines", "short-lines"),
        ("paragraph_length.too_few_lines", "long-one-liner"),  # first two of three, in input order
        ("paragraph_length.too_few_lines", "one-liner"),
        ("paragraph_repetition.dup_paragraph_frac", "repeated"),
    ]
    assert samples[2]["text"] == "x" * 2000  # long texts are cut for the audit file
    assert samples[0]["text"] == FRENCH  # kept as UTF-8 text


def test_no_samples_when_samples_per_reason_is_zero(corpus, tmp_path):
    out = tmp_path / "clean"
    report = clean(CleanConfig(samples_per_reason=0), corpus, out)
    assert sum(report["dropped"].values()) == 6
    assert read_samples(out) == []


def test_unknown_filter_is_a_config_error_before_any_reading(tmp_path):
    out = tmp_path / "clean"
    with pytest.raises(ConfigError, match=r"clean\.filters: unknown filter 'lenght'"):
        clean(CleanConfig(filters=["paragraph_length", "lenght"]), tmp_path / "missing.parquet", out)
    assert not out.exists()


def test_every_document_dropped_names_the_filters_that_dropped_them(tmp_path, write_docs):
    corpus = write_docs(tmp_path / "raw.parquet", [
        {"id": "a", "text": "one line"}, {"id": "b", "text": "two\nlines"}, {"id": "c", "text": FRENCH}])
    out = tmp_path / "clean"
    with pytest.raises(DataError) as err:
        clean(CleanConfig(), corpus, out)
    assert str(err.value) == (
        "clean: the filters dropped all 3 documents (paragraph_length.too_few_lines: 2, "
        "language.wrong_language: 1); loosen clean.paragraph_length, clean.language in params.yaml "
        "or take them out of clean.filters")
    assert not out.exists()


def test_empty_input_gives_an_empty_table(tmp_path, write_docs):
    corpus = write_docs(tmp_path / "raw.parquet", [])
    report = clean(CleanConfig(filters=["paragraph_length"]), corpus, tmp_path / "clean")
    assert report["documents_in"] == report["documents_out"] == 0
    assert list(iter_documents(tmp_path / "clean" / "documents.parquet")) == []
