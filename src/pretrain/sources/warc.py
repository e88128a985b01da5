"""WARC and WET files (ISO 28500; Common Crawl's ``.warc.gz`` and ``.warc.wet.gz``): one
document per HTML response or WET text record, every other record counted by a named reason.

A ``response`` record of an HTTP 2xx page with an HTML content type becomes one HTML document
(its raw HTML, for the clean stage to extract), its transfer and content encodings undone
(chunked, gzip, deflate, brotli: FastWARC's ``parse_http(auto_decode="all")``) and its bytes
decoded by the HTTP header's charset before the page's ``<meta>`` (the HTML standard's order:
the transport layer's charset wins). A WET ``conversion`` record (text Common Crawl extracted)
becomes one prose document. Other records are counted in records, by reason:

- ``warc_request``, ``warc_metadata``, ``warc_revisit`` (a "same as before" pointer with no
  body), ``warc_warcinfo``, ``warc_resource``, ``warc_continuation``, ``warc_unknown_type``;
- ``not_http_response`` (a dns: or other non-HTTP response), ``malformed_http`` (no status
  line), ``undecodable_http_body`` (a broken gzip or chunked body);
- ``http_redirect`` (3xx: no page of its own) and ``http_error`` (4xx, 5xx: error pages are
  boilerplate, and a 200 of the same URL is what a crawl keeps);
- ``not_html_response`` (images, PDFs, scripts, JSON: PDFs are read from ``.pdf`` files);
- ``empty_body``, and the decoding reasons of pretrain.sources.encoding;
- ``truncated_record``: a record whose block is shorter than its Content-Length, or whose
  header lacks one (a file cut short: the last record of an interrupted download);
- ``damaged_record``: FastWARC cannot parse the next record header; the rest of the file is
  counted as this one record (a file that is not WARC at all raises DataError).

A ``.warc.gz`` cut inside the first bytes of a record's own gzip member (its gzip header)
looks to FastWARC like a clean end of the stream; the bytes after the last record's member are
therefore checked with zlib (``_cut_gzip_tail``), and such a cut is counted as
``truncated_record`` like any other (every cut point of a three-record file is counted).

Why FastWARC (Resiliparse, Apache-2.0) rather than warcio (the Webrecorder reader most tools
use): on one generated Common Crawl-shaped .warc.gz of 4,000 records (benchmarks/warc_read.py,
docs/data.md) it read 21,300 records/s against warcio's 5,500 (3.9x; 2-core Xeon, AVX-512),
bodies decoded by both; and Resiliparse is already the clean stage's HTML extractor, so it
adds no new dependency.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterator

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.bodies import bytes_document
from pretrain.sources.records import (
    Document,
    Skipped,
    display_name,
    metadata_json,
    selected_fields,
)

WARC_SUFFIXES = (".warc", ".warc.gz", ".warc.wet.gz", ".wet", ".wet.gz")
HTML_TYPES = {"text/html", "application/xhtml+xml"}
SKIPPED_TYPES = {  # by the type's bit (FastWARC's WarcRecordType is a flag, not hashable)
    int(kind): f"warc_{kind}" for kind in (
        WarcRecordType.request, WarcRecordType.metadata, WarcRecordType.revisit,
        WarcRecordType.warcinfo, WarcRecordType.resource, WarcRecordType.continuation)
}


def read_warc(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    """The documents of one WARC or WET file, plain or gzip (FastWARC tells them apart by
    their bytes), in file order; every record used or counted (see the module docstring).
    Raises DataError when the file's first record cannot be parsed (not a WARC file)."""
    name, records, last = display_name(path), 0, 0
    with open(path, "rb") as handle:
        iterator = iter(ArchiveIterator(handle, parse_http=False))
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                cut = _cut_gzip_tail(path, last) if records else None
                if cut is not None:
                    skipped.add("truncated_record", f"{name}@{cut}")
                break
            except OSError as exc:  # FastWARC's error for a header it cannot parse
                if not records:
                    raise DataError(f"{path}: not a WARC file ({exc})") from None
                skipped.add("damaged_record", f"{name}: after record {records}")
                break
            records, last = records + 1, record.stream_pos
            yield from _record_documents(record, name, cfg, skipped, label)
    if not records:
        skipped.add_file("empty_file", name, path.stat().st_size)


def _cut_gzip_tail(path: Path, start: int) -> int | None:
    """The offset of a gzip member cut short after the last record's own member, which begins at
    byte ``start`` (Common Crawl's layout: a member per record), or None: a plain WARC file,
    members that all end, or one member for the whole file (``start`` is then not where a
    member begins, and FastWARC itself reported any cut). Reads the last member(s) only."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return None
        handle.seek(start)
        data, at, first = handle.read(), start, True
    while data:
        member = zlib.decompressobj(wbits=31)  # one gzip member (RFC 1952)
        try:
            member.decompress(data)
        except zlib.error:
            return None if first else at  # bytes after the last member that are no member
        if not member.eof:
            return None if first else at  # the last record's own cut: counted from its block
        at, data, first = at + len(data) - len(member.unused_data), member.unused_data, False
    return None


def _record_documents(record: WarcRecord, name: str, cfg: SourceConfig, skipped: Skipped,
                      label: str) -> Iterator[Document]:
    where = f"{name}@{record.stream_pos}"  # the record's byte offset (compressed, in a .gz)
    block = record.reader.read()
    if record.headers.get("Content-Length") is None or len(block) < record.content_length:
        skipped.add("truncated_record", where)
    elif record.record_type == WarcRecordType.response:
        yield from _response(record, block, where, cfg, skipped, label)
    elif record.record_type == WarcRecordType.conversion:
        yield from _document(block, record, {}, None, where, cfg, skipped, label)
    else:
        skipped.add(SKIPPED_TYPES.get(int(record.record_type), "warc_unknown_type"), where)


def _response(record: WarcRecord, block: bytes, where: str, cfg: SourceConfig,
              skipped: Skipped, label: str) -> Iterator[Document]:
    """An HTTP response's HTML page, or the reason it is none."""
    if not record.is_http:
        skipped.add("not_http_response", where)
        return
    # The block was read whole above (to check its length), so its HTTP message is parsed
    # from memory, in a record of its own: a body that fails to decode leaves FastWARC's
    # record without a reader, and the iterator then fails on the next one ("No reader set").
    message = WarcRecord()
    message.set_bytes_content(block)
    message.is_http = True
    try:
        message.parse_http(auto_decode="all")
        body = message.reader.read()
    except OSError:  # a gzip, deflate, brotli or chunked body that does not decode
        skipped.add("undecodable_http_body", where)
        return
    status = message.http_headers.status_code if message.http_headers is not None else None
    content_type = (message.http_content_type or "").lower()
    reason = ("malformed_http" if status is None else "http_redirect" if 300 <= status < 400
              else "http_error" if not 200 <= status < 300
              else "not_html_response" if content_type not in HTML_TYPES else None)
    if reason:
        skipped.add(reason, where)
        return
    http = {"status": status, "content_type": content_type}
    yield from _document(body, record, http, message.http_charset, where, cfg, skipped, label)


def _document(body: bytes, record: WarcRecord, http: dict, charset: str | None, where: str,
              cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    """The one place a record becomes a document: an HTTP response (``http`` set, its header's
    ``charset`` decoding it before the page's ``<meta>``) is raw HTML for the clean stage (kind
    ``html``), a WET record (``http`` empty) prose. The id
    is the WARC-Record-ID; the metadata keeps the URL, the capture date, the record id and
    the HTTP status and content type (``cfg.metadata_fields`` selects among them)."""
    if not body.strip():
        skipped.add("empty_body", where)
        return
    headers = record.headers
    fields = {"url": headers.get("WARC-Target-URI"), "date": headers.get("WARC-Date"),
              "record_id": record.record_id, **http}
    if language := headers.get("WARC-Identified-Content-Language"):  # Common Crawl's WET files
        fields["language"] = language
    fields = selected_fields(fields, cfg.metadata_fields)
    html = bool(http)
    yield from bytes_document(body, record.record_id or where, where, html, cfg.encoding,
                              (charset,), skipped, label,
                              lambda reason: skipped.add(reason, where), metadata_json(fields),
                              kind="html" if html else "prose")
