"""Atomic outputs and the streaming document table."""

import json

import pyarrow.parquet as pq
import pytest

from pretrain.errors import DataError
from pretrain.io import (
    DocumentWriter,
    ShardedDocumentWriter,
    atomic_path,
    count_rows,
    document_shards,
    iter_documents,
    place,
    shard_name,
    write_json,
    write_json_list,
)

DOCS = [
    {"id": f"doc-{i}", "text": f"text {i}: naïve café — 日本語 🐍\n\nsecond paragraph",
     "source": "test", "provenance": f"line {i}",
     "metadata": json.dumps({"url": f"https://example.org/{i}", "rank": i, "tags": ["a", "日本"]}),
     "kind": ("prose", "code", "html")[i % 3]}
    for i in range(5)
]


class Boom(Exception):
    pass


def test_failed_block_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    out = tmp_path / "metrics.json"
    out.write_text("old")
    with pytest.raises(Boom):
        with atomic_path(out) as tmp:
            tmp.write_text("half written")
            raise Boom
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_failed_block_keeps_the_previous_folder_and_leaves_no_temp(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "documents.parquet").write_text("old")
    with pytest.raises(Boom):
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "documents.parquet").write_text("half written")
            raise Boom
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    assert [p.name for p in out.iterdir()] == ["documents.parquet"]
    assert (out / "documents.parquet").read_text() == "old"


def test_failed_block_without_previous_output_creates_nothing(tmp_path):
    with pytest.raises(Boom):
        with atomic_path(tmp_path / "sub" / "out") as tmp:
            tmp.mkdir()
            raise Boom
    assert list((tmp_path / "sub").iterdir()) == []


def test_output_appears_only_when_the_block_completes(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")
    with atomic_path(out) as tmp:
        tmp.write_text("new")
        assert tmp.parent == out.parent  # same folder: the final rename is atomic
        assert out.read_text() == "old"
    assert out.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_new_folder_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "clean"
    out.mkdir()
    (out / "documents.parquet").write_text("old")
    (out / "stale.jsonl").write_text("from an earlier run")
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "documents.parquet").write_text("new")
    assert [p.name for p in out.iterdir()] == ["documents.parquet"]
    assert (out / "documents.parquet").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["clean"]  # no .old-/.tmp- leftovers


def test_write_json_round_trips(tmp_path):
    write_json(tmp_path / "m" / "report.json", {"documents": 3, "by_source": {"a": 1}})
    assert json.loads((tmp_path / "m" / "report.json").read_text()) == {"documents": 3, "by_source": {"a": 1}}


def test_document_writer_round_trips_in_order_across_row_groups(tmp_path):
    path = tmp_path / "documents.parquet"
    with DocumentWriter(path, row_group_size=2) as writer:
        for doc in DOCS:
            writer.write(doc)
    assert writer.count == 5
    assert list(iter_documents(path, batch_size=2)) == DOCS
    assert count_rows(path) == 5
    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # written as it goes, not at the end


def test_document_writer_with_no_documents_writes_an_empty_table(tmp_path):
    path = tmp_path / "documents.parquet"
    with DocumentWriter(path):
        pass
    assert count_rows(path) == 0
    assert list(iter_documents(path)) == []
    assert pq.read_schema(path).names == ["id", "text", "source", "provenance", "metadata", "kind"]


def test_document_without_metadata_or_kind_is_written_with_an_empty_object_as_prose(tmp_path):
    path = tmp_path / "documents.parquet"
    with DocumentWriter(path) as writer:
        writer.write({"id": "a", "text": "t", "source": "s", "provenance": "p"})
        writer.write({"id": "b", "text": "t", "source": "s", "provenance": "p", "kind": "code"})
    assert list(iter_documents(path)) == [
        {"id": "a", "text": "t", "source": "s", "provenance": "p", "metadata": "{}", "kind": "prose"},
        {"id": "b", "text": "t", "source": "s", "provenance": "p", "metadata": "{}", "kind": "code"}]


def test_document_writer_leaves_nothing_when_interrupted(tmp_path):
    path = tmp_path / "documents.parquet"
    with pytest.raises(Boom):
        with DocumentWriter(path, row_group_size=2) as writer:
            for doc in DOCS:
                writer.write(doc)
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_count_rows_reads_the_footer(tmp_path):
    path = tmp_path / "documents.parquet"
    with DocumentWriter(path, row_group_size=3) as writer:
        for i in range(7):
            writer.write({**DOCS[0], "id": str(i)})
    assert count_rows(path) == 7


def test_iter_documents_of_a_non_parquet_file_is_a_data_error(tmp_path):
    path = tmp_path / "documents.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataError, match="documents.parquet"):
        list(iter_documents(path))


def test_leftovers_of_a_killed_run_are_removed_on_the_next_write(tmp_path):
    """kill -9 skips every cleanup: the next write of the same output removes what it left."""
    out = tmp_path / "packed"
    (tmp_path / ".packed.tmp-deadbeef").mkdir()
    (tmp_path / ".packed.tmp-deadbeef" / "train.parquet").write_bytes(b"half")
    (tmp_path / ".packed.old-cafebabe").write_text("old")
    (tmp_path / ".other.tmp-12345678").write_text("not ours")
    with atomic_path(out) as tmp:
        tmp.mkdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-12345678", "packed"]


# --- shards ---------------------------------------------------------------------------------------


def test_sharded_writer_rolls_over_at_shard_bytes_and_keeps_the_order(tmp_path):
    """Each DOCS text is 57 bytes of UTF-8 (44 characters): after two a shard holds 100 bytes
    or more, and the third starts the next; a document bigger than a shard still gets one."""
    assert len(DOCS[0]["text"].encode()) == 57
    with ShardedDocumentWriter(tmp_path / "raw", shard_bytes=100) as writer:
        for doc in DOCS:
            writer.write(doc)
    assert writer.shards == 3 and writer.count == 5
    shards = document_shards(tmp_path / "raw")
    assert [p.name for p in shards] == [shard_name(i) for i in range(3)] == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [count_rows(p) for p in shards] == [2, 2, 1]
    assert list(iter_documents(tmp_path / "raw")) == DOCS
    assert count_rows(tmp_path / "raw") == 5
    with ShardedDocumentWriter(tmp_path / "big", shard_bytes=1) as writer:
        for doc in DOCS[:2]:
            writer.write(doc)
    assert [count_rows(p) for p in document_shards(tmp_path / "big")] == [1, 1]


def test_shards_are_read_in_name_order_and_other_files_are_not_shards(tmp_path):
    folder = tmp_path / "clean"
    for i in (10, 2, 0):
        with DocumentWriter(folder / shard_name(i)) as writer:
            writer.write({**DOCS[0], "id": str(i)})
    (folder / "dropped_samples.jsonl").write_text("{}\n")
    assert [p.name for p in document_shards(folder)] == ["part-00000.parquet", "part-00002.parquet",
                                                         "part-00010.parquet"]
    assert [d["id"] for d in iter_documents(folder)] == ["0", "2", "10"]


def test_a_folder_without_shards_is_a_data_error_naming_it(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "documents.parquet").write_text("the layout before shards")
    with pytest.raises(DataError, match=r"raw: no document shards \(part-\*\.parquet\); run the stage"):
        document_shards(tmp_path / "raw")


@pytest.mark.parametrize("parts", [[[1, {"a": [2, 3]}], [], ["x\ny"]], [[], []], [[{"k": "é"}]]])
def test_write_json_list_writes_what_write_json_of_the_whole_list_writes(tmp_path, parts):
    paths = []
    for i, part in enumerate(parts):
        paths.append(tmp_path / f"part-{i}.json")
        write_json(paths[-1], part)
    write_json_list(tmp_path / "joined.json", paths)
    write_json(tmp_path / "whole.json", [item for part in parts for item in part])
    assert (tmp_path / "joined.json").read_bytes() == (tmp_path / "whole.json").read_bytes()


def test_place_links_a_finished_file_without_copying(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "work" / "part-00000.parquet").write_bytes(b"rows")
    place(tmp_path / "work" / "part-00000.parquet", tmp_path / "out" / "part-00000.parquet")
    assert (tmp_path / "out" / "part-00000.parquet").read_bytes() == b"rows"
    assert (tmp_path / "out" / "part-00000.parquet").stat().st_ino == \
        (tmp_path / "work" / "part-00000.parquet").stat().st_ino
