"""Local files: JSON lines, JSON arrays, Parquet, CSV / TSV, plain text, HTML, WARC / WET
(pretrain.sources.warc), PDF (pretrain.sources.pdf) and DOCX (pretrain.sources.office).

A reader per file type, chosen by suffix (``READERS``). Every file under the path is read or
counted: a file of a type no reader reads, and a file that gives no record at all (empty, or
in an encoding that cannot be told) in files and bytes (``Skipped.add_file``), a record that
cannot be used in records (``Skipped.add``). A file that cannot be read at all raises DataError
naming it.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.bodies import bytes_document, count_encoding
from pretrain.sources.encoding import decode
from pretrain.sources.office import read_docx
from pretrain.sources.pdf import read_pdf
from pretrain.sources.records import (
    Document,
    Skipped,
    display_name,
    metadata_columns,
    record_document,
)
from pretrain.sources.warc import WARC_SUFFIXES, read_warc

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py"}
HTML_SUFFIXES = {".html", ".htm"}
SAMPLE_BYTES = 1 << 20  # the part of a CSV file its encoding is told from


def read_files(cfg: SourceConfig, skipped: Skipped, label: str, key: str = "download.path",
               readers: Mapping[str, Reader] | None = None) -> Iterator[Document]:
    """The documents of every file that ``cfg.path`` (the params ``key``) names, file by file
    in sorted order, each read by the reader of its suffix in ``readers`` (default ``READERS``);
    a file of any other type is counted as ``unsupported_file_type``."""
    readers = READERS if readers is None else readers
    for path in resolve_files(cfg.path or "", key):
        reader = reader_for(path, readers)
        try:
            if reader is None:
                skipped.add_file("unsupported_file_type", display_name(path), path.stat().st_size)
            else:
                yield from reader(path, cfg, skipped, label)
        except OSError as exc:  # permission denied, a device error: the file cannot be read at all
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def reader_for(path: Path, readers: Mapping[str, Reader]) -> Reader | None:
    """The reader of the longest registered suffix the file name ends with, so that
    ``.warc.gz`` is read as WARC rather than by a ``.gz`` reader; None if there is none."""
    name = path.name.lower()
    found = [suffix for suffix in readers if name.endswith(suffix) and name != suffix]
    return readers[max(found, key=len)] if found else None


def resolve_files(pattern: str, key: str = "download.path") -> list[Path]:
    """Every file a path names, of any type, sorted, each once: the file itself, every file
    under a folder (``files_under``), or every file a glob matches and every file under a
    folder it matches. Raises DataError when there is none."""
    path = Path(pattern)
    matches = [path] if path.exists() else [Path(p) for p in glob.glob(pattern, recursive=True)]
    files = set()
    for match in matches:
        files.update(files_under(match) if match.is_dir() else [match])
    if not files:
        raise DataError(f"{key}: no input files match {pattern!r}")
    return sorted(files)


def files_under(folder: Path) -> list[Path]:
    """Every file under ``folder``, recursively: hidden ones too, and those behind a link to a
    folder (pathlib's rglob in Python 3.11 lists the link but does not descend into it, and
    so lost its files unseen), each real folder once, so that a link back up cannot loop. A
    broken link is kept, for its reader to fail on, naming it."""
    found, seen = [], set()
    for parent, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen:
            folders.clear()
            continue
        seen.add(real)
        found += [Path(parent, n) for n in names
                  if os.path.isfile(os.path.join(parent, n)) or os.path.islink(os.path.join(parent, n))]
    return found


# --- JSON lines and JSON arrays: UTF-8 by definition (RFC 8259, section 8.1) -------------------


def _jsonl(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    name, records = display_name(path), 0
    for lineno, record, reason in _json_records(path):
        records += 1
        where = f"{name}:{lineno}"
        if reason:
            skipped.add(reason, where)
        elif not isinstance(record, dict):
            skipped.add("json_record_not_an_object", where)
        else:
            yield from record_document(record, cfg.text_field, cfg.id_field,
                                       cfg.metadata_fields, where, where, skipped, label)
    if not records:
        skipped.add_file("empty_file", name, path.stat().st_size)


def _json_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, record, None)`` per non-blank JSON line, ``(line, None, reason)`` for one that
    cannot be used; a JSON array file gives its elements, numbered from 1."""
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        handle.seek(0)
        if head.startswith(b"["):  # a JSON array of records rather than JSON lines
            yield from ((n, record, None) for n, record in enumerate(_json_array(path, handle), 1))
            return
        for lineno, raw in enumerate(handle, 1):
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


# --- Parquet -------------------------------------------------------------------------------------


def _parquet(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    name, field = display_name(path), cfg.text_field
    if path.stat().st_size == 0:
        skipped.add_file("empty_file", name, 0)
        return
    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: cannot read Parquet ({_one_line(exc)})") from None
    if field not in reader.schema_arrow.names:
        raise DataError(f"{path}: no column {field!r} (columns: {reader.schema_arrow.names}); "
                        "set download.text_field")
    if reader.metadata.num_rows == 0:
        skipped.add_file("empty_file", name, path.stat().st_size)
        return
    # Only the columns used: converting a wide binary or list column to Python objects, only to
    # leave it out, made reading ~50x slower on a table with a 16 KiB image and an embedding.
    names = reader.schema_arrow.names
    kept = metadata_columns(reader.schema_arrow, field, cfg.id_field, cfg.metadata_fields)
    columns = [field] + ([cfg.id_field] if cfg.id_field in names else []) + kept
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                yield from record_document(record, field, cfg.id_field, kept, f"{name}:{row}",
                                           f"{name}#row={row}", skipped, label)
                row += 1
    except (pa.ArrowException, OSError) as exc:  # a damaged page behind a readable footer
        raise DataError(f"{path}: cannot read Parquet ({_one_line(exc)})") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # pyarrow's messages span lines


# --- CSV / TSV: one document per row, the text in the column named text_field ---------------------


def _csv(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    name = display_name(path)
    encoding = _csv_encoding(path, cfg.encoding, skipped, name)
    if encoding is None:
        return
    # Python's csv refuses fields over 131,072 characters by default; a document may be longer.
    csv.field_size_limit(2**31 - 1)
    with open(path, encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            header = next(reader, None)
            if header is None:
                skipped.add_file("empty_file", name, path.stat().st_size)
                return
            if cfg.text_field not in header:
                raise DataError(f"{path}: no column {cfg.text_field!r} (columns: {header}); "
                                "set download.text_field")
            for row, values in enumerate(filter(None, reader)):  # blank lines give no values
                # A short row lacks its last fields (a missing text is counted), a long row's
                # extra values have no name and are left out; of two columns of one name, the
                # first counts.
                record: dict = {}
                for column, value in zip(header, values):
                    record.setdefault(column, value)
                yield from record_document(record, cfg.text_field, cfg.id_field,
                                           cfg.metadata_fields, f"{name}:{row}",
                                           f"{name}#row={row}", skipped, label)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: line {reader.line_num}: cannot read as {encoding} CSV "
                            f"({_one_line(exc)}); set download.encoding if it is not "
                            f"{encoding}") from None


def _csv_encoding(path: Path, configured: str | None, skipped: Skipped, name: str) -> str | None:
    """The encoding of a CSV file, told from its first MiB (cut at a line end), which is
    streamed rather than read whole; None (and counted) if it cannot be told."""
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if len(sample) == SAMPLE_BYTES and b"\n" in sample:
        sample = sample[:sample.rindex(b"\n") + 1]
    decoded = decode(sample, configured)
    if decoded.reason:
        skipped.add_file(decoded.reason, name, path.stat().st_size)
        return None
    count_encoding(decoded, skipped)
    return "utf-8-sig" if decoded.encoding == "utf-8" else decoded.encoding


# --- plain text and HTML: one document per file ---------------------------------------------


def _text(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    name = display_name(path)
    html = path.suffix.lower() in HTML_SUFFIXES
    raw = path.read_bytes()
    yield from bytes_document(raw, name, name, html, cfg.encoding, (), skipped, label,
                              lambda reason: skipped.add_file(reason, name, len(raw)))


Reader = Callable[[Path, SourceConfig, Skipped, str], Iterator[Document]]
READERS: dict[str, Reader] = {
    ".jsonl": _jsonl, ".json": _jsonl, ".parquet": _parquet, ".csv": _csv, ".tsv": _csv,
    **{suffix: _text for suffix in TEXT_SUFFIXES | HTML_SUFFIXES},
    **{suffix: read_warc for suffix in WARC_SUFFIXES},
    ".pdf": read_pdf, ".docx": read_docx,
}
