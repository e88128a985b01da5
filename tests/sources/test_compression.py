"""Compressed inputs (pretrain.sources.compression): every streamed reader through gzip,
Zstandard, bzip2 and xz; every member / frame / stream of a file; a file cut short or damaged
keeps the records before the damage and is counted by reason; the reader registry takes the
longest registered suffix first."""

import bz2
import gzip
import io
import json
import lzma
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pretrain.config.sources import DownloadConfig
from pretrain.sources import compression
from pretrain.sources.download import iter_documents
from pretrain.sources.files import READERS, read_files, reader_for
from pretrain.sources.records import Skipped

COMPRESS = {
    ".gz": lambda data: gzip.compress(data, mtime=0),
    ".zst": lambda data: zstandard.ZstdCompressor().compress(data),
    ".zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    ".bz2": bz2.compress,
    ".xz": lzma.compress,
}
RECORDS = [{"id": f"r{i}", "text": f"record {i}: naïve café", "lang": "en"} for i in range(5)]
JSONL = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS).encode()
CSV = ("id,text\n" + "".join(f'r{i},"record {i}, with a comma"\n' for i in range(3))).encode()
TSV = ("id\ttext\n" + "".join(f"r{i}\trecord {i}\n" for i in range(3))).encode()
PAGE = b'<html><head><meta charset="windows-1252"></head><body><p>caf\xe9</p></body></html>'
PLAIN = {  # inner name -> (bytes, what the documents are)
    "data.jsonl": (JSONL, [(r["id"], r["text"]) for r in RECORDS]),
    "data.json": (json.dumps(RECORDS).encode(), [(r["id"], r["text"]) for r in RECORDS]),
    "data.csv": (CSV, [(f"r{i}", f"record {i}, with a comma") for i in range(3)]),
    "data.tsv": (TSV, [(f"r{i}", f"record {i}") for i in range(3)]),
    "notes.txt": ("Zeile eins\nZeile zwei – ü\n".encode(), [(None, "Zeile eins\nZeile zwei – ü\n")]),
    "page.html": (PAGE, [(None, PAGE.decode("cp1252"))]),
}


def files(path, **kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    cfg = DownloadConfig(source="files", path=str(path), **kwargs)
    return list(iter_documents(cfg, skipped)), skipped


def texts(docs: list[dict]) -> list[tuple[str | None, str]]:
    """(record id, text) per document; None for the id of a whole-file document."""
    return [(d["id"] if ":" not in d["id"] and "/" not in d["id"] else None, d["text"]) for d in docs]


@pytest.mark.parametrize("codec", sorted(COMPRESS))
@pytest.mark.parametrize("inner", sorted(PLAIN))
def test_every_streamed_reader_reads_every_codec(tmp_path, codec, inner):
    raw, expected = PLAIN[inner]
    path = tmp_path / (inner + codec)
    path.write_bytes(COMPRESS[codec](raw))
    docs, skipped = files(path)
    assert texts(docs) == expected
    assert not skipped.files and not skipped
    if inner == "page.html":
        assert docs[0]["kind"] == "html" and docs[0]["id"] == path.as_posix()
        assert skipped.decoded == {"cp1252": 1}  # its meta charset, read through the stream


def test_gzip_reads_every_member(tmp_path):
    """RFC 1952 2.2: a gzip file is a series of members (``cat a.gz b.gz``, pigz)."""
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(JSONL[:JSONL.index(b"\n") + 1]) + gzip.compress(
        JSONL[JSONL.index(b"\n") + 1:]))
    docs, _ = files(path)
    assert [d["id"] for d in docs] == [r["id"] for r in RECORDS]


@pytest.mark.parametrize("codec", [".zst", ".bz2", ".xz"])
def test_every_frame_or_stream_is_read(tmp_path, codec):
    """zstd: RFC 8878 3.1, one or more frames (a skippable frame among them); bz2 and xz:
    concatenated streams (pbzip2, xz --block-size)."""
    lines = JSONL.splitlines(keepends=True)
    parts = [COMPRESS[codec](b"".join(lines[:2])), COMPRESS[codec](b"".join(lines[2:]))]
    if codec == ".zst":  # a skippable frame: magic 0x184D2A50 (little-endian), size, payload
        parts.insert(1, (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc")
    path = tmp_path / f"data.jsonl{codec}"
    path.write_bytes(b"".join(parts))
    docs, skipped = files(path)
    assert [d["id"] for d in docs] == [r["id"] for r in RECORDS] and not skipped.files


@pytest.mark.parametrize("codec", [".gz", ".zst", ".bz2", ".xz"])
def test_a_truncated_file_keeps_the_records_before_the_cut_and_is_counted(tmp_path, codec):
    """The first member / frame / stream holds 3 whole records; the second is cut to half."""
    lines = JSONL.splitlines(keepends=True)
    first, second = COMPRESS[codec](b"".join(lines[:3])), COMPRESS[codec](b"".join(lines[3:]))
    path = tmp_path / f"data.jsonl{codec}"
    path.write_bytes(first + second[:len(second) // 2])
    docs, skipped = files(path)
    assert [d["id"] for d in docs] == ["r0", "r1", "r2"]
    assert dict(skipped.files) == {"truncated_compressed_file": 1}
    assert skipped.file_bytes["truncated_compressed_file"] == path.stat().st_size
    assert skipped.examples["truncated_compressed_file"][0].startswith(path.as_posix() + " (")
    assert not skipped  # the cut line is not also a malformed record


def test_damaged_bytes_keep_the_records_before_and_are_counted(tmp_path):
    lines = JSONL.splitlines(keepends=True)
    second = bytearray(gzip.compress(b"".join(lines[3:]) * 50, mtime=0))
    second[20] ^= 0xFF  # inside the deflate data
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(lines[:3])) + bytes(second))
    docs, skipped = files(path)
    assert [d["id"] for d in docs][:3] == ["r0", "r1", "r2"]
    assert dict(skipped.files) == {"damaged_compressed_file": 1}


def test_a_compressed_file_beside_a_plain_one_in_a_folder(tmp_path):
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(JSONL))
    (tmp_path / "b.jsonl").write_bytes(JSONL.replace(b'"r', b'"b'))
    docs, skipped = files(tmp_path)
    assert [d["id"] for d in docs] == [r["id"] for r in RECORDS] + [f"b{i}" for i in range(5)]
    assert docs[0]["provenance"] == f"{(tmp_path / 'a.jsonl.gz').as_posix()}:1"
    assert not skipped.files


def test_unknown_inner_types_and_compressed_parquet_are_counted_by_name(tmp_path):
    (tmp_path / "blob.bin.gz").write_bytes(gzip.compress(b"\x00\x01" * 100))
    (tmp_path / "archive.tar.zst").write_bytes(COMPRESS[".zst"](b"x" * 100))
    table = io.BytesIO()
    pq.write_table(pa.table({"text": ["a"]}), table)
    (tmp_path / "rows.parquet.gz").write_bytes(gzip.compress(table.getvalue()))
    (tmp_path / "ok.jsonl").write_bytes(JSONL)
    docs, skipped = files(tmp_path)
    assert len(docs) == 5
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert dict(skipped.files) == {"unsupported_file_type": 2, "compressed_parquet": 1}
    assert skipped.file_bytes == {
        "unsupported_file_type": sizes["blob.bin.gz"] + sizes["archive.tar.zst"],
        "compressed_parquet": sizes["rows.parquet.gz"]}


def test_the_longest_registered_suffix_chooses_the_reader(tmp_path):
    """A reader registered for a compound suffix (a WARC reader for ``.warc.gz``) reads those
    files itself, compression and all; ``.warc`` alone does not make ``x.warc.gz`` a gzip of
    something it reads, nor Parquet's reader a compressed Parquet file."""
    def warc_gz(path, cfg, skipped, label):
        yield from ()

    def warc(path, cfg, skipped, label):
        yield from ()

    readers = {".jsonl": READERS[".jsonl"], ".warc.gz": warc_gz, ".warc": warc}
    assert reader_for(tmp_path / "CC-MAIN-1.warc.gz", readers) is warc_gz
    assert reader_for(tmp_path / "CC-MAIN-1.WARC", readers) is warc
    assert reader_for(tmp_path / "CC-MAIN-1.warc.wet.gz", readers) is None
    assert reader_for(tmp_path / "CC-MAIN-1.warc.wet.gz", {**readers, ".warc.wet.gz": warc}) is warc
    assert reader_for(tmp_path / "only.warc.gz", {".warc": warc}) is None  # not streamed
    assert reader_for(tmp_path / "v1.2.data.jsonl.zst", READERS) is READERS[".jsonl"]
    assert reader_for(tmp_path / "rows.parquet.gz", READERS) is None
    assert reader_for(tmp_path / "CC-MAIN-1.warc.wet.gz", READERS) is READERS[".warc.wet.gz"]


def test_kinds_are_told_by_the_extension_under_the_compression(tmp_path):
    (tmp_path / "tool.py.gz").write_bytes(gzip.compress(b"import os\nprint(os.sep)\n"))
    (tmp_path / "page.htm.bz2").write_bytes(bz2.compress(b"<p>hello</p>"))
    (tmp_path / "notes.md.xz").write_bytes(lzma.compress(b"# Notes\n"))
    docs, _ = files(tmp_path)
    assert {d["id"].rsplit("/", 1)[1]: d["kind"] for d in docs} == {
        "notes.md.xz": "prose", "page.htm.bz2": "html", "tool.py.gz": "code"}


def test_reading_is_streamed_not_whole(tmp_path, monkeypatch):
    """A JSON lines file is read in chunks: the first record is out before the decoder has
    seen the whole file (here 2,000 lines of random hex, ~200 kB compressed)."""
    rng = random.Random(0)
    lines = b"".join(json.dumps({"text": rng.randbytes(100).hex()}).encode() + b"\n"
                     for i in range(2000))
    path = tmp_path / "big.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(lines))
    fed = []
    original = compression._ZstdFrames.readinto

    def counting(self, buffer):
        n = original(self, buffer)
        fed.append(self._file.tell())
        return n

    monkeypatch.setattr(compression._ZstdFrames, "readinto", counting)
    docs = read_files(DownloadConfig(source="files", path=str(path)), Skipped(), "files")
    next(docs)
    assert fed and fed[-1] < path.stat().st_size / 2


def test_a_disk_error_is_not_damage(tmp_path, monkeypatch):
    path = tmp_path / "data.jsonl.gz"
    path.write_bytes(gzip.compress(JSONL))

    class Failing(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise OSError(5, "Input/output error")

    monkeypatch.setitem(compression.CODECS, ".gz", lambda p: Failing())
    from pretrain.errors import DataError
    with pytest.raises(DataError, match="cannot read \\(Input/output error\\)"):
        files(path)
