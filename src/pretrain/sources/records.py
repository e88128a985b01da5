"""What every source shares: the document dict, the tally of skipped records, the checks that
turn a record (its text, its own id, its other fields) into a document or a counted reason.

A document is ``id``, ``text``, ``source``, ``provenance``, ``metadata`` and ``kind`` (prose,
code or html: pretrain.sources.kinds). A record of a JSON
lines, JSON, Parquet, CSV or Hugging Face source keeps its own id (the ``id_field``, when the
record has one) and its other fields, as datatrove's readers do (``id_key``, then the rest of the
record in ``Document.metadata``); ``provenance`` still says where it was (``file:line``).

``metadata`` is one JSON object, as text: the record's fields that ``metadata_fields`` selects
(datatrove's ParquetReader likewise reads only its text and id columns with
``read_metadata=False``). By default (None) that is every *scalar* field other than the text
and the id, in the record's order: a string, number, boolean, date, time, timestamp, duration
or null. Bytes (images, audio) and lists, structs and maps (embeddings, nested objects) are left
out: they would swell every later table (a 16 KiB image is 22 KB of base64 per document), and
converting them to Python objects dominated the read of a wide Parquet file. A list of names
keeps those fields, whatever their type, in the list's order; [] keeps none. Only the columns
needed are read from Parquet and Hugging Face tables (``metadata_columns``).

Text rather than a Parquet struct or map column, because every document table has one fixed
schema (pretrain.io.DOCUMENT_SCHEMA) whatever the source: a struct's type would differ from
source to source (and from file to file when a field is an integer in one and
text in another), which one Parquet file, a mix of sources or the dedup stage's copy cannot
hold, and a map<string, string> would turn numbers, lists and nested objects into strings.
Values JSON has no type for are written as text: dates and times in ISO 8601, decimals in
decimal notation, bytes (when listed) in base64; NaN and infinities become null.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import numbers
import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from pretrain.sources.kinds import KindRule

Document = dict[str, str]
EMPTY_METADATA = "{}"
"""The metadata of a document that has no fields of its own (built-in parts, text files, URLs)."""


class Skipped(Counter):
    """What was not used, by reason, each in its unit: records (the Counter itself: a JSON
    line, a row, a text file's one document), whole files with their bytes (``files``,
    ``file_bytes``: a file no reader ran on, an empty one, one whose encoding cannot be told),
    and URLs (``urls``: a failed fetch, a binary response). Where the first ``EXAMPLES`` of each
    reason were (``examples``), so that a lost file can be found from the report. Beside them,
    what the report also tells: files read in an encoding other than UTF-8, by encoding
    (``decoded``), URL responses by where they came from, network or cache (``fetched``), and
    where the ids of records came from: their ``id_field`` or, lacking one, their place; and how
    many were made unique because an earlier document of their source had them (``ids``); and
    the lines of mostly-UTF-8 text files repaired or dropped (``lines``)."""

    EXAMPLES = 5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.files: Counter = Counter()
        self.file_bytes: Counter = Counter()
        self.urls: Counter = Counter()
        self.examples: dict[str, list[str]] = {}
        self.decoded: Counter = Counter()
        self.fetched: Counter = Counter()
        self.ids: Counter = Counter()
        self.kind_field_missing = 0
        self.lines: Counter = Counter()

    def add(self, reason: str, where: str) -> None:
        """Count one record skipped for ``reason``; ``where`` it was (``file:line``)."""
        self[reason] += 1
        self._example(reason, where)

    def add_file(self, reason: str, where: str, size: int) -> None:
        """Count one whole file of ``size`` bytes that gave no record, for ``reason``."""
        self.files[reason] += 1
        self.file_bytes[reason] += size
        self._example(reason, where)

    def add_line(self, reason: str, where: str) -> None:
        """Count one line of a text file (``lines_repaired``: decoded with the fallback encoding,
        ``lines_dropped``: left out); ``where`` it was (``file:line``)."""
        self.lines[reason] += 1
        self._example(reason, where)

    def add_url(self, reason: str, url: str) -> None:
        """Count one URL that gave no document, for ``reason``."""
        self.urls[reason] += 1
        self._example(reason, url)

    def _example(self, reason: str, where: str) -> None:
        found = self.examples.setdefault(reason, [])
        if len(found) < self.EXAMPLES:
            found.append(where)

    COUNTERS = ("files", "file_bytes", "urls", "decoded", "fetched", "ids", "lines")

    def state(self) -> dict[str, Any]:
        """Every count and example as JSON values: what a read task returns (``merged``)."""
        return {"records": dict(self), **{name: dict(getattr(self, name)) for name in self.COUNTERS},
                "examples": self.examples, "kind_field_missing": self.kind_field_missing}

    @classmethod
    def merged(cls, states: list[dict[str, Any]]) -> "Skipped":
        """The tally of several ``state``s, added in the order given: the first ``EXAMPLES``
        examples of each reason are those of the earliest states, as one reader reading the
        tasks' inputs in that order would have kept."""
        total = cls()
        for state in states:
            total.update(state["records"])
            for name in cls.COUNTERS:
                getattr(total, name).update(state[name])
            for reason, found in state["examples"].items():
                kept = total.examples.setdefault(reason, [])
                kept += found[:cls.EXAMPLES - len(kept)]
            total.kind_field_missing += state["kind_field_missing"]
        return total

    def report(self) -> dict[str, dict]:
        """The counts as a stage report writes them, each in its unit: ``skipped`` (records,
        reason -> count), ``skipped_files`` (reason -> {"files": count, "bytes": size}),
        ``skipped_urls`` (reason -> count), ``skipped_examples``, ``decoded`` and the lines of
        mostly-UTF-8 text files ``lines_repaired`` and ``lines_dropped``; sorted by reason, so that
        reruns write the same bytes."""
        return {"skipped": dict(sorted(self.items())),
                "skipped_files": {reason: {"files": n, "bytes": self.file_bytes[reason]}
                                  for reason, n in sorted(self.files.items())},
                "skipped_urls": dict(sorted(self.urls.items())),
                "skipped_examples": dict(sorted(self.examples.items())),
                "decoded": dict(sorted(self.decoded.items())),
                "lines_repaired": self.lines["lines_repaired"],
                "lines_dropped": self.lines["lines_dropped"]}


def describe_skipped(report: dict) -> str:
    """The skip counts of a report (``Skipped.report``) in one line, each with its unit:
    ``"12 records, malformed_json_line; 4 files, 2.1 MB, unsupported_file_type"``; "" when
    nothing was skipped."""
    parts = [f"{_count(n, 'record')}, {reason}" for reason, n in report["skipped"].items()]
    parts += [f"{_count(c['files'], 'file')}, {_size(c['bytes'])}, {reason}"
              for reason, c in report["skipped_files"].items()]
    parts += [f"{_count(n, 'URL')}, {reason}" for reason, n in report["skipped_urls"].items()]
    if report.get("lines_dropped"):
        parts.append(f"{_count(report['lines_dropped'], 'line')}, lines_dropped")
    return "; ".join(parts)


def _count(n: int, unit: str) -> str:
    return f"{n:,} {unit}{'' if n == 1 else 's'}"


def _size(n: float) -> str:
    """Bytes in SI units (1 kB = 1000 B), as ``ls --si`` and file managers show them."""
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 999.95:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"


def make_document(text: Any, doc_id: str, provenance: str, skipped: Skipped,
                  source: str, metadata: str = EMPTY_METADATA,
                  kind: str = "prose") -> Iterator[Document]:
    """Yield the document (of ``kind``: pretrain.sources.kinds.KINDS), or count why the text
    cannot be one."""
    if text is None:
        skipped.add("missing_text_field", provenance)
    elif not isinstance(text, str):
        skipped.add("text_not_a_string", provenance)
    elif not text.strip():
        skipped.add("empty_text", provenance)
    elif "\x00" in text:
        # NUL never occurs in real text. Where it does, the record is binary data or text in
        # another encoding (UTF-16 without a BOM decodes as "valid" UTF-8 with a NUL after every
        # ASCII character, and as mojibake elsewhere), so stripping the NULs would keep garbage:
        # the record is skipped, and counted, rather than repaired.
        skipped.add("contains_nul", provenance)
    elif not is_utf8_encodable(text):
        skipped.add("lone_surrogate", provenance)
    else:
        yield {"id": doc_id, "text": text.replace("\r\n", "\n"), "source": source,
               "provenance": provenance, "metadata": metadata, "kind": kind}


def record_document(record: dict, text_field: str, id_field: str | None,
                    metadata_fields: list[str] | None, location: str, provenance: str,
                    skipped: Skipped, source: str,
                    kinds: KindRule | None = None) -> Iterator[Document]:
    """Yield the document of one record (a mapping of field names to values), or count why it
    cannot be one.

    Its id is the record's ``id_field`` when the record has one: a string as it is, an integer
    (or a float with an integer value, as pandas stores an integer column with gaps) in
    decimal; ``location`` (``file:line`` and the like) when the field is missing, null, NaN or
    blank (counted in ``skipped.ids``); a record whose id is any other value (a fraction, a
    boolean, a list) is skipped as ``id_not_a_string_or_integer``. The fields that
    ``metadata_fields`` selects (see the module docstring and ``metadata_of``) become its metadata.
    Its kind is what ``kinds`` decides (pretrain.sources.kinds; None: prose); a record lacking
    the kind field is prose, counted in ``skipped.kind_field_missing``.
    """
    try:
        doc_id = record_id(record.get(id_field) if id_field else None)
    except TypeError:
        skipped.add("id_not_a_string_or_integer", provenance)
        return
    metadata = metadata_json(metadata_of(record, text_field, id_field, metadata_fields))
    if not is_utf8_encodable(metadata + (doc_id or "")):
        skipped.add("lone_surrogate", provenance)
        return
    kind = kinds.kind(record, doc_id or location) if kinds is not None else "prose"
    for doc in make_document(record.get(text_field), doc_id or location, provenance, skipped,
                             source, metadata, kind or "prose"):
        skipped.ids["from_id_field" if doc_id else "from_location"] += 1
        skipped.kind_field_missing += kind is None
        yield doc


def metadata_of(record: dict, text_field: str, id_field: str | None,
                names: list[str] | None) -> dict:
    """The fields of ``record`` kept as metadata: those of ``names`` it has, in that order; with
    None, each field other than the text and the id whose value ``is_scalar``."""
    if names is not None:
        return {name: record[name] for name in names if name in record}
    return {k: v for k, v in record.items()
            if k != text_field and k != id_field and is_scalar(v)}


def is_scalar(value: Any) -> bool:
    """A value kept as metadata by default: text, a number (numpy's too), a boolean, a date,
    time, datetime or duration, or null; not bytes, a list, a mapping or an object (an image)."""
    return value is None or isinstance(value, (str, bool, numbers.Number, datetime.date,
                                               datetime.time, datetime.timedelta))


def metadata_columns(schema: pa.Schema, text_field: str, id_field: str | None,
                     names: list[str] | None) -> list[str]:
    """The columns of a table with ``schema`` kept as metadata: those of ``names`` it has, or
    with None each column other than the text and the id whose type is scalar (as ``is_scalar``:
    string, integer, floating point, decimal, boolean, date, time, timestamp, duration, null,
    or a dictionary of one of these). Only these need to be read: a wide table stays fast."""
    if names is not None:
        return [name for name in names if name in schema.names]
    return [f.name for f in schema if f.name not in (text_field, id_field)
            and _scalar_type(f.type.value_type if pa.types.is_dictionary(f.type) else f.type)]


def _scalar_type(t: pa.DataType) -> bool:
    return any(test(t) for test in (
        pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view,
        pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean,
        pa.types.is_date, pa.types.is_time, pa.types.is_timestamp, pa.types.is_duration,
        pa.types.is_null))


def record_id(value: Any) -> str | None:
    """The document id that a record's id value gives, or None when the record has no id
    (missing, null, NaN, blank). Raises TypeError for a value that cannot be an id."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):  # a bool is an int to Python
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise TypeError(f"not a string or integer: {value!r}")


def is_utf8_encodable(text: str) -> bool:
    """False for text holding a lone UTF-16 surrogate: JSON may escape one (RFC 8259, section
    8.2: "\\ud800"), Python decodes it, and no UTF-8 file (Parquet) can store it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def selected_fields(fields: dict, metadata_fields: list[str] | None) -> dict:
    """The fields a reader of its own format (WARC, PDF, DOCX) offers, as ``metadata_fields``
    selects them: None keeps those that have a value, a list those it names, in its order."""
    if metadata_fields is None:
        return {key: value for key, value in fields.items() if value is not None}
    return {key: fields[key] for key in metadata_fields if key in fields}


def metadata_json(fields: dict) -> str:
    """``fields`` as one compact JSON object (see the module docstring for the types JSON lacks)."""
    if not fields:
        return EMPTY_METADATA
    try:
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                          default=_json_value)
    except ValueError:  # NaN or infinity somewhere: strict JSON has no such numbers
        return json.dumps(_finite(fields), ensure_ascii=False, separators=(",", ":"),
                          default=_json_value)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays, from datasets' numpy format
        return _finite(value.tolist())
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def display_name(path: Path) -> str:
    """A path relative to the working directory (the repository) when inside it, so ids do not
    depend on whether download.path was written relative or absolute."""
    rel = os.path.relpath(path.resolve())
    return Path(rel).as_posix() if not rel.startswith("..") else path.resolve().as_posix()


def params_key(label: str | None, key: str) -> str:
    """The params.yaml key of a setting of the single source, or of the mix entry ``label``."""
    return f"download.sources[{label}].{key}" if label else f"download.{key}"
