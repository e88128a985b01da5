"""A whole file's, URL response's or WARC record's bytes as one document: decoded, of kind
HTML where it is, counted where it gives none.

Its own module, not in pretrain.sources.files, so that the readers files.py registers (WARC)
can use it without an import cycle; and not in pretrain.sources.records, which the clean stage
imports, so that its dependencies stay free of the encoding rules.
"""

from __future__ import annotations

from typing import Callable, Iterator

from pretrain.sources.encoding import Decoded, decode, html_charset
from pretrain.sources.records import (
    EMPTY_METADATA,
    Document,
    Skipped,
    make_document,
)

UTF8 = {"utf-8", "utf-8-sig"}


def bytes_document(raw: bytes, doc_id: str, provenance: str, html: bool, encoding: str | None,
                   declared: tuple[str | None, ...], skipped: Skipped, label: str,
                   lost: Callable[[str], None], metadata: str = EMPTY_METADATA,
                   kind: str | None = None) -> Iterator[Document]:
    """One document from a whole file, response body or WARC record: decoded (see
    pretrain.sources.encoding; the ``declared`` charsets first, then the page's own ``<meta>``
    if it is HTML), of ``kind`` (default: "html" if ``html``, else "prose"; see
    pretrain.sources.kinds); HTML is kept raw for the clean stage to extract the text. A body that gives no text (its encoding cannot be told, or it is blank)
    is counted whole by ``lost(reason)``, in its unit (a file, a URL, a record); a text that
    cannot be a document is one record skipped (pretrain.sources.records.make_document)."""
    if html:
        declared = (*declared, html_charset(raw))
    decoded = decode(raw, encoding, declared)
    if decoded.reason:
        lost(decoded.reason)
        return
    if not decoded.text.strip():
        lost("empty_file")
        return
    if count_encoding(decoded, skipped):
        provenance += f" (decoded from {decoded.encoding})"
    yield from make_document(decoded.text, doc_id, provenance, skipped, label, metadata,
                             kind=kind or ("html" if html else "prose"))


def count_encoding(decoded: Decoded, skipped: Skipped) -> bool:
    """Count a file read in another encoding than UTF-8 (ASCII is UTF-8); whether it was."""
    if decoded.encoding in UTF8 or decoded.text is None or decoded.text.isascii():
        return False
    skipped.decoded[decoded.encoding] += 1
    return True
