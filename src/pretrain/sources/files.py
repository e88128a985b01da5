"""Local files: JSON lines, JSON arrays, Parquet, CSV / TSV, plain text and HTML, each also
compressed with gzip, Zstandard, bzip2 or xz (pretrain.sources.compression); WARC / WET
(pretrain.sources.warc), PDF (pretrain.sources.pdf) and DOCX (pretrain.sources.office); named by
a path, a folder, a glob or a path list (``.paths``, ``.paths.gz``).


A reader per file type, chosen by suffix from a registry (``READERS``, ``reader_for``): the
longest registered suffix of the name wins, so that a reader registered for a compound suffix
(``.warc.gz``) reads its files itself; otherwise a compression suffix is set aside and the
suffix under it chooses (``data.jsonl.zst`` -> JSON lines, read through a Zstandard stream).
A text file is decoded line by line when it is UTF-8 but for a few lines
(pretrain.sources.encoding.decode_mixed), and a long ``.txt``, ``.md`` or ``.rst`` file is cut
into documents (pretrain.sources.split), each with the id ``file#part=N`` (N from 0) and the
lines it spans in its provenance (``file:1-120``).
Every file under the path is read or counted: a file of a type no reader reads (``x.bin.gz``
too), and a file that gives no record at all (empty, or in an encoding that cannot be told) in
files and bytes (``Skipped.add_file``), a record that cannot be used in records
(``Skipped.add``). A compressed file that ends early or is damaged keeps the records read
before the damage and is counted in files and bytes as ``truncated_compressed_file`` or
``damaged_compressed_file``. Parquet inside a compressed file is counted as
``compressed_parquet``: Parquet compresses its own pages, and its reader needs to seek to the
footer at the end, which a compressed stream cannot do without decompressing it whole. A file
that cannot be read at all raises DataError naming it.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
from pathlib import Path
from typing import Callable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pretrain.config.sources import SourceConfig
from pretrain.errors import DataError
from pretrain.sources.bodies import bytes_document, count_encoding
from pretrain.sources.compression import (
    CompressedFileError,
    codec_of,
    inner_path,
    open_binary,
    read_all,
)
from pretrain.sources.encoding import Decoded, Repaired, decode, decode_mixed
from pretrain.sources.jsonl import read_jsonl
from pretrain.sources.kinds import KindRule, extension_kind
from pretrain.sources.office import read_docx
from pretrain.sources.pdf import read_pdf
from pretrain.sources.records import (
    Document,
    Skipped,
    display_name,
    make_document,
    metadata_columns,
    record_document,
)
from pretrain.sources.split import cut_text, split_lines
from pretrain.sources.warc import WARC_SUFFIXES, read_warc

TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py"}
PLAIN_TEXT_SUFFIXES = {".txt", ".md", ".rst"}  # prose that may be cut into parts; not code
HTML_SUFFIXES = {".html", ".htm"}
SAMPLE_BYTES = 1 << 20  # the part of a CSV file its encoding is told from
UTF8 = {"utf-8", "utf-8-sig"}
PATH_LIST_SUFFIXES = (".paths", ".paths.gz")
PROGRESS_BYTES = 64 << 20  # a file this large takes seconds to read: it gets its own progress bar


def read_files(cfg: SourceConfig, skipped: Skipped, label: str, key: str = "download.path",
               readers: Mapping[str, Reader] | None = None) -> Iterator[Document]:
    """The documents of every file that ``cfg.path`` (the params ``key``) names, file by file
    in sorted order (``read_file``)."""
    for path in resolve_files(cfg.path or "", key):
        yield from read_file(path, cfg, skipped, label, readers)


def read_file(path: Path, cfg: SourceConfig, skipped: Skipped, label: str,
              readers: Mapping[str, Reader] | None = None) -> Iterator[Document]:
    """The documents of one file, read by the reader ``reader_for`` finds in ``readers``
    (default ``READERS``), a source file of one of ``cfg.code_extensions`` that no reader is
    registered for (``.c``, ``.js``, ...) by the text reader, as code; a file of any other type
    is counted as ``unsupported_file_type``, a compressed one that ends early or is damaged by
    its reason (see the module docstring). A file of ``PROGRESS_BYTES`` or more gets a progress
    bar of its own (documents, on stderr). Raises DataError naming the file when it cannot be
    read at all."""
    readers = READERS if readers is None else readers
    reader = reader_for(path, readers)
    if reader is None and inner_path(path).suffix.lower() in {s.lower() for s in cfg.code_extensions}:
        reader = _text
    try:
        if reader is None:
            reason = ("compressed_parquet" if codec_of(path) and
                      inner_path(path).suffix.lower() == ".parquet" else "unsupported_file_type")
            skipped.add_file(reason, display_name(path), path.stat().st_size)
        else:
            docs = reader(path, cfg, skipped, label)
            if path.stat().st_size >= PROGRESS_BYTES:
                docs = tqdm(docs, desc=display_name(path), unit="doc", leave=False)
            yield from docs
    except CompressedFileError as exc:  # the records before the damage are kept
        skipped.add_file(exc.reason, f"{display_name(path)} ({exc.detail})", path.stat().st_size)
    except OSError as exc:  # permission denied, a device error: the file cannot be read at all
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def is_json_lines(path: Path, readers: Mapping[str, Reader] | None = None) -> bool:
    """Whether ``path`` is an uncompressed file the JSON lines reader reads as lines (not a JSON
    array): one that can be read in byte ranges cut at line ends (``read_jsonl_range``)."""
    if reader_for(path, READERS if readers is None else readers) is not read_jsonl or codec_of(path):
        return False
    with open(path, "rb") as handle:
        return not handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[")


def reader_for(path: Path, readers: Mapping[str, Reader]) -> Reader | None:
    """The reader of ``path`` in ``readers`` (suffix -> reader): that of its longest
    registered suffix (``a.warc.wet.gz``: ``.warc.wet.gz``, then ``.wet.gz``, then ``.gz``);
    failing that, when the name ends in a compression suffix, that of the longest registered
    suffix under it (``data.jsonl.gz``: ``.jsonl``), if that reader reads through compression
    (``STREAMED``); None when no reader reads it. Suffixes are matched in lower case."""
    suffixes = [s.lower() for s in path.suffixes]
    for i in range(len(suffixes)):
        if (found := readers.get("".join(suffixes[i:]))) is not None:
            return found
    if codec_of(path) is None:
        return None
    inner = suffixes[:-1]
    for i in range(len(inner)):
        found = readers.get("".join(inner[i:]))
        if found is not None:
            return found if found in STREAMED else None
    return None


def resolve_files(pattern: str, key: str = "download.path") -> list[Path]:
    """Every file a path names, of any type, sorted, each once: the file itself, every file
    under a folder (``files_under``), every file a glob matches and every file under a folder
    it matches, or the files a path list names (``listed_files``). Raises DataError when there
    is none."""
    path = Path(pattern)
    if is_path_list(path):
        return listed_files(path, key)
    matches = [path] if path.exists() else [Path(p) for p in glob.glob(pattern, recursive=True)]
    files = set()
    for match in matches:
        files.update(files_under(match) if match.is_dir() else [match])
    if not files:
        raise DataError(f"{key}: no input files match {pattern!r}")
    return sorted(files)


def is_path_list(path: Path) -> bool:
    """Whether ``path`` names a list of paths (``.paths``, or gzip-compressed ``.paths.gz`` as
    Common Crawl ships ``warc.paths.gz``) rather than a file to read."""
    return path.name.endswith(PATH_LIST_SUFFIXES) and path.is_file()


def listed_files(path: Path, key: str = "download.path") -> list[Path]:
    """The files a path list names, in its order (not sorted: the list is the order), each
    once: one path per line, absolute or relative to the list's folder; blank lines and lines
    starting with ``#`` are passed over. Raises DataError naming the list and line for an
    http(s) address (a list holds local paths: fetch such files with ``source: urls`` or a
    download tool first) and for a path that is not a file, and when the list names none."""
    files: dict[Path, None] = {}
    try:
        with io.TextIOWrapper(open_binary(path), encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                where = f"{key}: {path}:{lineno}"
                if entry.lower().startswith(("http://", "https://")):
                    raise DataError(f"{where}: {entry!r} is a URL; a path list names local files "
                                    "(download them first, or list URLs in a source: urls entry)")
                listed = Path(entry) if Path(entry).is_absolute() else path.parent / entry
                if not listed.is_file():
                    raise DataError(f"{where}: {entry!r} is not a file ({listed})")
                files.setdefault(listed)
    except (OSError, CompressedFileError, UnicodeDecodeError) as exc:  # a truncated .gz, a binary list
        raise DataError(f"{key}: {path}: cannot read the path list ({exc})") from None
    if not files:
        raise DataError(f"{key}: the path list {path} names no file")
    return list(files)


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
    kinds = KindRule.of(cfg)
    # The kind field is read too, even when it is not kept as metadata.
    extra = [cfg.kind_field] if cfg.kind_field in names else []
    columns = list(dict.fromkeys([field] + ([cfg.id_field] if cfg.id_field in names else [])
                                 + kept + extra))
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                yield from record_document(record, field, cfg.id_field, kept, f"{name}:{row}",
                                           f"{name}#row={row}", skipped, label, kinds)
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
    tsv = inner_path(path).suffix.lower() == ".tsv"
    kinds = KindRule.of(cfg)
    with io.TextIOWrapper(open_binary(path), encoding=encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter="\t" if tsv else ",")
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
                                           f"{name}#row={row}", skipped, label, kinds)
        except (csv.Error, UnicodeDecodeError) as exc:
            mixed = (" (a UTF-8 file with a few lines in another encoding is not repaired line by "
                     "line as a text file is: convert those lines)") if encoding in UTF8 else ""
            raise DataError(f"{path}: line {reader.line_num}: cannot read as {encoding} CSV "
                            f"({_one_line(exc)}); set download.encoding to its encoding if the "
                            f"whole file is in one other than {encoding}{mixed}") from None


def _csv_encoding(path: Path, configured: str | None, skipped: Skipped, name: str) -> str | None:
    """The encoding of a CSV file, told from its first MiB (cut at a line end), which is
    streamed rather than read whole; None (and counted) if it cannot be told."""
    with open_binary(path) as handle:
        sample = handle.read(SAMPLE_BYTES)
    if len(sample) == SAMPLE_BYTES and b"\n" in sample:
        sample = sample[:sample.rindex(b"\n") + 1]
    decoded = decode(sample, configured)
    if decoded.reason:
        skipped.add_file(decoded.reason, name, path.stat().st_size)
        return None
    count_encoding(decoded, skipped)
    return "utf-8-sig" if decoded.encoding == "utf-8" else decoded.encoding


# --- plain text and HTML: one document per file, or per part of a long plain-text file ---------


def _text(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    name = display_name(path)
    kind = extension_kind(inner_path(path).name, cfg.code_extensions)
    raw = read_all(path)  # one document (or its parts): the whole (decompressed) file
    size = path.stat().st_size
    lost = lambda reason: skipped.add_file(reason, name, size)  # noqa: E731
    if kind == "html":
        yield from bytes_document(raw, name, name, True, cfg.encoding, (), skipped, label, lost,
                                  kind=kind)
        return
    decoded = decode_mixed(raw, cfg.encoding, cfg.fallback_encoding, cfg.max_bad_line_share)
    if isinstance(decoded, Decoded) and decoded.reason:
        lost(decoded.reason)
        return
    lines, numbers, note = _lines_of(decoded, name, cfg, skipped)
    if not any(line.strip() for line in lines):
        lost("empty_file")
        return
    chars = sum(map(len, lines))
    if (inner_path(path).suffix.lower() not in PLAIN_TEXT_SUFFIXES or cfg.split_above_chars is None
            or chars <= cfg.split_above_chars):
        yield from make_document("".join(lines), name, name + note, skipped, label, kind=kind)
        return
    pattern = re.compile(cfg.split_regex) if cfg.split_regex else None
    parts = cut_text(lines, numbers, cfg.split_target_chars, cfg.split_max_chars, pattern)
    for n, part in enumerate(parts):
        yield from make_document(part.text, f"{name}#part={n}",
                                 f"{name}:{part.first_line}-{part.last_line}{note}", skipped, label,
                                 kind=kind)


def _lines_of(decoded: Decoded | Repaired, name: str, cfg: SourceConfig,
              skipped: Skipped) -> tuple[list[str], list[int], str]:
    """The lines of a decoded text file, their line numbers and what its provenance adds: the
    encoding it was decoded from, or the lines repaired and dropped (each counted)."""
    if isinstance(decoded, Decoded):
        lines = split_lines(decoded.text)
        note = f" (decoded from {decoded.encoding})" if count_encoding(decoded, skipped) else ""
        return lines, list(range(1, len(lines) + 1)), note
    for reason, numbers in (("lines_repaired", decoded.repaired), ("lines_dropped", decoded.dropped)):
        for lineno in numbers:
            skipped.add_line(reason, f"{name}:{lineno}")
    note = f" (lines repaired from {cfg.fallback_encoding}: {len(decoded.repaired)}" if decoded.repaired else ""
    if decoded.dropped:
        note += (", " if note else " (") + f"lines dropped: {len(decoded.dropped)}"
    return decoded.lines, decoded.numbers, note + ")"


Reader = Callable[[Path, SourceConfig, Skipped, str], Iterator[Document]]
READERS: dict[str, Reader] = {
    ".jsonl": read_jsonl, ".json": read_jsonl, ".parquet": _parquet, ".csv": _csv, ".tsv": _csv,
    **{suffix: _text for suffix in TEXT_SUFFIXES | HTML_SUFFIXES},
    **{suffix: read_warc for suffix in WARC_SUFFIXES},
    ".pdf": read_pdf, ".docx": read_docx,
}
"""File suffix (lower case, with its dot; compound ones such as ``.warc.gz`` too) -> reader."""
STREAMED: set[Reader] = {read_jsonl, _csv, _text}
"""The readers that also read their files compressed (``data.jsonl.gz``): all but Parquet's."""
READ_COST: dict[Reader, float] = {read_pdf: 50.0, read_docx: 50.0}
"""Time a reader takes per byte of file, against JSON lines' (1; any reader not listed): the
download stage groups small files into a task by size times this, so that a folder of PDFs is
not one task. Reader alone, one core, 2026-12-07, 2-core Xeon (AVX-512 BF16): JSON lines 143 MB/s
of file, DOCX 3.0 (python-docx, 40 files of 60 paragraphs), PDF 2.6 (pypdfium2, the PDFs of
benchmarks/read_speed.py): ~48x and ~55x."""


def read_cost(path: Path) -> float:
    """``READ_COST`` of the reader of ``path`` (1 for one not listed, or none)."""
    return READ_COST.get(reader_for(path, READERS), 1.0)
"""The readers that also read their files compressed (``data.jsonl.gz``): all but Parquet's."""
