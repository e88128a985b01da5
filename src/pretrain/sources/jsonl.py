"""JSON lines and JSON array files, each record a document (pretrain.sources.records), read
whole or, for an uncompressed JSON lines file read by several tasks, by byte ranges cut at line
ends (``read_jsonl_range``: the download stage's tasks, pretrain.sources.tasks). JSON is UTF-8
by definition (RFC 8259, section 8.1): a line that is not costs that line, counted as
``not_utf8``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.compression import open_binary
from pretrain.sources.kinds import KindRule
from pretrain.sources.records import Document, Skipped, display_name, record_document


def read_jsonl(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    """The documents of a JSON lines or JSON array file, compressed or not, one per record
    (pretrain.sources.records.record_document: the ``text_field``, the ``id_field`` or
    ``file:line``, the other fields as metadata); a record that cannot be used is counted by
    its reason (``malformed_json_line``, ``not_utf8``, ``json_record_not_an_object``, ...),
    a file with no record as ``empty_file``. Raises DataError for a JSON array that does not
    parse."""
    yield from _jsonl_documents(path, _json_records(path), cfg, skipped, label)


def read_jsonl_range(path: Path, start: int, end: int, first_line: int, cfg: SourceConfig,
                     skipped: Skipped, label: str, seen: Counter | None = None) -> Iterator[Document]:
    """The documents of the JSON lines of an uncompressed file (``is_json_lines``) that start in
    bytes ``[start, end)``, where ``start`` is the start of line ``first_line`` (from 1) and
    ``end`` the start of a line or the file's size: one read task's part of a large file, with
    the same ids, provenance and counts as a read of the whole file gives those lines. The
    non-blank lines found are added to ``seen["records"]``: a file none of whose ranges has one
    is counted ``empty_file`` by the stage, which alone sees every range."""
    yield from _jsonl_documents(path, _line_range(path, start, end, first_line), cfg, skipped,
                                label, whole=start == 0 and end >= path.stat().st_size, seen=seen)


def _jsonl_documents(path: Path, found: Iterator[tuple[int, Any, str | None]], cfg: SourceConfig,
                     skipped: Skipped, label: str, whole: bool = True,
                     seen: Counter | None = None) -> Iterator[Document]:
    name, records, kinds = display_name(path), 0, KindRule.of(cfg)
    for lineno, record, reason in found:
        records += 1
        if seen is not None:
            seen["records"] += 1
        where = f"{name}:{lineno}"
        if reason:
            skipped.add(reason, where)
        elif not isinstance(record, dict):
            skipped.add("json_record_not_an_object", where)
        else:
            yield from record_document(record, cfg.text_field, cfg.id_field,
                                       cfg.metadata_fields, where, where, skipped, label, kinds)
    if not records and whole:
        skipped.add_file("empty_file", name, path.stat().st_size)


def _json_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, record, None)`` per non-blank JSON line, ``(line, None, reason)`` for one that
    cannot be used; a JSON array file gives its elements, numbered from 1. Streamed, compressed
    or not (pretrain.sources.compression); a JSON array is parsed whole."""
    with open_binary(path) as handle:
        # peek rather than read and seek back: a decompressing stream cannot seek cheaply
        head = handle.peek(64)[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
        if head.startswith(b"["):  # a JSON array of records rather than JSON lines
            yield from ((n, record, None) for n, record in enumerate(_json_array(path, handle), 1))
            return
        yield from _parsed_lines(enumerate(handle, 1))


def _line_range(path: Path, start: int, end: int, first_line: int) -> Iterator[tuple[int, Any, str | None]]:
    """``_json_records`` of the lines that start in bytes ``[start, end)`` of an uncompressed
    file, numbered from ``first_line``."""
    with open(path, "rb") as handle:
        handle.seek(start)
        yield from _parsed_lines(_lines_before(enumerate(handle, first_line), start, end))


def _lines_before(lines: Iterator[tuple[int, bytes]], start: int, end: int) -> Iterator[tuple[int, bytes]]:
    position = start
    for lineno, raw in lines:
        if position >= end:
            return
        position += len(raw)
        yield lineno, raw


def _parsed_lines(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, Any, str | None]]:
    for lineno, raw in lines:
        try:
            line = raw.decode("utf-8-sig")  # utf-8-sig: drops a byte-order mark
        except UnicodeDecodeError:  # one bad line costs that line, not the file
            yield lineno, None, "not_utf8"
            continue
        if line.strip():
            yield (lineno, *_parse_json(line))


def _parse_json(line: str) -> tuple[Any, str | None]:
    try:
        return json.loads(line), None  # CRLF line endings: the \r is whitespace to JSON
    except json.JSONDecodeError:
        return None, "malformed_json_line"


def _json_array(path: Path, handle) -> list:
    try:
        return json.loads(handle.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
