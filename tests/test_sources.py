"""Document sources: the built-in corpus, local files (JSONL, Parquet, text) and local datasets."""

import importlib.metadata
import sysconfig
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.config import DownloadConfig
from pretrain.errors import DataError
from pretrain.io import count_rows
from pretrain.io import iter_documents as read_table
from pretrain.sources import (Skipped, download, iter_documents, module_docstrings,
                              package_descriptions, stdlib_files)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
PARTS = ["stdlib", "pydoc_topics", "docstrings", "package_docs"]


def collect(**kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    return list(iter_documents(DownloadConfig(**kwargs), skipped)), skipped


def files(path, **kwargs) -> tuple[list[dict], Skipped]:
    return collect(source="files", path=str(path), **kwargs)


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


# --- local files -------------------------------------------------------------------------------


def test_jsonl_skips_and_counts_unusable_records(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [
        b'\xef\xbb\xbf{"text": "first doc"}',  # BOM on the first line
        b'{not json',
        b'{"title": "no text field"}',
        b'{"text": 42}',
        b'{"text": ""}',
        b'{"text": "  \\n "}',
        b'',                                   # blank line: ignored, not counted
        b'[1, 2]',
        b'{"text": null}',
        b'\xff{"text": "not utf-8"}',
        b'{"text": "last \xc3\xbcn\xc3\xafcode", "meta": 1}',
    ]
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")  # CRLF line endings
    docs, skipped = files(path)
    assert [d["text"] for d in docs] == ["first doc", "last ünïcode"]
    assert [d["id"] for d in docs] == [f"{path.as_posix()}:1", f"{path.as_posix()}:11"]
    assert docs[1]["provenance"] == f"{path}:11" and docs[1]["source"] == "files"
    assert skipped == {"malformed_json_line": 1, "not_utf8": 1, "missing_text_field": 2,
                       "text_not_a_string": 1, "empty_text": 2, "json_record_not_an_object": 1}
    name = path.as_posix()
    assert skipped.examples["not_utf8"] == [f"{name}:10"]
    assert skipped.examples["empty_text"] == [f"{name}:5", f"{name}:6"]


def test_jsonl_reads_the_configured_text_field(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"content": "a doc", "text": "not this"}\n{"text": "no content"}\n')
    docs, skipped = files(path, text_field="content")
    assert [d["text"] for d in docs] == ["a doc"]
    assert skipped == {"missing_text_field": 1}


def test_parquet_rows_keep_their_row_numbers(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": ["a doc", None, "", "another"], "n": [0, 1, 2, 3]}), path)
    docs, skipped = files(path)
    assert [(d["id"], d["text"]) for d in docs] == [(f"{path.as_posix()}:0", "a doc"),
                                                    (f"{path.as_posix()}:3", "another")]
    assert docs[1]["provenance"] == f"{path}#row=3"
    assert skipped == {"missing_text_field": 1, "empty_text": 1}


def test_parquet_non_string_text_is_counted(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    docs, skipped = files(path)
    assert docs == [] and skipped == {"text_not_a_string": 2}


def test_parquet_without_the_text_column_names_file_and_column(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"content": ["a doc"]}), path)
    with pytest.raises(DataError, match=r"data\.parquet: no column 'body'.*download\.text_field"):
        files(path, text_field="body")


def test_damaged_parquet_is_a_data_error(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"data\.parquet: cannot read Parquet"):
        files(path)


def test_text_file_is_one_document_without_bom_or_crlf(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    docs, _ = files(path)
    assert docs == [{"id": path.as_posix(), "text": "line one\nline two\n", "source": "files",
                     "provenance": str(path)}]


def test_unreadable_or_empty_text_files_are_counted(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.md").write_text("\n\n")
    docs, skipped = files(tmp_path)
    assert docs == [] and skipped == {"not_utf8": 1, "empty_file": 1}
    assert skipped.examples == {"not_utf8": [(tmp_path / "latin1.txt").as_posix()],
                                "empty_file": [(tmp_path / "empty.md").as_posix()]}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "sources"
    (root / "sub").mkdir(parents=True)
    (root / "a.jsonl").write_text('{"text": "from jsonl"}\n')
    (root / "c.md").write_text("# from markdown\n")
    (root / "sub" / "b.txt").write_text("from a nested text file\n")
    (root / "d.csv").write_text("text\nnot read\n")
    return root


def test_folder_is_searched_recursively_in_sorted_order(folder):
    docs, skipped = files(folder)
    assert [d["text"] for d in docs] == ["from jsonl", "# from markdown\n", "from a nested text file\n"]
    assert not skipped  # the .csv is not an input file


def test_glob_selects_files(folder):
    docs, _ = files(folder / "*.jsonl")
    assert [d["text"] for d in docs] == ["from jsonl"]
    docs, _ = files(f"{folder}/**/*.txt")
    assert [d["text"] for d in docs] == ["from a nested text file\n"]


def test_no_matching_files_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"download\.path: no input files match"):
        files(tmp_path / "*.jsonl")
    with pytest.raises(DataError, match="no input files"):
        files(tmp_path)  # an empty folder


def test_explicit_file_of_unknown_type_is_counted(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("text\nhello\n")
    docs, skipped = files(path)
    assert docs == [] and skipped == {"unsupported_file_type": 1}


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


# --- download ---------------------------------------------------------------------------------


def test_download_writes_the_documents_and_reports_counts(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "one"}\n{"text": "three"}\n{"text": ""}\n{"text": "fünf"}\n')
    cfg = DownloadConfig(source="files", path=str(src))
    out = tmp_path / "data" / "raw"
    report = download(cfg, out)
    assert report == {"documents": 3, "chars": 3 + 5 + 4, "by_source": {"files": 3},
                      "skipped": {"empty_text": 1}, "skipped_examples": {"empty_text": [f"{src}:3"]}}
    assert count_rows(out / "documents.parquet") == 3
    assert list(read_table(out / "documents.parquet")) == list(iter_documents(cfg, Skipped()))


def test_download_with_no_documents_is_a_data_error_and_writes_nothing(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": ""}\n{"body": "x"}\n')
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=r"no documents.*empty_text"):
        download(DownloadConfig(source="files", path=str(src)), out)
    assert [p.name for p in tmp_path.iterdir()] == ["in.jsonl"]


def test_json_array_file_is_read_record_by_record(tmp_path):
    path = tmp_path / "records.json"
    path.write_text('[{"text": "one"}, {"text": "two\\r\\nlines"}, 3]')
    docs, skipped = collect(source="files", path=str(path))
    assert [d["text"] for d in docs] == ["one", "two\nlines"]  # CRLF normalised in records too
    assert skipped == {"json_record_not_an_object": 1}


def test_ids_do_not_depend_on_how_the_path_is_written(tmp_path, monkeypatch):
    (tmp_path / "a.jsonl").write_text('{"text": "hello"}\n')
    monkeypatch.chdir(tmp_path)
    relative, _ = collect(source="files", path="a.jsonl")
    absolute, _ = collect(source="files", path=str(tmp_path / "a.jsonl"))
    assert relative[0]["id"] == absolute[0]["id"] == "a.jsonl:1"
