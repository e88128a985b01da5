"""Document sources: the built-in corpus, Hugging Face datasets (saved or a folder of data files,
offline), several sources mixed with weights, the download report and the params checks.
Local files are tested in test_files.py, URLs in test_fetch.py."""

import importlib.metadata
import json
import sysconfig
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.config import DownloadConfig, MixSourceConfig, load_all
from pretrain.errors import ConfigError, DataError
from pretrain.io import count_rows
from pretrain.io import iter_documents as read_table
from pretrain.sources import (Skipped, download, iter_documents, mix_counts, module_docstrings,
                              package_descriptions, stdlib_files)

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
        assert set(doc) == {"id", "text", "source", "provenance"}
        assert all(isinstance(v, str) and v for v in doc.values())
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


# --- Hugging Face datasets saved on disk -------------------------------------------------------


@pytest.fixture(scope="module")
def saved_dataset(tmp_path_factory):
    import datasets

    path = tmp_path_factory.mktemp("hf") / "my_dataset"
    datasets.Dataset.from_dict(
        {"text": ["first doc", "", None, "fourth doc"], "body": ["b0", "b1", "b2", "b3"]}
    ).save_to_disk(str(path))
    return path


def test_hf_source_reads_a_saved_dataset(saved_dataset):
    docs, skipped = collect(source="hf", path=str(saved_dataset))
    assert [(d["id"], d["text"]) for d in docs] == [(f"{saved_dataset}:train:0", "first doc"),
                                                    (f"{saved_dataset}:train:3", "fourth doc")]
    assert docs[1]["provenance"] == f"{saved_dataset}#train[3]"
    assert skipped == {"empty_text": 1, "missing_text_field": 1}
    docs, _ = collect(source="hf", path=str(saved_dataset), text_field="body", max_documents=2)
    assert [d["text"] for d in docs] == ["b0", "b1"]


def test_hf_documents_are_labelled_hf(saved_dataset):
    docs, _ = collect(source="hf", path=str(saved_dataset))
    assert {d["source"] for d in docs} == {"hf"}


def test_hf_source_reads_the_configured_split(tmp_path):
    import datasets

    path = tmp_path / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a train doc"]}),
        "validation": datasets.Dataset.from_dict({"text": ["a validation doc"]}),
    }).save_to_disk(str(path))
    docs, _ = collect(source="hf", path=str(path), hf_split="validation")
    assert [d["text"] for d in docs] == ["a validation doc"]


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_hf_source_streams_a_folder_of_data_files(tmp_path, kind):
    """A folder load_dataset reads (as a hub dataset repository is laid out), streamed offline."""
    folder = tmp_path / "data_files"
    folder.mkdir()
    parts = [["a", "b", ""], ["c"]]
    for i, texts in enumerate(parts):
        if kind == "parquet":
            pq.write_table(pa.table({"text": texts}), folder / f"part-{i}.parquet")
        else:
            (folder / f"part-{i}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    docs, skipped = collect(source="hf", path=str(folder))
    assert [d["text"] for d in docs] == ["a", "b", "c"] and skipped == {"empty_text": 1}
    assert docs[2]["id"] == f"{folder}:train:3"
    docs, _ = collect(source="hf", path=str(folder), max_documents=1)
    assert [d["text"] for d in docs] == ["a"]


def test_hf_source_that_cannot_be_loaded_names_it(tmp_path):
    with pytest.raises(DataError, match=r"download\.path: cannot load dataset .*"):
        collect(source="hf", path=str(tmp_path))  # an empty folder


# --- download ---------------------------------------------------------------------------------


def test_download_writes_the_documents_and_reports_counts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one"}\n{"text": "three"}\n{"text": ""}\n{"text": "fünf"}\n')
    cfg = DownloadConfig(source="files", path=str(src))
    out = tmp_path / "data" / "raw"
    report = download(cfg, out)
    assert report == {"documents": 3, "chars": 3 + 5 + 4, "by_source": {"files": 3},
                      "skipped": {"empty_text": 1}, "skipped_examples": {"empty_text": [f"{src}:3"]},
                      "decoded": {}, "fetched": {}}
    assert count_rows(out / "documents.parquet") == 3
    assert list(read_table(out / "documents.parquet")) == list(iter_documents(cfg, Skipped()))


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
    docs = list(read_table(tmp_path / "raw" / "documents.parquet"))
    assert {d["id"].split("/")[0] for d in docs if d["source"] == "python"} == {"pydoc_topics"}


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
])
def test_bad_download_params_fail_in_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_all(path)
    assert str(err.value).startswith(f"{path}: {message}") and "\n" not in str(err.value)
