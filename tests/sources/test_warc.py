"""WARC and WET files: HTML responses become HTML documents (HTTP charset first, transfer and
content encodings undone), WET records prose documents, every other record counted by reason."""

import gzip
import json

import pytest

from pretrain.config.sources import DownloadConfig
from pretrain.errors import DataError
from pretrain.sources.download import iter_documents
from pretrain.sources.records import Skipped

RUSSIAN = "Москва является столицей России и крупнейшим городом страны."
FRENCH = "Le château se trouve au bord de la rivière, où les élèves étudient."


def record(kind: str, n: int, block: bytes,
           content_type: str = "application/http; msgtype=response",
           uri: str = "http://example.org/") -> bytes:
    """One WARC/1.1 record, as a crawler writes it."""
    head = (f"WARC/1.1\r\nWARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{n:08d}-0000-0000-0000-"
            f"000000000000>\r\nWARC-Date: 2026-12-0{n % 9 + 1}T10:00:00Z\r\n"
            f"WARC-Target-URI: {uri}{n}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def http(body: bytes, content_type: str = "text/html", status: str = "200 OK",
         *extra: str) -> bytes:
    headers = "".join(f"{h}\r\n" for h in (f"Content-Type: {content_type}", *extra))
    return f"HTTP/1.1 {status}\r\n{headers}\r\n".encode() + body


def page(text: str, meta: str = "utf-8") -> str:
    return f"<html><head><meta charset=\"{meta}\"></head><body><p>{text}</p></body></html>"


def read(path, **kwargs) -> tuple[list[dict], Skipped]:
    skipped = Skipped()
    docs = list(iter_documents(DownloadConfig(source="files", path=str(path), **kwargs), skipped))
    return docs, skipped


def rid(n: int) -> str:
    return f"<urn:uuid:{n:08d}-0000-0000-0000-000000000000>"


def test_http_charset_wins_over_the_pages_meta_and_encodings_are_undone(tmp_path):
    # The meta tags are wrong, in an encoding that decodes the same bytes to other letters:
    # read by them first, the text would be garbled rather than fail.
    cyrillic = page(RUSSIAN, meta="koi8-r").encode("windows-1251")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                       for part in (page(FRENCH).encode()[:20], page(FRENCH).encode()[20:]))
    path = tmp_path / "crawl.warc"
    path.write_bytes(
        record("response", 1, http(cyrillic, "text/html; charset=windows-1251"))
        + record("response", 2, http(gzip.compress(page(FRENCH, "iso-8859-5").encode("cp1252")),
                                     "text/html; charset=cp1252", "200 OK",
                                     "Content-Encoding: gzip"))
        + record("response", 3, http(chunked + b"0\r\n\r\n", "text/html", "200 OK",
                                     "Transfer-Encoding: chunked")))
    docs, skipped = read(path)
    assert [d["id"] for d in docs] == [rid(n) for n in (1, 2, 3)]
    assert [d["kind"] for d in docs] == ["html"] * 3
    assert RUSSIAN in docs[0]["text"] and "<meta" in docs[0]["text"]  # raw HTML, decoded
    assert FRENCH in docs[1]["text"] and FRENCH in docs[2]["text"]
    assert skipped.decoded == {"cp1251": 1, "cp1252": 1}
    assert json.loads(docs[0]["metadata"]) == {
        "url": "http://example.org/1", "date": "2026-12-02T10:00:00Z", "record_id": rid(1),
        "status": 200, "content_type": "text/html"}
    assert docs[0]["provenance"].startswith(f"{path.as_posix()}@0")
    assert not skipped


def test_other_records_are_counted_by_reason(tmp_path):
    path = tmp_path / "mixed.warc"
    path.write_bytes(
        record("warcinfo", 1, b"software: test\r\n", "application/warc-fields")
        + record("request", 2, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n",
                 "application/http; msgtype=request")
        + record("response", 3, http(page(FRENCH).encode()))
        + record("metadata", 4, b"fetchTimeMs: 12\r\n", "application/warc-fields")
        + record("revisit", 5, http(b"", "text/html"))
        + record("response", 6, http(b"\x89PNG\r\n\x1a\n", "image/png"))
        + record("response", 7, http(b"%PDF-1.7", "application/pdf"))
        + record("response", 8, http(page("gone").encode(), "text/html", "404 Not Found"))
        + record("response", 9, http(b"", "text/html", "301 Moved Permanently", "Location: /"))
        + record("response", 10, http(b"not gzip", "text/html", "200 OK", "Content-Encoding: gzip"))
        + record("response", 11, http(b" \r\n ", "text/html")))
    docs, skipped = read(path)
    assert [d["id"] for d in docs] == [rid(3)]
    assert skipped == {"warc_warcinfo": 1, "warc_request": 1, "warc_metadata": 1,
                       "warc_revisit": 1, "not_html_response": 2, "http_error": 1,
                       "http_redirect": 1, "undecodable_http_body": 1, "empty_body": 1}
    assert skipped.examples["http_error"] == [f"{path.as_posix()}@{_offset(path, 8)}"]


def _offset(path, n: int) -> int:
    """The byte offset of the n-th record (from 1) of an uncompressed WARC file."""
    data, at = path.read_bytes(), -1
    for _ in range(n):
        at = data.index(b"WARC/1.1\r\n", at + 1)
    return at


@pytest.mark.parametrize("cut", [10, 200, 1])
def test_a_truncated_last_record_is_counted_not_raised(tmp_path, cut):
    """Cut inside the last record's block (10 bytes short), inside its header (200 bytes in),
    or after its first byte (FastWARC cannot parse what is left)."""
    first = record("response", 1, http(page(FRENCH).encode()))
    last = record("response", 2, http(page(RUSSIAN * 5).encode()))
    path = tmp_path / "cut.warc"
    path.write_bytes(first + (last[:-4 - cut] if cut == 10 else last[:cut]))
    docs, skipped = read(path)
    assert [d["id"] for d in docs] == [rid(1)]
    assert skipped == ({"damaged_record": 1} if cut == 1 else {"truncated_record": 1})


@pytest.mark.parametrize("cut", ["half", 1, 5, 11])
def test_multi_member_warc_gz_as_common_crawl_ships_it(tmp_path, cut):
    """Each record its own gzip member; the last one cut short: halfway, or inside its 10-byte
    gzip header or just past it (where FastWARC sees a clean end of the stream)."""
    members = [gzip.compress(record("response", n, http(page(f"{FRENCH} {n}").encode())))
               for n in range(1, 5)]
    path = tmp_path / "CC-MAIN-00000.warc.gz"
    path.write_bytes(b"".join(members[:3]) + members[3][:len(members[3]) // 2 if cut == "half" else cut])
    docs, skipped = read(path)
    assert [d["id"] for d in docs] == [rid(n) for n in (1, 2, 3)]
    assert f"{FRENCH} 3" in docs[2]["text"]
    assert skipped == {"truncated_record": 1}
    assert skipped.examples["truncated_record"] == [
        f"{path.as_posix()}@{sum(len(m) for m in members[:3])}"]


def test_wet_conversion_records_are_prose(tmp_path):
    wet = (record("warcinfo", 1, b"software: test\r\n", "application/warc-fields")
           + record("conversion", 2, FRENCH.encode(), "text/plain")
           + record("conversion", 3, RUSSIAN.encode(), "text/plain")
           + record("conversion", 4, b"\r\n", "text/plain"))
    path = tmp_path / "CC-MAIN-00000.warc.wet.gz"
    path.write_bytes(gzip.compress(wet))
    docs, skipped = read(path, metadata_fields=["url", "record_id"])
    assert [(d["id"], d["text"]) for d in docs] == [(rid(2), FRENCH), (rid(3), RUSSIAN)]
    assert json.loads(docs[0]["metadata"]) == {"url": "http://example.org/2", "record_id": rid(2)}
    assert skipped == {"warc_warcinfo": 1, "empty_body": 1}


def test_a_file_that_is_not_warc_is_one_error_line_and_an_empty_one_is_counted(tmp_path):
    (tmp_path / "empty.warc").write_bytes(b"")
    docs, skipped = read(tmp_path / "empty.warc")
    assert docs == [] and skipped.files == {"empty_file": 1}
    (tmp_path / "notes.warc").write_bytes(b"just some notes\n" * 10)
    with pytest.raises(DataError, match=r"notes\.warc: not a WARC file"):
        read(tmp_path / "notes.warc")
