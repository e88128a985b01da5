"""The download stage as read tasks on the executor: the same documents as one reader reading
every source in order, the same bytes for any worker count, byte ranges of a large JSON lines
file, capped sources read in waves, ids made unique across tasks, and one line naming the file
that fails."""

import gzip
import json
import random
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pretrain.config.executor import ExecutorConfig
from pretrain.config.sources import DownloadConfig, MixSourceConfig
from pretrain.errors import DataError
from pretrain.io import iter_documents as read_table
from pretrain.sources.assemble import made_unique
from pretrain.sources.download import download, iter_documents, unique_ids
from pretrain.sources.records import Skipped
from pretrain.sources.tasks import id_digest

import numpy as np


def make_inputs(folder: Path) -> Path:
    """A folder of several formats: a JSON lines file of ~60 kB (cut into ranges when task_mb
    is small), with blank, damaged and empty-text lines and ids repeated across files; a gzip
    JSON lines file; a Parquet file; small text files (grouped)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    lines = []
    for i in range(600):
        if i % 97 == 5:
            lines.append("not json")
        elif i % 89 == 7:
            lines.append("")
        elif i % 83 == 3:
            lines.append(json.dumps({"id": f"r{i}", "text": ""}))
        else:
            words = " ".join(rng.choice(["alpha", "beta", "gamma", "délta"]) for _ in range(rng.randint(5, 30)))
            lines.append(json.dumps({"id": f"r{i % 250}", "text": f"{i}: {words}", "n": i}))
    (folder / "a-big.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with gzip.open(folder / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i in range(40):
            handle.write(json.dumps({"id": f"r{i}", "text": f"gz {i}"}) + "\n")
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(30)] + ["r1"],
                             "text": [f"parquet {i}" for i in range(31)]}), folder / "c.parquet")
    for i in range(6):
        (folder / f"d{i}.txt").write_text(f"text file {i}\n\nsecond paragraph\n", encoding="utf-8")
    return folder


def run(cfg: DownloadConfig, out: Path, workers: int = 1, work: Path | None = None) -> tuple[dict, list[dict]]:
    report = download(cfg, out, executor=ExecutorConfig(workers=workers), work_root=work)
    return report, list(read_table(out))


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    return make_inputs(tmp_path_factory.mktemp("in") / "corpus")


def test_tasks_give_the_documents_of_one_reader_and_the_same_bytes_for_1_and_2_workers(inputs, tmp_path):
    cfg = DownloadConfig(source="files", path=str(inputs), task_mb=0.015, shard_mb=0.01)
    serial_skipped = Skipped()
    serial = list(iter_documents(cfg, serial_skipped))
    report, docs = run(cfg, tmp_path / "one")
    assert report["inputs"]["tasks"] >= 6  # ranges of the large file, groups of the small ones
    assert report["inputs"]["files"] == 9 and report["documents"] == len(serial)
    assert [{k: d[k] for k in ("id", "text", "provenance", "metadata", "kind", "source")} for d in docs] == serial
    assert report["skipped"] == dict(sorted(serial_skipped.items()))
    assert report["skipped_examples"] == dict(sorted(serial_skipped.examples.items()))
    assert report["ids"]["duplicate_made_unique"] == serial_skipped.ids["duplicate_made_unique"] > 0
    two, _ = run(cfg, tmp_path / "two", workers=2)
    assert two == report and files_of(tmp_path / "two") == files_of(tmp_path / "one")


def test_a_large_json_lines_file_is_read_in_ranges_with_the_line_numbers_of_the_whole(inputs, tmp_path):
    path = inputs / "a-big.jsonl"
    whole, docs_whole = run(DownloadConfig(source="files", path=str(path)), tmp_path / "whole")
    cut, docs_cut = run(DownloadConfig(source="files", path=str(path), task_mb=0.004), tmp_path / "cut")
    assert whole["inputs"]["tasks"] == 1 and cut["inputs"]["tasks"] >= 10
    assert docs_cut == docs_whole
    assert docs_cut[-1]["provenance"] == f"{path}:600"
    assert {k: v for k, v in cut.items() if k not in ("inputs", "shards")} == \
        {k: v for k, v in whole.items() if k not in ("inputs", "shards")}


def test_a_capped_source_reads_only_the_waves_it_needs(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i:02d}.jsonl").write_text(json.dumps({"text": f"doc {i}"}) + "\n")
    size = (folder / "00.jsonl").stat().st_size
    one_each = size / 1e6  # a task per file, none cut into ranges
    cfg = DownloadConfig(source="files", path=str(folder), task_mb=one_each, max_documents=2, skip=2)
    report, docs = run(cfg, tmp_path / "out", workers=2)
    assert [d["text"] for d in docs] == ["doc 2", "doc 3"]
    assert report["inputs"] == {"files": 4, "bytes": 4 * size, "tasks": 4}  # one wave of 4, not 20 files
    assert report["skipped"] == {"skipped_by_config": 2}
    cfg = DownloadConfig(source="files", path=str(folder), task_mb=one_each, limit=7)
    report, docs = run(cfg, tmp_path / "out2")
    assert len(docs) == 7 and report["inputs"]["tasks"] == 4 + 8


def test_a_mix_read_by_tasks_is_the_mix_of_one_reader(inputs, tmp_path):
    sources = [MixSourceConfig(name="big", source="files", path=str(inputs / "a-big.jsonl"), weight=3, skip=4),
               MixSourceConfig(name="rest", source="files", path=str(inputs / "[bcd]*"), weight=1)]
    cfg = DownloadConfig(source="mix", sources=sources, max_documents=200, task_mb=0.004, seed=3)
    serial = list(iter_documents(cfg, Skipped()))
    report, docs = run(cfg, tmp_path / "one", workers=2)
    assert [{k: d[k] for k in ("id", "text", "provenance", "source")} for d in docs] == \
        [{k: d[k] for k in ("id", "text", "provenance", "source")} for d in serial]
    assert report["mix"]["big"]["documents"] == 150 and report["skipped"]["skipped_by_config"] == 4
    short = DownloadConfig(source="mix", sources=sources, max_documents=400, task_mb=0.004)
    with pytest.raises(DataError, match=r"download.sources\[1\] \('rest'\): has 77 usable documents, "
                                        r"but its weight asks for 100"):
        run(short, tmp_path / "short")


def test_ids_are_made_unique_as_one_reader_makes_them():
    rng = random.Random(1)
    for trial in range(30):
        n = rng.randint(1, 60)
        docs = [{"id": rng.choice(["a", "b", "c", "p/a", "p/b", "p#2/a", f"x{i}"]), "provenance": "p",
                 "text": "t"} for i in range(n)]
        serial = [d["id"] for d in unique_ids(iter(docs), Skipped())]
        digests = np.array([id_digest(d["id"]) for d in docs], dtype=np.uint64)
        new = made_unique(digests, lambda i: docs[i]["id"], lambda i: docs[i]["provenance"])
        assert [new.get(i, d["id"]) for i, d in enumerate(docs)] == serial, (trial, [d["id"] for d in docs])


def test_files_that_each_number_their_records_from_0_get_the_ids_of_one_reader(tmp_path):
    folder = tmp_path / "numbered"
    folder.mkdir()
    for f in range(12):
        (folder / f"{f:02d}.jsonl").write_text(
            "".join(json.dumps({"id": i, "text": f"file {f} record {i}"}) + "\n" for i in range(40)))
    cfg = DownloadConfig(source="files", path=str(folder), task_mb=1e-4, shard_mb=0.001)
    serial = [d["id"] for d in iter_documents(cfg, Skipped())]
    report, docs = run(cfg, tmp_path / "out", workers=2)
    assert [d["id"] for d in docs] == serial and len(set(serial)) == 480
    assert report["ids"]["duplicate_made_unique"] == 440 and report["shards"] > 12


def test_no_ids_and_one_id_need_nothing_made_up():
    assert made_unique(np.zeros(0, dtype=np.uint64), [].__getitem__, [].__getitem__) == {}
    assert made_unique(np.array([id_digest("a")], dtype=np.uint64), ["a"].__getitem__, ["p"].__getitem__) == {}


def test_ids_whose_digests_collide_are_left_alone():
    docs = ["first", "second", "first"]
    digests = np.array([7, 7, 7], dtype=np.uint64)  # as if the three digests were one
    assert made_unique(digests, docs.__getitem__, lambda i: "p") == {2: "p/first"}


def test_an_input_that_fails_stops_the_stage_in_one_line_naming_it(inputs, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (folder / name).write_text('{"text": "fine"}\n')
    (folder / "c.parquet").write_bytes(b"PAR1 not really PAR1")
    with pytest.raises(DataError) as err:
        run(DownloadConfig(source="files", path=str(folder), task_mb=17e-6), tmp_path / "out", workers=2)
    assert str(err.value).startswith(f"{folder / 'c.parquet'}: cannot read Parquet (")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


# --- kill -9 and resume: the finished inputs are not read again ------------------------------------

ROOT = Path(__file__).resolve().parents[2]
LOGGING_READER = '''
import os
if os.environ.get("READ_LOG"):
    import pretrain.sources.files as files
    original = files.READERS[".jsonl"]

    def logged(path, cfg, skipped, label):
        log = os.environ["READ_LOG"]
        with open(log, "a") as handle:
            handle.write(path.name + "\\n")
        if path.name == os.environ["KILL_AT"] and not os.path.exists(log + ".killed"):
            open(log + ".killed", "w").close()
            os.killpg(os.getpgid(0), 9)  # the stage, its forkserver and its workers
        yield from original(path, cfg, skipped, label)

    files.READERS[".jsonl"] = logged
    files.STREAMED.add(logged)
'''


def stage(folder: Path, env: dict) -> int:
    import os
    import subprocess
    import sys

    with open(folder / "log.txt", "a") as out:
        return subprocess.run([sys.executable, str(ROOT / "stages" / "download.py"), "--out", "raw", "--work",
                               "work", "--metrics", "download.json"], cwd=folder, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, **env}).returncode


def test_a_killed_download_resumes_without_reading_its_finished_inputs_again(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(LOGGING_READER)
    folder = tmp_path / "run"
    (folder / "in").mkdir(parents=True)
    for i in range(6):
        (folder / "in" / f"{i:02d}.jsonl").write_text(json.dumps({"text": f"doc {i}"}) + "\n")
    size = (folder / "in" / "00.jsonl").stat().st_size
    (folder / "params.yaml").write_text(f"executor:\n  workers: 2\ndownload:\n  source: files\n  path: in\n"
                                        f"  task_mb: {size / 1e6}\n")
    log = tmp_path / "reads.txt"
    env = {"PYTHONPATH": f"{site}:{ROOT / 'src'}", "READ_LOG": str(log), "KILL_AT": "05.jsonl"}
    assert stage(folder, env) == -9
    first = log.read_text().split()
    marked = sorted(int(m.name[5:10]) for m in (folder / "work").rglob("part-*.done.json"))
    assert marked and not (folder / "raw").exists()
    assert stage(folder, env) == 0, (folder / "log.txt").read_text()
    again = log.read_text().split()[len(first):]
    assert sorted(again) == [f"{i:02d}.jsonl" for i in range(6) if i not in marked]  # reader calls
    docs = list(read_table(folder / "raw"))
    assert [d["text"] for d in docs] == [f"doc {i}" for i in range(6)]
    assert not any((folder / "work").iterdir())
    whole = tmp_path / "whole"  # an uninterrupted run on a copy
    shutil.copytree(folder / "in", whole / "in")
    (whole / "params.yaml").write_text((folder / "params.yaml").read_text())
    assert stage(whole, {}) == 0
    assert files_of(whole / "raw") == files_of(folder / "raw")
    assert (whole / "download.json").read_bytes() == (folder / "download.json").read_bytes()


def test_a_dataset_and_a_mix_with_it_are_read_by_tasks_as_by_one_reader(inputs, tmp_path):
    import datasets

    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": [f"row {i}" if i % 7 else "" for i in range(50)]}).save_to_disk(str(saved))
    for cfg in (DownloadConfig(source="hf", path=str(saved), max_documents=30, skip=2),
                DownloadConfig(source="mix", max_documents=60, seed=1, sources=[
                    MixSourceConfig(name="hf", source="hf", path=str(saved)),
                    MixSourceConfig(name="files", source="files", path=str(inputs / "a-big.jsonl"))],
                    task_mb=0.01)):
        skipped = Skipped()
        serial = list(iter_documents(cfg, skipped))
        report, docs = run(cfg, tmp_path / cfg.source, workers=2)
        assert [(d["id"], d["text"], d["source"]) for d in docs] == [(d["id"], d["text"], d["source"]) for d in serial]
        assert report["documents"] == len(serial) > 0


# --- found in review: one file in two entries, weights, stale streams, empty ranged files ---------


def test_one_large_file_in_two_mix_entries_is_cut_once_for_each(inputs, tmp_path):
    big = str(inputs / "a-big.jsonl")
    sources = [MixSourceConfig(name="a", source="files", path=big),
               MixSourceConfig(name="b", source="files", path=big, skip=100)]
    cfg = DownloadConfig(source="mix", sources=sources, max_documents=300, task_mb=0.004)
    serial = list(iter_documents(cfg, Skipped()))
    report, docs = run(cfg, tmp_path / "one", workers=2)
    assert [(d["id"], d["text"]) for d in docs] == [(d["id"], d["text"]) for d in serial]
    assert report["inputs"]["bytes"] <= 2 * (inputs / "a-big.jsonl").stat().st_size
    with pytest.raises(DataError, match=r"\('b'\): has \d+ usable documents, but its weight asks for 500"):
        run(DownloadConfig(source="mix", sources=sources, max_documents=1000, task_mb=0.004), tmp_path / "two")


def test_a_mix_weight_too_small_for_one_document_stops_the_stage(inputs, tmp_path):
    from pretrain.errors import ConfigError

    sources = [MixSourceConfig(name="a", source="files", path=str(inputs / "c.parquet"), weight=100),
               MixSourceConfig(name="b", source="files", path=str(inputs / "b.jsonl.gz"), weight=1)]
    with pytest.raises(ConfigError, match=r"download.sources\[1\].weight: 1 gives 'b' no document of max_documents 5"):
        run(DownloadConfig(source="mix", sources=sources, max_documents=5), tmp_path / "out")


def test_a_resumed_stream_source_reads_its_changed_local_dataset_again(tmp_path, monkeypatch):
    import datasets

    from pretrain.sources import download as stage

    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": ["old 0", "old 1"]}).save_to_disk(str(saved))
    cfg = DownloadConfig(source="hf", path=str(saved))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the read tasks, before data/raw: as a kill leaves it
    monkeypatch.setattr(stage, "_assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "raw", work=tmp_path / "work")
    assert list((tmp_path / "work").rglob("part-00000.done.json"))
    monkeypatch.undo()
    shutil.rmtree(saved)
    datasets.Dataset.from_dict({"text": ["new 0", "new 1", "new 2"]}).save_to_disk(str(saved))
    _, docs = run(cfg, tmp_path / "raw", work=tmp_path / "work")
    assert [d["text"] for d in docs] == ["new 0", "new 1", "new 2"]


def test_a_blank_file_read_in_ranges_is_counted_empty_as_a_whole_one(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "blank.jsonl").write_text("\n" * 3000)
    (folder / "ok.jsonl").write_text('{"text": "kept"}\n')
    whole, _ = run(DownloadConfig(source="files", path=str(folder)), tmp_path / "whole")
    cut, _ = run(DownloadConfig(source="files", path=str(folder), task_mb=0.001), tmp_path / "cut")
    assert cut["inputs"]["tasks"] >= 3
    assert cut["skipped_files"] == whole["skipped_files"] == {"empty_file": {"files": 1, "bytes": 3000}}


def test_an_unexpected_reader_error_in_a_group_names_the_file(tmp_path, monkeypatch):
    from pretrain.sources import files as files_module

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        (folder / name).write_text('{"text": "fine"}\n')
    original = files_module.READERS[".jsonl"]

    def fragile(path, cfg, skipped, label):
        if path.name == "b.jsonl":
            raise ZeroDivisionError("division by zero")
        yield from original(path, cfg, skipped, label)
    monkeypatch.setitem(files_module.READERS, ".jsonl", fragile)
    with pytest.raises(DataError) as err:
        run(DownloadConfig(source="files", path=str(folder)), tmp_path / "out")
    assert str(err.value) == f"{folder / 'b.jsonl'}: cannot read (ZeroDivisionError: division by zero)"


def test_costly_files_are_grouped_by_their_work(tmp_path):
    from pretrain.sources.tasks import plan_files

    from tests.sources.test_pdf import write_pdf

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        write_pdf(folder / f"{i}.pdf", [[f"page of file {i}"]])
        (folder / f"{i}.jsonl").write_text('{"text": "x"}\n')
    pdf_size = (folder / "0.pdf").stat().st_size
    budget = 4 * pdf_size * 50  # four PDFs' work, 200 PDF sizes of JSON lines
    src = DownloadConfig(source="files", path=str(folder / "*.pdf"))
    assert [len(spec[1]) for spec in plan_files(src, "download.path", budget)] == [4, 4]
    src = DownloadConfig(source="files", path=str(folder / "*.jsonl"))
    assert [len(spec[1]) for spec in plan_files(src, "download.path", budget)] == [8]


def test_what_a_capped_source_read_or_left_past_its_cap_is_counted(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(10):
        (folder / f"{i:02d}.jsonl").write_text("".join(json.dumps({"text": f"doc {i}.{j}"}) + "\n" for j in range(3)))
    size = (folder / "00.jsonl").stat().st_size
    cfg = DownloadConfig(source="files", path=str(folder), task_mb=size / 1e6, max_documents=5)
    report, docs = run(cfg, tmp_path / "out", workers=2)
    assert len(docs) == 5 and report["inputs"]["files"] == 4  # one wave of 4 files, 12 documents
    assert report["skipped"] == {"over_max_documents": 7}
    assert report["skipped_examples"]["over_max_documents"][0] == f"{folder / '01.jsonl'}:3"
    assert report["skipped_files"] == {"not_read_over_cap": {"files": 6, "bytes": 6 * size}}
    report, _ = run(DownloadConfig(source="files", path=str(folder), task_mb=size / 1e6, limit=4),
                    tmp_path / "limit")
    assert report["skipped"] == {"over_limit": 8}
