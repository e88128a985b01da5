"""The cleaning rules by name: what ``clean.filters`` and ``clean.code_filters`` may list.

Two kinds of unit (STYLE.md rule 4; datatrove's ``BaseFilter.filter(doc) -> bool | (bool,
reason)``), each with a ``name``:

- a *filter* has ``filter(text) -> (keep, reason)``: ``(True, None)`` keeps the document,
  ``(False, "dup_line_frac")`` drops it, counted as ``"<name>.<reason>"``;
- a *modifier* has ``modify(text) -> text``: normalisation, HTML to text, PII placeholders,
  C4's line removal. The runner counts the documents each one changed.

The registry maps a name to a factory taking the whole CleanConfig. A factory imports its
rule's module only when called: every stage checks the names (pretrain.stage) but only the
clean stage builds rules, so only it depends on (and reruns when) the rule code changes.
``RULE_MODULES`` lists those modules; tests/clean/test_clean.py checks that the clean stage of
dvc.yaml depends on each.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Optional, Protocol, Union

from pretrain.errors import ConfigError

Verdict = tuple[bool, Optional[str]]
KEEP: Verdict = (True, None)
EMPTY: Verdict = (False, "empty")
"""What every filter says about a document that is empty or only whitespace (before any of its
own reasons, which would otherwise name whichever rule happens to come first)."""


def blank(text: str) -> bool:
    """Empty or only whitespace (``str.isspace``: Unicode whitespace, as ``str.strip`` removes)."""
    return not text or text.isspace()


class Filter(Protocol):
    name: str

    def filter(self, text: str) -> Verdict: ...


class Modifier(Protocol):
    name: str

    def modify(self, text: str) -> str: ...


Rule = Union[Filter, Modifier]


def _rule(module: str, cls: str, section: Optional[str] = None) -> Callable[[Any], Rule]:
    """Factory of ``pretrain.clean.<module>.<cls>``, given ``cfg.<section>`` (if any) when built."""

    def build(cfg: Any) -> Rule:
        rule_class = getattr(importlib.import_module(f"pretrain.clean.{module}"), cls)
        return rule_class(getattr(cfg, section)) if section else rule_class()

    build.module = f"pretrain.clean.{module}"  # type: ignore[attr-defined]
    build.section = section  # type: ignore[attr-defined]
    return build


FILTERS: dict[str, Callable[[Any], Rule]] = {
    # normalisation (modifiers), usually first
    "fix_encoding": _rule("normalize", "FixEncoding"),
    "unicode_nfc": _rule("normalize", "UnicodeNFC"),
    "control_chars": _rule("normalize", "ControlChars"),
    "whitespace": _rule("normalize", "Whitespace", "whitespace"),
    "html_to_text": _rule("html", "HtmlToText", "html"),
    "pii": _rule("pii", "PiiPlaceholders", "pii"),
    # the course's filters (DeepLearning.AI "Pretraining LLMs", lesson 2)
    "paragraph_length": _rule("course", "ParagraphLengthFilter", "paragraph_length"),
    "paragraph_repetition": _rule("course", "ParagraphRepetitionFilter",
                                  "paragraph_repetition"),
    "language": _rule("course", "LanguageFilter", "language"),
    # web-text heuristics: Gopher, C4, FineWeb
    "gopher_quality": _rule("gopher", "GopherQualityFilter", "gopher_quality"),
    "gopher_repetition": _rule("gopher", "GopherRepetitionFilter", "gopher_repetition"),
    "c4_lines": _rule("web", "C4LineFilter", "c4"),
    "c4": _rule("web", "C4DocumentFilter", "c4"),
    "fineweb": _rule("web", "FineWebFilter", "fineweb"),
    # source code
    "code": _rule("code", "CodeFilter", "code"),
}
"""Rule name in params.yaml -> factory taking the CleanConfig."""

RULE_MODULES = sorted({factory.module for factory in FILTERS.values()})  # type: ignore[attr-defined]
"""The modules the factories import (the clean stage's deps in dvc.yaml must list them)."""


def check_names(names: list[str], where: str = "params.yaml", key: str = "filters") -> None:
    """Fail on a name that is not in FILTERS (cheap: builds nothing, so every stage can run it;
    ``where``: the params file, ``key``: the clean key listing them, for the message)."""
    for name in names:
        if name not in FILTERS:
            raise ConfigError(f"{where}: clean.{key}: unknown filter {name!r} "
                              f"(expected one of {sorted(FILTERS)})")
    # C4 judges a page by the lines it has before its line rules remove any (TFDS c4_utils):
    # after c4_lines, c4 would never see a "lorem ipsum" or '{' on a line c4_lines removed.
    if "c4" in names and "c4_lines" in names[:names.index("c4")]:
        raise ConfigError(f"{where}: clean.{key}: list c4 before c4_lines (C4's page rules judge "
                          "the page's lines before c4_lines removes any)")


def check_params(cfg: Any, where: str = "params.yaml") -> None:
    """Check both rule lists of a CleanConfig (``clean.filters``, ``clean.code_filters``)."""
    check_names(cfg.filters, where)
    check_names(cfg.code_filters, where, key="code_filters")
