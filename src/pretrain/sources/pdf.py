"""PDF files: one prose document per PDF, its text layer read with pypdfium2 (PDFium, the PDF
engine of Chrome; pypdfium2 is Apache-2.0 or BSD-3-Clause, PDFium BSD-3-Clause).

Why pypdfium2: on the first 30 pages of 8 PDFs from Debian's documentation packages
(benchmarks/pdf_extract.py, table in docs/data.md) it read 106 pages/s against pypdf's 8.3 and
pdfminer.six's 1.5 (2 shared cores), had the most words both others agreed on (98.6% against
97.7%), and left no ligature glyphs, where pypdf and pdfminer.six each left 1,277 "ﬁ"/"ﬂ" that
split words for the tokenizer, dedup and language ID. PyMuPDF (AGPL) is ruled out by the project's Apache-2.0
licence.

Pages are joined by a blank line, not a form feed: the clean stage removes control
characters, a form feed among them (pretrain.clean.normalize), which would glue the last word
of one page to the first of the next; a blank line is a paragraph break to every later rule.
PDFium marks a word hyphenated across a line end with U+FFFE (U+0002 in its bounded text) in
place of the hyphen and line break ("Parame\\ufffeters"); removing it rejoins the word. All
the page's characters are read (``get_text_range``), not only those inside the page box
(``get_text_bounded``): a table of contents set wider than the page (DocBook's reference
manual through FOP) lost 12% of its words to the crop. PDFium cannot tell a compound's hyphen
at a line end from a break inside a word: "well-" / "known" becomes "wellknown", a rarer loss
than the "con-" / "ducted" halves every TeX page has when the hyphen is kept.

Counted, in files and bytes: ``no_text_layer`` (scanned pages, images only: there is no OCR
here), ``encrypted_pdf`` (a user password is needed; a PDF with only an owner password opens),
``damaged_pdf`` (PDFium cannot load it: truncated, or not a PDF), ``empty_file`` (no pages).
Counted rather than raised: PDFs come from crawls and mail archives, where a broken one is
common, and one should not stop the download of a folder of thousands; the report names the
first few (``skipped_examples``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pypdfium2
import pypdfium2.raw as pdfium_c

from pretrain.config.sources import SourceConfig
from pretrain.sources.records import (
    Document,
    Skipped,
    display_name,
    make_document,
    metadata_json,
    selected_fields,
)

PAGE_BREAK = "\n\n"
HYPHEN_BREAKS = str.maketrans("", "", "\ufffe\x02")  # PDFium's marks of a line-end hyphen


def read_pdf(path: Path, cfg: SourceConfig, skipped: Skipped, label: str) -> Iterator[Document]:
    """One document of the PDF's text, its pages in order joined by PAGE_BREAK; id and
    provenance the file's name; metadata its page count and title (when it has one)."""
    name, size = display_name(path), path.stat().st_size
    try:
        pdf = pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError as exc:
        encrypted = exc.err_code == pdfium_c.FPDF_ERR_PASSWORD
        skipped.add_file("encrypted_pdf" if encrypted else "damaged_pdf", name, size)
        return
    try:
        pages = [_page_text(pdf, i) for i in range(len(pdf))]
        title = pdf.get_metadata_dict().get("Title") or None
    finally:
        pdf.close()
    text = PAGE_BREAK.join(page.strip() for page in pages if page.strip())
    if not pages:
        skipped.add_file("empty_file", name, size)
    elif not text:
        skipped.add_file("no_text_layer", name, size)
    else:
        fields = selected_fields({"pages": len(pages), "title": title}, cfg.metadata_fields)
        yield from make_document(text, name, name, skipped, label, metadata_json(fields))


def _page_text(pdf: pypdfium2.PdfDocument, index: int) -> str:
    page = pdf[index]
    textpage = page.get_textpage()
    try:
        return textpage.get_text_range().translate(HYPHEN_BREAKS)
    finally:
        textpage.close()
        page.close()
