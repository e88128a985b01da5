"""Per-source skip and limit, path lists (Common Crawl's ``warc.paths.gz`` style), and the
progress bar of a long file."""

import gzip
import json

import pytest

from pretrain.config.sources import DownloadConfig, MixSourceConfig
from pretrain.errors import DataError
from pretrain.sources import files as files_module
from pretrain.sources.download import iter_documents
from pretrain.sources.records import Skipped

from tests.sources.test_files import files


def jsonl(path, n, start=0):
    path.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(start, start + n)))
    return path


def test_skip_is_counted_and_limit_stops_reading(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", 10)
    docs, skipped = files(path, skip=3, limit=4)
    assert [d["text"] for d in docs] == ["doc 3", "doc 4", "doc 5", "doc 6"]
    assert dict(skipped) == {"skipped_by_config": 3}
    assert skipped.examples["skipped_by_config"] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    # the limit stops the reader: a damaged line past it is never read
    with path.open("a") as handle:
        handle.write("not json\n")
    assert len(files(path, limit=10)[0]) == 10 and dict(files(path, limit=10)[1]) == {}
    assert dict(files(path)[1]) == {"malformed_json_line": 1}


def test_skip_and_limit_per_mix_entry_and_the_error_names_them(tmp_path):
    a, b = jsonl(tmp_path / "a.jsonl", 5), jsonl(tmp_path / "b.jsonl", 5, start=100)
    sources = [MixSourceConfig(name="a", source="files", path=str(a), skip=2),
               MixSourceConfig(name="b", source="files", path=str(b), limit=2)]
    skipped = Skipped()
    docs = list(iter_documents(DownloadConfig(source="mix", sources=sources, max_documents=5), skipped))
    assert sorted(d["text"] for d in docs) == ["doc 100", "doc 101", "doc 2", "doc 3", "doc 4"]
    assert dict(skipped) == {"skipped_by_config": 2}
    sources[1] = MixSourceConfig(name="b", source="files", path=str(b), limit=1)
    with pytest.raises(DataError, match=r"\('b'\): has 1 usable documents, but its weight asks for "
                                        r"2 .*, or raise its limit \(1\)"):
        list(iter_documents(DownloadConfig(source="mix", sources=sources, max_documents=4), Skipped()))
    with pytest.raises(ValueError, match="skip: expected a value >= 0"):
        DownloadConfig(source="files", path="x", skip=-1)
    with pytest.raises(ValueError, match="limit: not used when source is 'mix'"):
        DownloadConfig(source="mix", sources=sources, max_documents=4, limit=3)


def test_a_path_list_names_files_relative_to_it_or_absolute_in_its_order(tmp_path):
    (tmp_path / "crawl" / "seg").mkdir(parents=True)
    b = jsonl(tmp_path / "crawl" / "seg" / "b.jsonl", 1, start=1)
    a = jsonl(tmp_path / "elsewhere.jsonl", 1)
    listing = tmp_path / "crawl" / "warc.paths.gz"
    with gzip.open(listing, "wt") as handle:
        handle.write(f"# a comment\nseg/b.jsonl\n\n{a}\nseg/b.jsonl\n")
    docs, _ = files(listing)
    assert [(d["text"], d["provenance"]) for d in docs] == [("doc 1", f"{b}:1"), ("doc 0", f"{a}:1")]
    plain = tmp_path / "crawl" / "list.paths"
    plain.write_text("seg/b.jsonl\n")
    assert [d["text"] for d in files(plain)[0]] == ["doc 1"]


@pytest.mark.parametrize("line, message", [
    ("https://data.commoncrawl.org/crawl-data/x.warc.gz",
     r"list\.paths:2: 'https://data\.commoncrawl\.org/crawl-data/x\.warc\.gz' is a URL; a path "
     r"list names local files"),
    ("missing.jsonl", r"list\.paths:2: 'missing\.jsonl' is not a file"),
])
def test_a_path_list_line_that_cannot_be_read_is_named(tmp_path, line, message):
    jsonl(tmp_path / "ok.jsonl", 1)
    (tmp_path / "list.paths").write_text(f"ok.jsonl\n{line}\n")
    with pytest.raises(DataError, match=r"^download\.path: .*" + message):
        files(tmp_path / "list.paths")
    (tmp_path / "list.paths").write_text("\n# nothing\n")
    with pytest.raises(DataError, match="names no file"):
        files(tmp_path / "list.paths")


def test_a_large_file_gets_a_progress_bar_on_stderr(tmp_path, monkeypatch, capsys):
    path = jsonl(tmp_path / "big.jsonl", 3)
    monkeypatch.setattr(files_module, "PROGRESS_BYTES", path.stat().st_size)
    assert len(files(path)[0]) == 3
    assert f"{path}: " in capsys.readouterr().err
    monkeypatch.setattr(files_module, "PROGRESS_BYTES", path.stat().st_size + 1)
    files(path)
    assert f"{path}" not in capsys.readouterr().err
