"""HTML to text (a modifier applied to HTML documents only).

A document is HTML when the download stage says so (its ``kind`` is ``html``: a .html file, a
text/html response, a record whose kind field says so; pretrain.sources.kinds) or when its text
starts like an HTML page (``<!DOCTYPE html``, ``<html``, ``<head`` or ``<body``, after blank
space and comments: HTML in a record of a source that names no kind field).

The extractor is Resiliparse's ``extract_plain_text`` (Bevendorff et al., ChatNoir; the HTML
extractor of DCLM, Li et al. 2024), with its main-content heuristics on (``clean.html.main_content``):
visible text with block structure kept (paragraphs, list items, ``<pre>`` as written), scripts,
styles, forms and page furniture left out. Elements matching ``clean.html.skip_elements`` (CSS
selectors; by default the ARIA landmark roles of page furniture) are dropped as well.

Chosen by measurement (benchmarks/html_extract.py, docs/cleaning.md): on 11 hand-checked pages
(documentation, blog, news, forum, shop, a table-heavy form page) word-level F1 against the main
text 0.93 for Resiliparse, 0.88 for trafilatura with datatrove's settings, 0.81 for the
hand-written html.parser extractor this module used to hold; pages/s on 300 pages found on the
machine: Resiliparse 3.2x the hand-written one, trafilatura 0.17x (2-core Xeon, AVX-512F).
"""

from __future__ import annotations

import re

from resiliparse.extract.html2text import extract_plain_text

from pretrain.config.clean import HtmlConfig
from pretrain.errors import ConfigError

_PAGE_START = re.compile(r"\A\s*(?:<!--.*?-->\s*)*(?:<\?xml[^>]*>\s*)?"
                         r"<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
_BLANK_LINES = re.compile(r"\n\s*\n+")
_TRAILING = re.compile(r"[ \t]+$", re.M)


def is_html(doc: dict) -> bool:
    """Whether a document's text is an HTML page (by its kind, or by how it starts)."""
    return doc.get("kind") == "html" or bool(_PAGE_START.match(doc["text"][:4096]))


class HtmlToText:
    """The main text of an HTML page, without scripts, styles and page furniture."""

    name = "html_to_text"

    def __init__(self, cfg: HtmlConfig):
        self.main_content = cfg.main_content
        self.skip_elements = list(cfg.skip_elements) or None
        try:  # a selector Resiliparse cannot parse fails here, not on the first page
            extract_plain_text("<p>x</p>", skip_elements=self.skip_elements)
        except Exception as exc:  # resiliparse.parse.css.CSSParserException
            raise ConfigError(f"clean.html.skip_elements: {cfg.skip_elements}: {exc}") from None

    @staticmethod
    def applies_to(doc: dict) -> bool:
        return is_html(doc)

    def modify(self, text: str) -> str:
        text = extract_plain_text(text, preserve_formatting=True, main_content=self.main_content,
                                  skip_elements=self.skip_elements)
        return _BLANK_LINES.sub("\n\n", _TRAILING.sub("", text)).strip("\n")
