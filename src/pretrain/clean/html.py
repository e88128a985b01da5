"""HTML to text (a modifier applied to HTML documents only).

A document is HTML when the download stage marked it so (its id ends in ``#html``: a .html
file or a text/html response, see pretrain.sources.records) or when its text starts like an HTML page
(``<!DOCTYPE html``, ``<html``, ``<head`` or ``<body``, after blank space and comments).

The extractor is the standard library's ``html.parser`` (no dependency; it tolerates broken
markup): the text of the page with one line per block element, character references decoded,
whitespace collapsed as a browser does (kept inside ``<pre>``). Boilerplate is removed by
element, as the usual extractors' first pass does (trafilatura, jusText): navigation, header,
footer, asides, forms, scripts and styles (``clean.html.drop_tags``) are dropped with all they
contain, and so is any element with an ARIA landmark role for page furniture (navigation,
banner, contentinfo, complementary, search). It does not score paragraphs for boilerplate as
trafilatura or jusText do.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from pretrain.config.clean import HtmlConfig
from pretrain.sources.records import HTML_SUFFIX

_PAGE_START = re.compile(r"\A\s*(?:<!--.*?-->\s*)*(?:<\?xml[^>]*>\s*)?"
                         r"<(?:!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
_BLOCKS = frozenset(
    "address article blockquote br caption dd details div dl dt fieldset figcaption figure h1 "
    "h2 h3 h4 h5 h6 hr li main ol p pre section summary table td th title tr ul".split())
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_FURNITURE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
_SPACES = re.compile(r"[ \t\r\n\f]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_COLLAPSED_INDENT = re.compile(r"^ (?! )|[ \t]+$", re.M)  # one space left by collapsing, or trailing


def is_html(doc: dict) -> bool:
    """Whether a document's text is an HTML page (marked by its id, or by how it starts)."""
    return doc["id"].endswith(HTML_SUFFIX) or bool(_PAGE_START.match(doc["text"][:4096]))


class _TextCollector(HTMLParser):
    """Collects text, skipping dropped elements (tracked by the name of the outermost one, so
    unclosed tags inside it do not matter)."""

    def __init__(self, drop_tags: frozenset[str]):
        super().__init__(convert_charrefs=True)
        self.drop_tags = drop_tags
        self.parts: list[str] = []
        self.dropping: str | None = None
        self.depth = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self.dropping is not None:
            self.depth += tag == self.dropping
            return
        if tag in self.drop_tags or dict(attrs).get("role") in _FURNITURE_ROLES:
            if tag not in _VOID:
                self.dropping, self.depth = tag, 1
            return
        self.pre += tag == "pre"
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.dropping is not None:
            self.depth -= tag == self.dropping
            if self.depth == 0:
                self.dropping = None
            return
        self.pre -= tag == "pre" and self.pre > 0
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.dropping is None:
            self.parts.append(data if self.pre else _SPACES.sub(" ", data))


class HtmlToText:
    """The visible text of an HTML page, without scripts, styles and page furniture."""

    name = "html_to_text"

    def __init__(self, cfg: HtmlConfig):
        self.drop_tags = frozenset(cfg.drop_tags)

    @staticmethod
    def applies_to(doc: dict) -> bool:
        return is_html(doc)

    def modify(self, text: str) -> str:
        collector = _TextCollector(self.drop_tags)
        collector.feed(text)
        collector.close()
        text = _COLLAPSED_INDENT.sub("", "".join(collector.parts))
        return _BLANK_LINES.sub("\n\n", text).strip("\n")
