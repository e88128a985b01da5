"""The clean stage: every document goes through the rules of its kind, every drop is counted under
the first rule that drops it, every change under its modifier, for any number of workers and any
sharding of the input."""

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.clean.registry import RULE_MODULES
from pretrain.clean import runner
from pretrain.clean.runner import apply_rules, build_rules, document_kind
from pretrain.config.clean import CleanConfig, CodeConfig
from pretrain.config.executor import ExecutorConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import DocumentWriter, iter_documents, shard_name

sys.path.insert(0, str(Path(__file__).parents[1]))
from test_dvc_yaml import PACKAGE, ROOT, STAGES, closure, covered, module_file  # noqa: E402

ENGLISH = ("The standard library ships with every Python installation.\n"
           "It covers file handling, networking, text processing and much more,\n"
           "so most small programs need nothing else.")
FRENCH = ("La bibliothèque standard est livrée avec chaque installation de Python.\n"
          "Elle couvre les fichiers, le réseau et le traitement du texte.\n"
          "La plupart des petits programmes n'ont besoin de rien d'autre.")
REPEATED = "\n\n".join([ENGLISH, "Read the manual.", "Read the manual.", "Read the manual."])
COURSE = CleanConfig(filters=["paragraph_length", "paragraph_repetition", "language"])

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


def clean(cfg: CleanConfig, src: Path, out: Path, scores: Path | None = None, workers: int = 1) -> dict:
    """The clean stage on the local executor, its work folder beside ``out``."""
    return runner.clean(cfg, ExecutorConfig(workers=workers), src, out, out.parent / "work", scores)


@pytest.fixture
def raw(tmp_path, write_docs):
    """Write documents as the one shard of a document folder; return the folder."""

    def write(docs: list[dict]) -> Path:
        return write_docs(tmp_path / "raw" / shard_name(0), docs).parent

    return write


@pytest.fixture
def corpus(raw):
    return raw(DOCS)


def read_samples(out):
    with open(out / "dropped_samples.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_report_counts_every_document_by_filter_and_reason(corpus, tmp_path):
    out = tmp_path / "clean"
    report = clean(COURSE, corpus, out)
    assert report["dropped"] == {
        "paragraph_length.too_few_lines": 3,  # the French one-liner stops at the first filter
        "paragraph_length.short_lines": 1,
        "paragraph_repetition.dup_paragraph_frac": 1,
        "language.wrong_language": 1,
    }
    assert report["documents_in"] == 8 and report["documents_out"] == 2
    assert report["chars_in"] == sum(len(d["text"]) for d in DOCS)
    assert report["chars_out"] == len(DOCS[1]["text"]) + len(DOCS[7]["text"])
    assert report["words_in"] == sum(len(d["text"].split()) for d in DOCS)
    assert report["words_out"] == len(ENGLISH.split()) * 2 + 3
    assert report["by_source"] == {"code": {"in": 2, "out": 1}, "web": {"in": 6, "out": 1}}
    kept = list(iter_documents(out))
    assert [d["id"] for d in kept] == ["english-1", "english-2"]
    assert kept[0] == {**DOCS[1], "provenance": "test", "metadata": "{}", "kind": "prose"}  # copied through


def test_filter_order_decides_the_reason(corpus, tmp_path):
    report = clean(CleanConfig(filters=["language"]), corpus, tmp_path / "clean")
    assert report["dropped"]["language.wrong_language"] == 2  # both French documents
    assert not any(reason.startswith("paragraph_length") for reason in report["dropped"])


def test_dropped_samples_are_capped_per_reason(corpus, tmp_path):
    out = tmp_path / "clean"
    clean(CleanConfig(filters=COURSE.filters, samples_per_reason=2), corpus, out)
    samples = read_samples(out)
    assert [(s["reason"], s["id"]) for s in samples] == [
        ("language.wrong_language", "french"),
        ("paragraph_length.short_lines", "short-lines"),
        ("paragraph_length.too_few_lines", "long-one-liner"),  # first two of three, in input order
        ("paragraph_length.too_few_lines", "one-liner"),
        ("paragraph_repetition.dup_paragraph_frac", "repeated"),
    ]
    assert samples[2]["text"] == "x" * 2000  # long texts are cut for the audit file
    assert samples[0]["text"] == FRENCH and samples[0]["kind"] == "prose"


def test_no_samples_when_samples_per_reason_is_zero(corpus, tmp_path):
    out = tmp_path / "clean"
    report = clean(CleanConfig(filters=COURSE.filters, samples_per_reason=0), corpus, out)
    assert sum(report["dropped"].values()) == 6
    assert read_samples(out) == []


@pytest.mark.parametrize("one_liners, warned", [(12, True), (10, False)])  # 1 of 22; 1 of 20 is 5%
def test_keeping_under_5_percent_warns_naming_the_top_reasons(tmp_path, raw, one_liners, warned):
    docs = ([{"id": f"one-liner-{i}", "text": "one line"} for i in range(one_liners)]
            + [{"id": f"short-{i}", "text": "a\nb\nc"} for i in range(6)]
            + [{"id": f"two-{i}", "text": "two\nlines"} for i in range(2)]
            + [{"id": "french", "text": FRENCH}, {"id": "english", "text": ENGLISH}])
    out = tmp_path / "clean"
    report = clean(COURSE, raw(docs), out)
    assert report["documents_out"] == 1
    if not warned:
        assert "warnings" not in report
        return
    [warning] = report["warnings"]
    assert warning == (
        "clean: kept 1 of 22 documents (4.5%, under 5%); most were dropped as "
        "paragraph_length.too_few_lines: 14, paragraph_length.short_lines: 6, "
        f"language.wrong_language: 1 (samples in {out / 'dropped_samples.jsonl'}); if those documents "
        "are wanted, loosen clean.paragraph_length, clean.language in params.yaml or take them out "
        "of clean.filters")


@pytest.mark.parametrize("key", ["filters", "code_filters"])
def test_unknown_filter_is_a_config_error_before_any_reading(tmp_path, key):
    out = tmp_path / "clean"
    with pytest.raises(ConfigError, match=rf"clean\.{key}: unknown filter 'lenght'"):
        clean(CleanConfig(**{key: ["paragraph_length", "lenght"]}), tmp_path / "missing", out)
    assert not out.exists()


def test_every_document_dropped_names_the_filters_that_dropped_them(tmp_path, raw):
    corpus = raw([
        {"id": "a", "text": "one line"}, {"id": "b", "text": "two\nlines"}, {"id": "c", "text": FRENCH}])
    out = tmp_path / "clean"
    with pytest.raises(DataError) as err:
        clean(COURSE, corpus, out)
    assert str(err.value) == (
        "clean: the filters dropped all 3 documents (paragraph_length.too_few_lines: 2, "
        "language.wrong_language: 1); loosen clean.paragraph_length, clean.language in params.yaml "
        "or take them out of clean.filters")
    assert not out.exists()


def test_code_dropped_entirely_names_the_code_rules(tmp_path, raw):
    corpus = raw([{"id": "gen.py", "text": "# do not edit\nx = 1\n" * 3, "source": "stdlib"}])
    with pytest.raises(DataError, match=r"\(code\.autogenerated: 1\); loosen clean\.code in params.yaml "
                                        r"or take it out of clean\.code_filters$"):
        clean(CleanConfig(), corpus, tmp_path / "clean")


def test_empty_input_gives_an_empty_table(tmp_path, raw):
    corpus = raw([])
    report = clean(CleanConfig(filters=["paragraph_length"]), corpus, tmp_path / "clean")
    assert report["documents_in"] == report["documents_out"] == 0
    assert list(iter_documents(tmp_path / "clean")) == []
    assert (tmp_path / "clean" / shard_name(0)).exists()  # shard numbering stays that of the input


# --- document kinds ------------------------------------------------------------------------------


@pytest.mark.parametrize("doc, kind", [
    ({"id": "stdlib/os.py", "source": "stdlib", "kind": "prose"}, "code"),  # clean.code_sources
    ({"id": "data/sources/tool.PY", "source": "files", "kind": "code"}, "code"),
    ({"id": "data/sources/notes.md", "source": "files", "kind": "prose"}, "prose"),
    ({"id": "docstrings/os.py", "source": "docstrings", "kind": "prose"}, "prose"),  # id not read
    ({"id": "page.html", "source": "files", "kind": "html"}, "prose"),  # prose rules, html_to_text
    ({"id": "warc:urn:uuid:1", "source": "files", "kind": "code"}, "code"),  # kind, not id
])
def test_document_kind(doc, kind):
    assert document_kind(doc, CleanConfig()) == kind


def test_a_kind_no_reader_writes_is_a_data_error():
    with pytest.raises(DataError, match="kind 'binary' is none of prose, code, html"):
        document_kind({"id": "x", "source": "files", "kind": "binary"}, CleanConfig())


def test_a_table_without_the_kind_column_is_refused_naming_it(tmp_path):
    """Written before documents had a kind: read as all prose, its code would go through the
    prose rules unseen."""
    old = tmp_path / "raw" / shard_name(0)
    old.parent.mkdir()
    pq.write_table(pa.table({"id": ["a.py"], "text": [PYTHON], "source": ["files"],
                             "provenance": ["a.py"], "metadata": ["{}"]}), old)
    with pytest.raises(DataError, match=f"{old}: no 'kind' column .* rerun the download stage"):
        clean(CleanConfig(), old.parent, tmp_path / "clean")


PYTHON = '''"""Helpers for the command line."""

import os
import sys


def main(argv=None):
    """Print the entries of each directory named on the command line."""
    for path in argv or sys.argv[1:]:
        for name in sorted(os.listdir(path)):
            print(os.path.join(path, name))
    return 0
'''


def test_code_goes_through_the_code_rules_and_prose_through_the_web_rules(tmp_path, raw):
    corpus = raw([
        {"id": "stdlib/tool.py", "text": PYTHON, "source": "stdlib"},
        {"id": "notes/tool.txt", "text": PYTHON, "source": "notes"},
    ])
    report = clean(CleanConfig(), corpus, tmp_path / "clean")
    assert report["by_kind"]["code"] == {"in": 1, "out": 1, "dropped": {}}
    assert report["by_kind"]["prose"]["out"] == 0
    assert list(report["by_kind"]["prose"]["dropped"]) == ["gopher_quality.too_few_words"]


# --- modifiers ------------------------------------------------------------------------------------


def test_modifiers_change_the_output_and_are_counted(tmp_path, raw):
    rules = ["unicode_nfc", "whitespace", "pii", "paragraph_length"]
    corpus = raw([
        {"id": "a", "text": "Write to me@python.org   \nor call\n\n\n\n\nthe cafe\u0301 at 8.8.8.8"},
        {"id": "b", "text": "nothing\nto change\nhere"},
    ])
    report = clean(CleanConfig(filters=rules), corpus, tmp_path / "clean")
    assert report["modified"] == {"pii": 1, "unicode_nfc": 1, "whitespace": 1}
    kept = [d["text"] for d in iter_documents(tmp_path / "clean")]
    assert kept == ["Write to <EMAIL>\nor call\n\n\nthe caf\u00e9 at <IP_ADDRESS>", "nothing\nto change\nhere"]
    assert report["chars_out"] == sum(map(len, kept))


def test_html_documents_become_text_and_other_documents_are_left_alone(tmp_path, raw):
    page = "<html><body><nav>Menu</nav><p>One paragraph.</p><p>Another one.</p></body></html>"
    corpus = raw([
        {"id": "page.html", "text": page, "kind": "html"},
        {"id": "notes.md", "text": "Markdown with <p>inline</p> HTML"},
        {"id": "script.html", "text": "<script>var x = 1;</script>", "kind": "html"},
    ])
    report = clean(CleanConfig(filters=["html_to_text"]), corpus, tmp_path / "clean")
    kept = {d["id"]: d["text"] for d in iter_documents(tmp_path / "clean")}
    assert kept == {"page.html": "One paragraph.\n\nAnother one.",
                    "notes.md": "Markdown with <p>inline</p> HTML"}
    assert report["modified"] == {"html_to_text": 2}
    assert report["dropped"] == {"html_to_text.empty": 1}


def test_apply_rules_stops_at_the_first_drop():
    rules = build_rules(["whitespace", "paragraph_length", "pii"], CleanConfig())
    assert apply_rules(rules, {"id": "x", "text": "a@b.example.com  \n"}) == \
        ("a@b.example.com", "paragraph_length.too_few_lines", ("whitespace",))


# --- parallelism, sharding and reports -------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_docs(corpus_path):
    """60 standard-library files (code) and 60 reference-manual topics (prose), interleaved."""
    from pydoc_data.topics import topics

    prose = [{"id": f"pydoc_topics/{name}", "text": topics[name], "source": "pydoc_topics",
              "provenance": "test", "metadata": "{}"} for name in sorted(topics)[:60]]
    code = list(iter_documents(corpus_path))
    return [doc for pair in zip(code, prose) for doc in pair]


def write_shards(folder: Path, docs: list[dict], shards: int) -> Path:
    """``docs`` in order as ``shards`` shards of ``folder`` (the last one empty when there are
    more shards than documents' worth)."""
    size = -(-len(docs) // shards)
    for i in range(shards):
        with DocumentWriter(folder / shard_name(i)) as writer:
            for doc in docs[i * size: (i + 1) * size]:
                writer.write(doc)
    return folder


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory, mixed_docs):
    """The mixed documents as three shards."""
    return write_shards(tmp_path_factory.mktemp("mixed") / "raw", mixed_docs, 3)


def test_output_and_reports_do_not_depend_on_the_number_of_workers(mixed_corpus, tmp_path):
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"clean{workers}"
        report = clean(CleanConfig(), mixed_corpus, out, tmp_path / f"scores{workers}.json", workers=workers)
        runs[workers] = (report, {p.name: p.read_bytes() for p in sorted(out.iterdir())},
                         (tmp_path / f"scores{workers}.json").read_bytes())
    assert runs[1] == runs[2]
    report, files, _ = runs[1]
    assert sorted(files) == ["dropped_samples.jsonl", *(shard_name(i) for i in range(3))]
    assert report["by_kind"]["code"]["in"] == 60 and report["by_kind"]["prose"]["in"] == 60
    assert 0 < report["documents_out"] < 120


def test_shard_i_of_the_output_holds_the_kept_documents_of_shard_i(mixed_corpus, tmp_path):
    clean(CleanConfig(), mixed_corpus, tmp_path / "clean", workers=2)
    for i in range(3):
        kept = [d["id"] for d in iter_documents(tmp_path / "clean" / shard_name(i))]
        assert kept and set(kept) <= {d["id"] for d in iter_documents(mixed_corpus / shard_name(i))}


def test_reports_samples_and_scores_do_not_depend_on_the_sharding(mixed_docs, tmp_path):
    """The counts, the first samples of each reason and the scores of 4 shards, added up in
    shard order, are those of one shard holding every document."""
    runs = {}
    for shards in (1, 4):
        src = write_shards(tmp_path / f"raw{shards}", mixed_docs, shards)
        out = tmp_path / f"clean{shards}"
        scores = tmp_path / f"scores{shards}.json"
        report = clean(CleanConfig(samples_per_reason=3), src, out, scores, workers=2)
        runs[shards] = (report, [d["id"] for d in iter_documents(out)],
                        (out / "dropped_samples.jsonl").read_bytes(), scores.read_bytes())
    assert runs[1] == runs[4]
    assert len(runs[1][2].splitlines()) > 3  # several reasons, some with a full sample


def test_scores_have_one_row_per_document(mixed_corpus, tmp_path):
    out, scores = tmp_path / "clean", tmp_path / "scores.json"
    report = clean(CleanConfig(), mixed_corpus, out, scores)
    rows = json.loads(scores.read_text())
    assert len(rows) == report["documents_in"] == 120
    assert set(rows[0]) == {"id", "kind", "language", "language_score", "kept", "chars_in", "chars_out"}
    assert sum(row["kept"] for row in rows) == report["documents_out"]
    assert sum(row["chars_in"] for row in rows) == report["chars_in"]  # lengths before/after
    assert sum(row["chars_out"] for row in rows) == report["chars_out"]
    assert all(0 <= row["language_score"] <= 1 for row in rows)
    kept_ids = {d["id"] for d in iter_documents(out)}
    assert kept_ids == {row["id"] for row in rows if row["kept"]}


def test_code_rules_thresholds_come_from_the_config(mixed_corpus, tmp_path):
    cfg = CleanConfig(code=CodeConfig(max_line_length=10))
    report = clean(cfg, mixed_corpus, tmp_path / "clean")
    assert report["by_kind"]["code"]["out"] == 0
    assert report["dropped"]["code.long_line"] > 50


# --- dvc.yaml ---------------------------------------------------------------------------------------


def test_clean_stage_depends_on_every_rule_module_and_what_it_imports():
    """pretrain.clean.registry imports rule modules by name (importlib), which the import-closure
    check of test_dvc_yaml cannot see: the clean stage must list them itself."""
    deps = set(STAGES["clean"]["deps"])
    for module in RULE_MODULES:
        path = module_file(module)
        assert covered(path.relative_to(ROOT).as_posix(), deps), module
        assert all(covered(f, deps) for f in closure(path)), module
    assert "metrics/clean_scores.json" in {next(iter(p)) for p in STAGES["clean"]["plots"]}


def test_the_stage_rejects_an_unknown_code_filter_before_any_work(tmp_path):
    """pretrain.stage checks both lists, so every stage fails at once on a misspelled rule."""
    import subprocess

    (tmp_path / "params.yaml").write_text("clean:\n  code_filters: [paragraph_length, cod]\n")
    result = subprocess.run(
        [sys.executable, str(PACKAGE.parents[1] / "stages" / "clean.py"), "--params", "params.yaml",
         "--input", "raw", "--out", "clean", "--work", "work", "--metrics", "clean.json"],
        capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: params.yaml: clean.code_filters: unknown filter 'cod' (expected one of [")
    assert not (tmp_path / "clean").exists()
