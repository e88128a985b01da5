"""Hugging Face datasets (saved with save_to_disk, or a local folder of data files, offline):
their records, ids and fields, and every file of a local folder read or counted."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.config.sources import DownloadConfig
from pretrain.errors import DataError
from pretrain.sources.download import iter_documents
from pretrain.sources.records import Skipped


def collect(**kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    return list(iter_documents(DownloadConfig(**kwargs), skipped)), skipped


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


def test_hf_source_streams_a_folder_of_zstd_json_lines_with_their_kinds(tmp_path):
    """How dolma and RedPajama ship: .jsonl.zst, several frames each. datasets reads zstd once
    zstandard is installed (a core dependency now); without it: "Compression type zstd not
    supported"."""
    import zstandard

    folder = tmp_path / "zst"
    folder.mkdir()
    parts = [[("a.py", "import os"), ("b.md", "# B")], [("c.c", "int x;")]]
    for i, records in enumerate(parts):
        frames = [zstandard.ZstdCompressor().compress((json.dumps({"text": t, "path": p}) + "\n").encode())
                  for p, t in records]
        (folder / f"part-{i}.jsonl.zst").write_bytes(b"".join(frames))
    docs, skipped = collect(source="hf", path=str(folder), kind_field="path")
    assert [(d["text"], d["kind"]) for d in docs] == [("import os", "code"), ("# B", "prose"),
                                                      ("int x;", "code")]
    assert not skipped.files


def test_hf_saved_dataset_keeps_record_ids_and_fields(tmp_path):
    import datasets

    path = tmp_path / "saved"
    datasets.Dataset.from_dict({"id": ["doc-a", "doc-b"], "text": ["first", "second"],
                                "url": ["https://a.org", "https://b.org"], "year": [2023, 2024]}
                               ).save_to_disk(str(path))
    docs, skipped = collect(source="hf", path=str(path))
    assert [d["id"] for d in docs] == ["doc-a", "doc-b"]
    assert docs[1]["provenance"] == f"{path}#train[1]"
    assert [json.loads(d["metadata"]) for d in docs] == [{"url": "https://a.org", "year": 2023},
                                                         {"url": "https://b.org", "year": 2024}]
    assert skipped.ids == {"from_id_field": 2}


def test_hf_parquet_folder_keeps_record_ids_and_fields(tmp_path):
    folder = tmp_path / "data_files"
    folder.mkdir()
    pq.write_table(pa.table({"id": [7, 8], "text": ["a", "b"], "licence": ["mit", "cc0"]}),
                   folder / "part-0.parquet")
    docs, _ = collect(source="hf", path=str(folder))
    assert [(d["id"], json.loads(d["metadata"])) for d in docs] == [("7", {"licence": "mit"}),
                                                                   ("8", {"licence": "cc0"})]


def test_hf_metadata_leaves_out_images_and_lists_by_default_and_keeps_what_is_listed(tmp_path):
    import datasets

    path = tmp_path / "saved"
    datasets.Dataset.from_dict(
        {"id": ["a"], "text": ["first"], "url": ["https://a.org"], "year": [2023],
         "image": [{"bytes": b"\x89PNG", "path": None}], "embedding": [[0.5, 0.25]],
         "label": [1]},
        features=datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                    "url": datasets.Value("string"), "year": datasets.Value("int32"),
                                    "image": datasets.Image(),
                                    "embedding": datasets.Sequence(datasets.Value("float32")),
                                    "label": datasets.ClassLabel(names=["no", "yes"])}),
    ).save_to_disk(str(path))
    docs, _ = collect(source="hf", path=str(path))
    assert json.loads(docs[0]["metadata"]) == {"url": "https://a.org", "year": 2023, "label": 1}
    docs, _ = collect(source="hf", path=str(path), metadata_fields=["embedding", "url"])
    assert list(json.loads(docs[0]["metadata"]).items()) == [("embedding", [0.5, 0.25]),
                                                             ("url", "https://a.org")]
    docs, _ = collect(source="hf", path=str(path), metadata_fields=[])
    assert docs[0]["metadata"] == "{}" and docs[0]["id"] == "a"


def test_hf_source_that_cannot_be_loaded_names_it(tmp_path):
    with pytest.raises(DataError, match=r"download\.path: cannot load dataset .*"):
        collect(source="hf", path=str(tmp_path))  # an empty folder


# --- every file of a local folder read or counted -----------------------------------------------


def write_jsonl(path, texts):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


@pytest.fixture
def split_word_folder(tmp_path):
    """The report's folder: datasets takes train_notes.jsonl for the train split and puts the
    other two files in no split (huggingface/datasets#5021)."""
    folder = tmp_path / "corpus"
    write_jsonl(folder / "books.jsonl", [f"book {i}" for i in range(3)])
    write_jsonl(folder / "wiki.jsonl", [f"wiki {i}" for i in range(4)])
    write_jsonl(folder / "train_notes.jsonl", [f"note {i}" for i in range(2)])
    return folder


def test_hf_folder_files_in_no_split_stop_the_stage_naming_them(split_word_folder):
    with pytest.raises(DataError) as err:  # 2 documents of 9, and nothing counted, before
        collect(source="hf", path=str(split_word_folder))
    message = str(err.value)
    assert message.startswith(f"download.path: datasets puts 2 files of {split_word_folder.as_posix()} "
                              "in no split (books.jsonl, wiki.jsonl): ")
    assert "as in train_notes.jsonl (huggingface/datasets#5021)" in message
    assert message.endswith(f"source: files, path: {split_word_folder.as_posix()}/**/*.jsonl")


def test_hf_folder_advice_for_files_in_no_split_works(split_word_folder):
    """Each way out the error line names reads all nine records."""
    glob = f"{split_word_folder}/**/*.jsonl"
    assert len(collect(source="files", path=glob)[0]) == 9
    card = split_word_folder / "README.md"
    card.write_text("---\nconfigs:\n- config_name: default\n  data_files:\n"
                    "  - split: train\n    path: '*.jsonl'\n---\n")
    docs, skipped = collect(source="hf", path=str(split_word_folder))
    assert len(docs) == 9 and skipped.files == {}  # the card is read by datasets, not counted
    card.unlink()
    for name in ("books", "wiki"):
        (split_word_folder / f"{name}.jsonl").rename(split_word_folder / f"train-{name}.jsonl")
    assert len(collect(source="hf", path=str(split_word_folder))[0]) == 9


def test_hf_folder_counts_other_splits_unknown_and_hidden_files_in_files_and_bytes(tmp_path):
    folder = tmp_path / "corpus"
    write_jsonl(folder / "train.jsonl", ["a", "b"])
    write_jsonl(folder / "test.jsonl", ["held out"])
    (folder / "LICENSE").write_bytes(bytes(50))
    (folder / ".gitattributes").write_bytes(bytes(20))
    docs, skipped = collect(source="hf", path=str(folder))
    assert [d["text"] for d in docs] == ["a", "b"] and not skipped
    assert skipped.files == {"hf_other_split": 1, "unsupported_file_type": 1, "hidden_file": 1}
    assert skipped.file_bytes == {"hf_other_split": (folder / "test.jsonl").stat().st_size,
                                  "unsupported_file_type": 50, "hidden_file": 20}
    assert skipped.examples["hf_other_split"] == [(folder / "test.jsonl").as_posix()]
    docs, skipped = collect(source="hf", path=str(folder), hf_split="test")
    assert [d["text"] for d in docs] == ["held out"] and skipped.files["hf_other_split"] == 1


def test_hf_folder_counts_the_files_of_other_configurations(tmp_path):
    folder = tmp_path / "corpus"
    write_jsonl(folder / "en" / "a.jsonl", ["english"])
    write_jsonl(folder / "fr" / "a.jsonl", ["français", "encore"])
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files: en/*.jsonl\n"
        "- config_name: fr\n  data_files: fr/*.jsonl\n---\n")
    docs, skipped = collect(source="hf", path=str(folder), hf_config="fr")
    assert [d["text"] for d in docs] == ["français", "encore"]
    assert skipped.files == {"hf_other_config": 1}
    assert skipped.examples["hf_other_config"] == [(folder / "en" / "a.jsonl").as_posix()]


def test_hf_saved_dataset_dict_counts_its_other_splits(tmp_path):
    import datasets

    path = tmp_path / "dd"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["a train doc"]}),
        "test": datasets.Dataset.from_dict({"text": ["a test doc"]}),
    }).save_to_disk(str(path))
    docs, skipped = collect(source="hf", path=str(path))
    assert [d["text"] for d in docs] == ["a train doc"]
    arrow = sorted((path / "test").glob("*.arrow"))
    assert skipped.files == {"hf_other_split": len(arrow)}
    assert skipped.file_bytes == {"hf_other_split": sum(p.stat().st_size for p in arrow)}
