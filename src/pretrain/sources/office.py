"""Word documents (``.docx``, Office Open XML): one prose document per file, read with
python-docx (MIT; well kept, pure Python over lxml, which the project already has).

The body's paragraphs and tables in document order (python-docx's ``iter_inner_content``),
each paragraph one line; a table one line per row, its cells joined by a tab (a cell merged
across columns is one cell, once), a table inside a cell read as that cell's text.
Headers, footers, comments and footnotes are left out: page furniture, not the text.

Counted, in files and bytes: ``damaged_docx`` (not a zip, or no Word document inside:
truncated, or another format renamed) and ``empty_file`` (no text). Counted rather than
raised, as for PDFs (pretrain.sources.pdf): one broken file of a folder should not stop it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

from pretrain.config.sources import SourceConfig
from pretrain.sources.records import (
    Document,
    Skipped,
    display_name,
    make_document,
    metadata_json,
    selected_fields,
)


def read_docx(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    """One document of the file's body text; id and provenance the file's name; metadata its
    title (the document's core property, when set)."""
    # Imported here: python-docx takes ~86 ms to import (benchmarks/read_speed.py's profile), paid
    # by every download and evaluate run otherwise, with or without a .docx input.
    import docx
    from docx.opc.exceptions import OpcError
    from docx.table import Table

    name, size = display_name(path), path.stat().st_size
    try:
        document = docx.Document(str(path))
    # python-docx's errors for a package that is not a Word document, or is cut short
    except (OpcError, zipfile.BadZipFile, KeyError, ValueError):
        skipped.add_file("damaged_docx", name, size)
        return
    lines = [line for block in document.iter_inner_content()
             for line in (_table_lines(block) if isinstance(block, Table) else [block.text])]
    text = "\n".join(lines).strip()
    if not text:
        skipped.add_file("empty_file", name, size)
        return
    fields = selected_fields({"title": document.core_properties.title or None},
                             cfg.metadata_fields)
    yield from make_document(text, name, name, skipped, label, metadata_json(fields))


def _table_lines(table) -> list[str]:
    """One line per row, cells joined by a tab; a merged cell (python-docx repeats it in every
    grid column it spans) once."""
    lines = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(cell.text)
        lines.append("\t".join(cells))
    return lines
