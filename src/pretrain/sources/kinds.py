"""A document's kind: ``prose``, ``code`` or ``html``, set where it is read and carried in its
``kind`` field (a column of every document table, pretrain.io.DOCUMENT_SCHEMA), which the
clean stage reads to choose its rules: code goes through ``clean.code_filters``, prose through
``clean.filters``, and HTML through the prose rules after ``html_to_text`` has extracted its text.

Who decides:

- a file: its extension (the one under a compression suffix: ``tool.py.gz`` is code), code when
  it is one of ``download.code_extensions``, HTML for ``.html`` / ``.htm``, prose otherwise;
- a URL: its Content-Type (``text/html`` is HTML), else its path's extension as a file's;
- the built-in corpus: ``stdlib`` (the ``.py`` files) is code, the other parts prose;
- a record (JSON lines, JSON, Parquet, CSV, Hugging Face): the field ``download.kind_field``
  names, when set. Its value, in any case, is code when it is one of ``code_values``
  (The Stack's ``lang: Python``), HTML when one of ``html_values``, the kind itself when it is
  ``prose``, ``code`` or ``html``; else it is read as a path
  or an extension (``path: src/x.py``, ``ext: py`` or ``.py``) and matched like a file's. A
  record without the field (missing, null, not text) is prose, counted in the report under
  ``kind_field_missing``. With no kind_field, a record's id is matched like a file's path, as
  the clean stage did before documents had a kind (an id ``x.py`` is code).

A field rather than a mark in the id (``.py``, ``#html`` at its end, as before): a WARC record's
id, a URL or a record of The Stack cannot carry one, and a mark in the id tied the id to the
rules.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath
from typing import Any

KINDS = ("prose", "code", "html")
"""Every value of a document's ``kind`` field."""
HTML_EXTENSIONS = (".html", ".htm")


def extension_kind(name: str, code_extensions: tuple[str, ...] | list[str],
                   bare: bool = False) -> str:
    """The kind of a file (or a record id or path) by its last extension, in any case: "code"
    for one of ``code_extensions``, "html" for .html / .htm, else "prose". With ``bare``,
    ``name`` may also be an extension alone, with or without its dot (``py``, ``.py``: a
    record's ``ext`` field); not for ids, where ``r`` or ``go`` is a name, not R or Go."""
    name = name.strip().lower()
    suffix = PurePosixPath(name).suffix
    if bare and not suffix and name:
        suffix = "." + name.lstrip(".")
    if suffix in code_extensions:
        return "code"
    return "html" if suffix in HTML_EXTENSIONS else "prose"


@dataclasses.dataclass(frozen=True)
class KindRule:
    """How a record's kind is decided (see the module docstring): built from a source's
    ``kind_field``, ``code_values``, ``html_values`` and ``code_extensions``."""

    field: str | None
    code_values: frozenset[str]
    html_values: frozenset[str]
    code_extensions: tuple[str, ...]

    @classmethod
    def of(cls, cfg: Any) -> "KindRule":
        """The rule of a SourceConfig (pretrain.config.sources; not imported: the clean stage
        imports this module for KINDS, and would then depend on the download params' code)."""
        return cls(cfg.kind_field, frozenset(v.lower() for v in cfg.code_values),
                   frozenset(v.lower() for v in cfg.html_values), tuple(cfg.code_extensions))

    def kind(self, record: dict, doc_id: str) -> str | None:
        """The kind of ``record`` whose document id is ``doc_id``; None when the record lacks
        the kind field (its caller counts it, and makes it prose)."""
        if self.field is None:
            return "code" if extension_kind(doc_id, self.code_extensions) == "code" else "prose"
        value = record.get(self.field)
        if not isinstance(value, str) or not value.strip():
            return None
        folded = value.strip().lower()
        if folded in self.code_values:
            return "code"
        if folded in self.html_values:
            return "html"
        if folded in KINDS:  # a field that already says prose / code / html
            return folded
        return extension_kind(folded, self.code_extensions, bare=True)
