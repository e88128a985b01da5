"""Document sources: the built-in corpus, several sources mixed with weights, the download
report and the params checks. Local files are tested in test_files.py, URLs in test_fetch.py,
Hugging Face datasets in test_hf.py."""

import importlib.metadata
import json
import sysconfig
from collections import Counter
from pathlib import Path

import pytest

from pretrain.config import load_all
from pretrain.config.sources import DownloadConfig, MixSourceConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import count_rows
from pretrain.io import iter_documents as read_table
from pretrain.sources.builtin import (
    module_docstrings,
    package_descriptions,
    stdlib_files,
    stdlib_sources,
)
from pretrain.sources.download import download, iter_documents, mix_counts
from pretrain.sources.records import Skipped, describe_skipped

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PARTS = ["stdlib", "pydoc_topics", "docstrings", "package_docs"]


def collect(**kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    return list(iter_documents(DownloadConfig(**kwargs), skipped)), skipped


# --- built-in corpus ---------------------------------------------------------------------------


@pytest.mark.parametrize("part", PARTS)
def test_builtin_part_yields_complete_unique_deterministic_documents(part):
    docs, skipped = collect(builtin_parts=[part], max_documents=5)
    assert len(docs) == 5
    for doc in docs:
        assert set(doc) == {"id", "text", "source", "provenance", "metadata", "kind"}
        assert doc["kind"] == ("code" if part == "stdlib" else "prose")
        assert all(isinstance(v, str) and v for v in doc.values())
        assert doc["metadata"] == "{}"  # built-in documents have no fields of their own
        assert doc["source"] == part and doc["id"].startswith(f"{part}/")
        assert doc["text"].strip()
    assert len({d["id"] for d in docs}) == 5
    assert collect(builtin_parts=[part], max_documents=5) == (docs, skipped)


def test_stdlib_documents_are_the_files_text():
    docs, _ = collect(builtin_parts=["stdlib"], max_documents=5)
    for doc in docs:
        rel = doc["id"].removeprefix("stdlib/")
        assert doc["text"] == (STDLIB / rel).read_text(encoding="utf-8")
        assert doc["provenance"].endswith(f"Lib/{rel}")


def test_docstring_documents_join_the_modules_docstrings():
    docs, _ = collect(builtin_parts=["docstrings"], max_documents=3)
    for doc in docs:
        source = (STDLIB / doc["id"].removeprefix("docstrings/")).read_text(encoding="utf-8")
        assert doc["text"] == "\n\n".join(module_docstrings(source))


def test_pydoc_topics_are_the_reference_manual_topics():
    from pydoc_data.topics import topics

    docs, _ = collect(builtin_parts=["pydoc_topics"], max_documents=3)
    for doc in docs:
        assert doc["text"] == topics[doc["id"].removeprefix("pydoc_topics/")]


def test_package_docs_name_the_distribution_and_version():
    docs = {d["id"]: d for d in package_descriptions(False, Skipped())}
    doc = docs["package_docs/pyarrow"]
    assert doc["provenance"].startswith(f"pyarrow {importlib.metadata.version('pyarrow')}:")
    assert "Arrow" in doc["text"]


def test_package_docs_leave_out_this_projects_own_readme_and_count_it():
    """Editing this project's docs must not change the default corpus."""
    skipped = Skipped()
    docs = {d["id"] for d in package_descriptions(False, skipped)}
    assert "package_docs/pretrain" not in docs and "package_docs/dvc" in docs
    assert skipped["package_docs_own"] == 1


def test_max_documents_caps_the_total_and_parts_come_in_order():
    docs, _ = collect(builtin_parts=["pydoc_topics", "stdlib"], max_documents=3)
    assert [d["source"] for d in docs] == ["pydoc_topics"] * 3


def test_stdlib_test_suites_are_left_out_unless_asked_for():
    without = stdlib_files(include_tests=False)
    assert not any({"test", "tests", "idle_test"} & set(Path(rel).parts[:-1]) for rel, _ in without)
    with_tests = stdlib_files(include_tests=True)
    if not (STDLIB / "test").is_dir():
        pytest.skip("this Python was installed without its test suite")
    assert any(rel.startswith("test/") for rel, _ in with_tests)
    assert set(without) < set(with_tests)


def test_module_docstrings_in_source_order():
    source = '''"""Module doc."""

def f():
    """F doc."""

class C:
    """C doc.

        Indented.
    """
    def no_doc(self):
        pass

    async def a(self):
        """A doc."""

def g():
    """G doc."""
    def inner():
        """Inner doc."""
'''
    assert module_docstrings(source) == [
        "Module doc.", "F doc.", "C doc.\n\nIndented.", "A doc.", "G doc.", "Inner doc."]
    assert module_docstrings("x = 1\n") == []


# --- download ---------------------------------------------------------------------------------


def test_download_writes_the_documents_and_reports_counts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one"}\n{"text": "three"}\n{"text": ""}\n{"text": "fünf"}\n')
    cfg = DownloadConfig(source="files", path=str(src))
    out = tmp_path / "data" / "raw"
    report = download(cfg, out)
    assert report == {"documents": 3, "chars": 3 + 5 + 4, "shards": 1, "by_source": {"files": 3},
                      "by_kind": {"prose": 3},
                      "skipped": {"empty_text": 1}, "skipped_files": {}, "skipped_urls": {},
                      "skipped_examples": {"empty_text": [f"{src}:3"]},
                      "decoded": {}, "lines_repaired": 0, "lines_dropped": 0, "fetched": {},
                      "ids": {"from_location": 3},
                      "inputs": {"files": 1, "bytes": src.stat().st_size, "tasks": 1}}
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]
    assert count_rows(out) == 3
    assert list(read_table(out)) == list(iter_documents(cfg, Skipped()))


def test_skip_counts_say_their_unit():
    """Records, files (with their bytes) and URLs are never added up as one count."""
    skipped = Skipped()
    for _ in range(12):
        skipped.add("malformed_json_line", "a.jsonl:3")
    skipped.add("empty_text", "a.jsonl:4")
    for size in (1_000_000, 1_000_000, 50_000, 50_000):
        skipped.add_file("unsupported_file_type", "x.bin", size)
    skipped.add_file("empty_file", "e.txt", 0)
    skipped.add_url("http_404", "https://example.org/gone")
    report = skipped.report()
    assert report["skipped"] == {"empty_text": 1, "malformed_json_line": 12}
    assert report["skipped_files"] == {"empty_file": {"files": 1, "bytes": 0},
                                       "unsupported_file_type": {"files": 4, "bytes": 2_100_000}}
    assert report["skipped_urls"] == {"http_404": 1}
    assert describe_skipped(report) == (
        "1 record, empty_text; 12 records, malformed_json_line; 1 file, 0 B, empty_file; "
        "4 files, 2.1 MB, unsupported_file_type; 1 URL, http_404")
    assert describe_skipped(Skipped().report()) == ""


def test_builtin_files_that_cannot_be_read_are_counted_as_files(monkeypatch):
    skipped = Skipped()
    rel, path = stdlib_files(False)[0]
    monkeypatch.setattr("pretrain.sources.builtin.stdlib_files", lambda tests: [(rel, path)])
    monkeypatch.setattr(Path, "read_bytes", lambda self: b"caf\xe9 = 1\n")
    assert list(stdlib_sources(False, skipped)) == [] and not skipped
    assert skipped.files == {"stdlib_not_utf8": 1}
    assert skipped.file_bytes == {"stdlib_not_utf8": path.stat().st_size}


def test_download_starts_a_new_shard_after_shard_mb_of_text(tmp_path):
    """A shard closes once it holds shard_mb of UTF-8 text (10 bytes here; "fünf" is 5)."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["fünf", "sechs", "sieben", "acht", "x"]))
    cfg = DownloadConfig(source="files", path=str(src), shard_mb=10e-6)
    report = download(cfg, tmp_path / "raw")
    shards = sorted((tmp_path / "raw").iterdir())
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [[d["text"] for d in read_table(p)] for p in shards] == [["fünf", "sechs"], ["sieben", "acht"], ["x"]]
    assert report["shards"] == 3 and report["documents"] == 5
    assert list(read_table(tmp_path / "raw")) == list(iter_documents(cfg, Skipped()))


def test_a_repeated_id_in_one_source_keeps_both_documents_with_unique_ids(tmp_path):
    """The pack stage splits by a hash of the id: two documents with one id would always land
    on the same side, and reports could not tell them apart; but a repeated id is no reason to
    lose a document. The later one's id gets its place in front, so that its ending (.py: code
    to the clean stage) stays."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a.py", "text": "one"}\n{"id": "b", "text": "two"}\n'
                   '{"id": "a.py", "text": "another one"}\n{"id": "c", "text": "three"}\n'
                   '{"id": "a.py", "text": "a third one"}\n')
    report = download(DownloadConfig(source="files", path=str(src)), tmp_path / "raw")
    docs = list(read_table(tmp_path / "raw"))
    assert [(d["id"], d["text"]) for d in docs] == [
        ("a.py", "one"), ("b", "two"), (f"{src}:3/a.py", "another one"), ("c", "three"),
        (f"{src}:5/a.py", "a third one")]
    assert [d["provenance"] for d in docs] == [f"{src}:{n}" for n in range(1, 6)]
    assert report["documents"] == 5 and report["skipped"] == {}
    assert report["ids"] == {"from_id_field": 5, "duplicate_made_unique": 2}


def test_a_made_unique_id_that_is_also_a_real_id_is_made_unique_again(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [{"id": "a", "text": "one"}, {"id": f"{src}:3/a", "text": "a real id"},
             {"id": "a", "text": "two"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    docs, skipped = collect(source="files", path=str(src))
    assert [d["id"] for d in docs] == ["a", f"{src}:3/a", f"{src}:3#2/a"]
    assert skipped.ids["duplicate_made_unique"] == 1


def test_download_with_no_documents_is_a_data_error_and_writes_nothing(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": ""}\n{"body": "x"}\n')
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=r"no documents.*empty_text"):
        download(DownloadConfig(source="files", path=str(src)), out)
    assert [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


# --- several sources mixed with weights ---------------------------------------------------------


@pytest.fixture
def three_sources(tmp_path):
    """Three JSON-lines files of 100 documents each, labelled by their file."""
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": f"{name} doc {i}"}) + "\n" for i in range(100)))
    return tmp_path


def mix(folder, weights, total, seed=0, **kwargs) -> list[dict]:
    sources = [MixSourceConfig(name=name, source="files", path=str(folder / f"{name}.jsonl"), weight=w)
               for name, w in weights.items()]
    cfg = DownloadConfig(source="mix", sources=sources, max_documents=total, seed=seed, **kwargs)
    return list(iter_documents(cfg, Skipped()))


def test_mix_counts_share_the_total_exactly_by_largest_remainder():
    assert mix_counts([0.7, 0.3], 10) == [7, 3]
    assert mix_counts([1, 1, 1], 10) == [4, 3, 3]      # the tie goes to the earlier source
    assert mix_counts([2, 1], 100) == [67, 33]         # 66.67 and 33.33
    assert mix_counts([60000, 9], 60009) == [60000, 9]  # weights may be counts
    assert sum(mix_counts([0.15, 0.5, 0.35], 997)) == 997


def test_mix_gives_each_source_its_share_and_labels_its_documents(three_sources):
    docs = mix(three_sources, {"a": 0.5, "b": 0.3, "c": 0.2}, 50)
    assert Counter(d["source"] for d in docs) == {"a": 25, "b": 15, "c": 10}
    # each source gives its first documents, in its own order
    assert [d["text"] for d in docs if d["source"] == "b"] == [f"b doc {i}" for i in range(15)]
    assert len({d["id"] for d in docs}) == 50


def test_mix_is_interleaved_deterministically_by_seed(three_sources):
    weights = {"a": 1, "b": 1, "c": 2}
    first = mix(three_sources, weights, 40, seed=0)
    assert mix(three_sources, weights, 40, seed=0) == first
    other = mix(three_sources, weights, 40, seed=1)
    assert other != first and sorted(d["id"] for d in other) == sorted(d["id"] for d in first)
    assert {d["source"] for d in first[:10]} == {"a", "b", "c"}  # interleaved, not one block after another


def test_mix_source_too_small_for_its_share_is_an_error(three_sources):
    with pytest.raises(DataError, match=r"download\.sources\[1\] \('b'\): has 100 usable documents, "
                                        r"but its weight asks for 120 of max_documents 180"):
        mix(three_sources, {"a": 1, "b": 2}, 180)


def test_mix_weight_too_small_for_one_document_is_an_error(three_sources):
    with pytest.raises(ConfigError, match=r"download\.sources\[1\]\.weight: 0\.001 gives 'b' no document"):
        mix(three_sources, {"a": 1, "b": 0.001}, 10)


def test_mix_of_builtin_and_files_reports_per_source_counts(three_sources, tmp_path):
    sources = [MixSourceConfig(name="python", source="builtin", builtin_parts=["pydoc_topics"], weight=3),
               MixSourceConfig(name="mine", source="files", path=str(three_sources / "a.jsonl"), weight=1)]
    cfg = DownloadConfig(source="mix", sources=sources, max_documents=20)
    report = download(cfg, tmp_path / "raw")
    assert report["by_source"] == {"mine": 5, "python": 15}
    assert report["mix"] == {"python": {"weight": 3.0, "share": 0.75, "documents": 15},
                             "mine": {"weight": 1.0, "share": 0.25, "documents": 5}}
    docs = list(read_table(tmp_path / "raw"))
    # each id is the entry's name, then the source's own id
    assert {d["id"].split("/")[:2] == ["python", "pydoc_topics"]
            for d in docs if d["source"] == "python"} == {True}
    assert sorted(d["id"] for d in docs if d["source"] == "mine") == [
        f"mine/{three_sources / 'a.jsonl'}:{n}" for n in range(1, 6)]


def test_mix_of_two_sources_numbering_from_0_keeps_every_document_with_distinct_ids(tmp_path):
    """Both number their records 0..9: prefixed with the entry's name, no id meets another, and
    all of each source's documents are there to take (none lost as a duplicate)."""
    for name in ("web", "books"):
        (tmp_path / f"{name}.jsonl").write_text("".join(
            json.dumps({"id": i, "text": f"{name} {i}", "from": name}) + "\n" for i in range(10)))
    sources = [MixSourceConfig(name=n, source="files", path=str(tmp_path / f"{n}.jsonl"), weight=1)
               for n in ("web", "books")]
    skipped = Skipped()
    docs = list(iter_documents(DownloadConfig(source="mix", sources=sources, max_documents=20), skipped))
    assert sorted(d["id"] for d in docs) == sorted(f"{n}/{i}" for n in ("web", "books") for i in range(10))
    for doc in docs:
        assert json.loads(doc["metadata"]) == {"from": doc["source"]}
        assert doc["text"] == f"{doc['source']} {doc['id'].split('/')[1]}"
    assert skipped == {} and skipped.ids == {"from_id_field": 20}


def test_mix_entry_name_with_a_slash_is_refused():
    with pytest.raises(ValueError, match=r"name: 'web/en' contains '/'"):
        MixSourceConfig(name="web/en", source="builtin")


def test_metadata_travels_through_clean_and_dedup_and_pack_still_works(tmp_path, tiny_tokenizer):
    from pretrain.clean.runner import clean
    from pretrain.config.clean import CleanConfig
    from pretrain.config.dedup import DedupConfig
    from pretrain.config.executor import ExecutorConfig
    from pretrain.config.tokens import PackConfig
    from pretrain.dedup.runner import dedup
    from pretrain.tokens.pack import pack

    body = "\n".join(f"Line {k} of a document about topic {{t}} with enough words." for k in range(6))
    records = [{"id": f"d{t}", "text": body.format(t=t), "url": f"https://x.org/{t}", "rank": t}
               for t in range(12)]
    records.append({"id": "copy", "text": records[3]["text"], "url": "https://mirror.org/3", "rank": 99})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    download(DownloadConfig(source="files", path=str(src)), tmp_path / "raw")
    local = ExecutorConfig(workers=1)
    clean(CleanConfig(filters=["whitespace", "paragraph_length"], code_filters=["whitespace"]), local,
          tmp_path / "raw", tmp_path / "clean", tmp_path / "work" / "clean")
    report = dedup(DedupConfig(near=False), local, tmp_path / "clean", tmp_path / "dedup",
                   tmp_path / "work" / "dedup")
    assert report["removed"]["exact"] == 1
    expected = {r["id"]: {"url": r["url"], "rank": r["rank"]} for r in records}
    for stage in ("raw", "clean", "dedup"):
        docs = list(read_table(tmp_path / stage))
        assert {d["id"]: json.loads(d["metadata"]) for d in docs} == {
            k: v for k, v in expected.items() if stage != "dedup" or k != "copy"}, stage
    (pair,) = [json.loads(line) for line in (tmp_path / "dedup" / "removed_pairs.jsonl").open()]
    assert (pair["kept_id"], pair["removed_id"]) == ("d3", "copy")
    assert pair["kept_metadata"] == expected["d3"] and pair["removed_metadata"] == expected["copy"]
    packed = pack(PackConfig(seq_len=16, val_fraction=0.2), local, tiny_tokenizer,
                  tmp_path / "dedup", tmp_path / "packed", tmp_path / "work" / "pack")
    assert packed["train"]["rows"] > 0


def test_mix_params_load_from_yaml(tmp_path, three_sources, monkeypatch):
    monkeypatch.chdir(three_sources)
    path = tmp_path / "params.yaml"
    path.write_text("download:\n  source: mix\n  max_documents: 10\n  sources:\n"
                    "    - {name: code, source: files, path: a.jsonl, weight: 0.7}\n"
                    "    - {name: web, source: files, path: b.jsonl, weight: 0.3}\n")
    cfg = load_all(path)["download"]
    assert [(s.name, s.weight) for s in cfg.sources] == [("code", 0.7), ("web", 0.3)]
    assert Counter(d["source"] for d in iter_documents(cfg, Skipped())) == {"code": 7, "web": 3}


@pytest.mark.parametrize("text, message", [
    ("download:\n  source: mix\n  max_documents: 5\n",
     "download.sources: required when source is 'mix'"),
    ("download:\n  source: mix\n  sources: [{name: a, source: builtin}]\n",
     "download.max_documents: required when source is 'mix'"),
    ("download:\n  source: mix\n  max_documents: 5\n  path: x.jsonl\n  sources: [{name: a, source: builtin}]\n",
     "download.path: not used when source is 'mix' (set it in each of sources)"),
    ("download:\n  source: files\n  path: a.jsonl\n  sources: [{name: a, source: builtin}]\n",
     "download.sources: used only when source is 'mix' (source is 'files')"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{source: builtin}]\n",
     "download.sources[0].name: required"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: builtin, weight: 0}]\n",
     "download.sources[0].weight: expected a value > 0"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: builtin}, {name: a, source: builtin}]\n",
     "download.sources[1].name: 'a' is used twice"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: mix}]\n",
     "download.sources[0].source: expected one of ['builtin', 'files', 'hf', 'urls'], got 'mix'"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: files, path: none/*.txt}]\n",
     "download.sources[0].path: nothing matches 'none/*.txt'"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: urls, urls: ['file:///x']}]\n",
     "download.sources[0].urls[0]: expected an http:// or https:// URL, got 'file:///x'"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: a, source: builtin, wieght: 1}]\n",
     "download.sources[0].wieght: unknown key"),
    ("download:\n  encoding: latin-9x\n", "download.encoding: unknown encoding 'latin-9x'"),
    ("download:\n  id_field: text\n", "download.id_field: 'text' is also the text_field"),
    ("download:\n  id_field: ''\n", "download.id_field: expected a field name, or null"),
    ("download:\n  metadata_fields: [url, text]\n",
     "download.metadata_fields[1]: 'text' is already the document's text"),
    ("download:\n  metadata_fields: [id]\n", "download.metadata_fields[0]: 'id' is already the document's id"),
    ("download:\n  metadata_fields: [url, url]\n", "download.metadata_fields[1]: 'url' is listed twice"),
    ("download:\n  metadata_fields: url\n", "download.metadata_fields: expected a list, got str 'url'"),
    ("download:\n  source: mix\n  max_documents: 5\n  sources: [{name: web/en, source: builtin}]\n",
     "download.sources[0].name: 'web/en' contains '/'"),
])
def test_bad_download_params_fail_in_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_all(path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
