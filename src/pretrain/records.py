"""What every source shares: the document dict, the tally of skipped records, the checks that
turn a record's text into a document or a counted reason."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

Document = dict[str, str]
HTML_SUFFIX = "#html"
"""Ends the id of a document whose text is raw HTML, for the clean stage to extract its text."""


class Skipped(Counter):
    """Records skipped, counted by reason, with where the first ``EXAMPLES`` of each reason were
    (``examples``), so that a lost file can be found from the report. Beside them, what the
    report also tells: files read in an encoding other than UTF-8, by encoding (``decoded``),
    and URL responses by where they came from, network or cache (``fetched``)."""

    EXAMPLES = 5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.examples: dict[str, list[str]] = {}
        self.decoded: Counter = Counter()
        self.fetched: Counter = Counter()

    def add(self, reason: str, where: str) -> None:
        self[reason] += 1
        found = self.examples.setdefault(reason, [])
        if len(found) < self.EXAMPLES:
            found.append(where)


def make_document(text: Any, doc_id: str, provenance: str, skipped: Skipped,
                  source: str) -> Iterator[Document]:
    """Yield the document, or count why the text cannot be one."""
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
    else:
        yield {"id": doc_id, "text": text.replace("\r\n", "\n"), "source": source,
               "provenance": provenance}


def display_name(path: Path) -> str:
    """A path relative to the working directory (the repository) when inside it, so ids do not
    depend on whether download.path was written relative or absolute."""
    rel = os.path.relpath(path.resolve())
    return Path(rel).as_posix() if not rel.startswith("..") else path.resolve().as_posix()


def params_key(label: str | None, key: str) -> str:
    """The params.yaml key of a setting of the single source, or of the mix entry ``label``."""
    return f"download.sources[{label}].{key}" if label else f"download.{key}"
