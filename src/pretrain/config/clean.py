"""The `clean` section of params.yaml: cleaning rules by document kind and their thresholds."""

from __future__ import annotations

import dataclasses
from typing import Optional

from pretrain.config import fraction, positive


@dataclasses.dataclass(frozen=True)
class ParagraphLengthConfig:
    min_lines: int = 3
    """Drop documents with fewer newline-separated lines (course: 3)."""
    min_third_longest_chars: int = 3
    """Drop documents whose third-longest line is shorter than this (course: 3)."""

    def __post_init__(self) -> None:
        positive("min_lines", self.min_lines)
        positive("min_third_longest_chars", self.min_third_longest_chars, zero=True)


@dataclasses.dataclass(frozen=True)
class ParagraphRepetitionConfig:
    max_dup_paragraph_frac: float = 0.3
    """Gopher: max fraction of paragraphs that duplicate an earlier one."""
    max_dup_paragraph_char_frac: float = 0.2
    """Gopher: max fraction of characters inside duplicated paragraphs."""

    def __post_init__(self) -> None:
        fraction("max_dup_paragraph_frac", self.max_dup_paragraph_frac)
        fraction("max_dup_paragraph_char_frac", self.max_dup_paragraph_char_frac)


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    languages: list[str] = dataclasses.field(default_factory=lambda: ["en"])
    """Keep documents whose top fastText lid.176 label is one of these."""
    min_score: float = 0.4
    """... and whose score is above this (course: 0.4)."""

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages: must name at least one language")
        fraction("min_score", self.min_score)


@dataclasses.dataclass(frozen=True)
class WhitespaceConfig:
    max_blank_lines: int = 2
    """Collapse longer runs of blank lines to this many (line-leading indentation is kept)."""

    def __post_init__(self) -> None:
        positive("max_blank_lines", self.max_blank_lines, zero=True)


@dataclasses.dataclass(frozen=True)
class HtmlConfig:
    main_content: bool = True
    """Resiliparse's main-content heuristics: drop navigation, headers, footers, sidebars, forms."""
    skip_elements: list[str] = dataclasses.field(default_factory=lambda: [
        "[role=navigation]", "[role=banner]", "[role=contentinfo]", "[role=complementary]",
        "[role=search]"])
    """CSS selectors of elements always dropped with everything inside them (default: the ARIA
    landmark roles of page furniture)."""

    def __post_init__(self) -> None:
        for selector in self.skip_elements:
            if not isinstance(selector, str) or not selector.strip():
                raise ValueError(f"skip_elements: expected CSS selectors, got {selector!r}")


@dataclasses.dataclass(frozen=True)
class PiiConfig:
    email_placeholder: Optional[str] = "<EMAIL>"
    """Replaces each e-mail address (None: leave e-mail addresses)."""
    ip_placeholder: Optional[str] = "<IP_ADDRESS>"
    """Replaces each IPv4 / IPv6 address (None: leave IP addresses)."""
    keep_non_public_ips: bool = True
    """Leave private, loopback, link-local and documentation addresses (127.0.0.1, 10.x, ...)."""

    def __post_init__(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class GopherQualityConfig:
    min_words: Optional[int] = 50
    """Drop documents with fewer words, symbols not counted (Gopher: 50; None: no minimum)."""
    max_words: Optional[int] = 100_000
    """Drop documents with more words (Gopher: 100,000)."""
    min_mean_word_length: Optional[float] = 3.0
    """Drop documents whose mean word length is below this (Gopher: 3 characters)."""
    max_mean_word_length: Optional[float] = 10.0
    """... or above this (Gopher: 10)."""
    max_symbol_word_ratio: Optional[float] = 0.1
    """Drop documents with more '#', or more '...', per word than this (Gopher: 0.1)."""
    max_bullet_lines_frac: Optional[float] = 0.9
    """Drop documents with more lines starting with a bullet ('•' or '-') (Gopher: 0.9)."""
    max_ellipsis_lines_frac: Optional[float] = 0.3
    """Drop documents with more lines ending in an ellipsis (Gopher: 0.3)."""
    min_alpha_words_frac: Optional[float] = 0.8
    """Drop documents where fewer words contain a letter (Gopher: 0.8)."""
    min_stop_words: Optional[int] = 2
    """Drop documents containing fewer of the stop words below (Gopher: 2)."""
    stop_words: list[str] = dataclasses.field(
        default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"])
    """Gopher's stop words, matched in any case ("The" counts; datatrove: exact case only)."""

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_mean_word_length", "max_mean_word_length",
                     "max_symbol_word_ratio", "min_stop_words"):
            positive(name, getattr(self, name), allow_none=True, zero=True)
        for name in ("max_bullet_lines_frac", "max_ellipsis_lines_frac", "min_alpha_words_frac"):
            if getattr(self, name) is not None:
                fraction(name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class GopherRepetitionConfig:
    max_dup_line_frac: Optional[float] = 0.3
    """Drop documents with more lines that repeat an earlier line (Gopher table A1: 0.3)."""
    max_dup_para_frac: Optional[float] = 0.3
    """... more paragraphs that repeat an earlier paragraph (0.3)."""
    max_dup_line_char_frac: Optional[float] = 0.2
    """... more characters in repeated lines (0.2)."""
    max_dup_para_char_frac: Optional[float] = 0.2
    """... more characters in repeated paragraphs (0.2)."""
    top_ngram_char_fracs: list[float] = dataclasses.field(default_factory=lambda: [0.2, 0.18, 0.16])
    """For n = 2, 3, 4, ...: most frequent n-gram's characters times its count, max fraction."""
    dup_ngram_char_fracs: list[float] = dataclasses.field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])
    """For n = 5, 6, ...: max fraction of characters in n-grams that repeat an earlier one."""

    def __post_init__(self) -> None:
        for name in ("max_dup_line_frac", "max_dup_para_frac", "max_dup_line_char_frac",
                     "max_dup_para_char_frac"):
            if getattr(self, name) is not None:
                fraction(name, getattr(self, name))
        for name in ("top_ngram_char_fracs", "dup_ngram_char_fracs"):
            for i, value in enumerate(getattr(self, name)):
                fraction(f"{name}[{i}]", value)


@dataclasses.dataclass(frozen=True)
class C4Config:
    terminal_punct_lines: bool = False
    """c4_lines: drop lines not ending in . ? ! " ' (C4: on; FineWeb: off, it removed too much)."""
    min_words_per_line: int = 3
    """c4_lines: drop lines with fewer words (C4: 3; 0: keep all)."""
    max_word_length: int = 1000
    """c4_lines: drop lines with a longer word (C4's code: 1000 characters)."""
    javascript_lines: bool = True
    """c4_lines: drop lines mentioning "javascript" (C4)."""
    policy_lines: bool = True
    """c4_lines: drop lines mentioning cookies, terms of use or privacy policy (C4's code)."""
    remove_citations: bool = True
    """c4_lines: remove Wikipedia-style citation marks such as [1] and [edit] (C4's code)."""
    min_sentences: int = 5
    """c4: drop documents with fewer sentences (NLTK punkt) on the lines C4 keeps (C4: 5; 0: off)."""
    lorem_ipsum: bool = True
    """c4: drop documents containing "lorem ipsum" (C4)."""
    curly_bracket: bool = True
    """c4: drop documents containing '{' (C4: a sign of code)."""

    def __post_init__(self) -> None:
        positive("min_words_per_line", self.min_words_per_line, zero=True)
        positive("max_word_length", self.max_word_length)
        positive("min_sentences", self.min_sentences, zero=True)


@dataclasses.dataclass(frozen=True)
class FineWebConfig:
    min_punct_lines_frac: float = 0.12
    """Drop documents where fewer lines end in terminal punctuation (FineWeb: 0.12)."""
    max_dup_line_char_frac: float = 0.1
    """Drop documents with more characters in lines that repeat an earlier line (FineWeb: 0.1)."""
    max_short_lines_frac: float = 0.67
    """Drop documents with more short lines (FineWeb: 0.67)."""
    short_line_chars: int = 30
    """A line of at most this many characters is short (FineWeb: 30)."""

    def __post_init__(self) -> None:
        fraction("min_punct_lines_frac", self.min_punct_lines_frac)
        fraction("max_dup_line_char_frac", self.max_dup_line_char_frac)
        fraction("max_short_lines_frac", self.max_short_lines_frac)
        positive("short_line_chars", self.short_line_chars, zero=True)


@dataclasses.dataclass(frozen=True)
class CodeConfig:
    max_line_length: Optional[int] = 1000
    """Drop files with a longer line (Codex, The Stack, RedPajama: 1000 characters)."""
    max_mean_line_length: Optional[float] = 100.0
    """Drop files whose mean line length is above this (Codex, The Stack, RedPajama: 100)."""
    min_alnum_frac: Optional[float] = 0.25
    """Drop files where fewer characters are letters or digits (The Stack, RedPajama: 0.25)."""
    generated_markers: list[str] = dataclasses.field(default_factory=lambda: [
        "auto-generated", "autogenerated", "automatically generated", "generated by",
        "do not edit"])
    """Drop files whose first lines contain one of these, case-insensitively (Codex: generated)."""
    marker_lines: int = 5
    """How many first lines are searched for the markers."""

    def __post_init__(self) -> None:
        positive("max_line_length", self.max_line_length, allow_none=True)
        positive("max_mean_line_length", self.max_mean_line_length, allow_none=True)
        if self.min_alnum_frac is not None:
            fraction("min_alnum_frac", self.min_alnum_frac)
        positive("marker_lines", self.marker_lines, zero=True)


PROSE_FILTERS = ["fix_encoding", "unicode_nfc", "control_chars", "whitespace", "html_to_text", "pii",
                 "paragraph_length", "paragraph_repetition", "gopher_repetition", "gopher_quality",
                 "c4", "c4_lines", "fineweb", "language"]
CODE_FILTERS = ["fix_encoding", "unicode_nfc", "control_chars", "whitespace", "pii",
                "paragraph_length", "code"]


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    filters: list[str] = dataclasses.field(default_factory=lambda: list(PROSE_FILTERS))
    """Rules applied to prose, in order (names from pretrain.clean.registry.FILTERS)."""
    code_filters: list[str] = dataclasses.field(default_factory=lambda: list(CODE_FILTERS))
    """Rules applied to source code, in order."""
    code_sources: list[str] = dataclasses.field(default_factory=lambda: ["stdlib"])
    """Documents of these sources (a built-in part, a mix entry's name) are code, whatever
    their ``kind`` field says; the rest go by it (download.kind_field, download.code_extensions)."""
    whitespace: WhitespaceConfig = dataclasses.field(default_factory=WhitespaceConfig)
    """Settings of the whitespace normalisation."""
    html: HtmlConfig = dataclasses.field(default_factory=HtmlConfig)
    """Settings of html_to_text (applied to HTML documents only)."""
    pii: PiiConfig = dataclasses.field(default_factory=PiiConfig)
    """Placeholders of the PII replacement."""
    paragraph_length: ParagraphLengthConfig = dataclasses.field(default_factory=ParagraphLengthConfig)
    """Thresholds of the paragraph-length filter."""
    paragraph_repetition: ParagraphRepetitionConfig = dataclasses.field(
        default_factory=ParagraphRepetitionConfig
    )
    """Thresholds of the paragraph-repetition filter."""
    gopher_quality: GopherQualityConfig = dataclasses.field(default_factory=GopherQualityConfig)
    """Thresholds of Gopher's quality rules (None: rule off)."""
    gopher_repetition: GopherRepetitionConfig = dataclasses.field(
        default_factory=GopherRepetitionConfig)
    """Thresholds of Gopher's repetition rules (None: rule off)."""
    c4: C4Config = dataclasses.field(default_factory=C4Config)
    """Settings of C4's line rules (c4_lines) and document rules (c4)."""
    fineweb: FineWebConfig = dataclasses.field(default_factory=FineWebConfig)
    """Thresholds of FineWeb's three rules."""
    code: CodeConfig = dataclasses.field(default_factory=CodeConfig)
    """Thresholds of the source-code rules."""
    language: LanguageConfig = dataclasses.field(default_factory=LanguageConfig)
    """Settings of the fastText language filter."""
    samples_per_reason: int = 5
    """How many dropped documents to keep per reason for auditing."""

    def __post_init__(self) -> None:
        # Rule names are checked against the registry by pretrain.clean.registry.check_names, which
        # pretrain.stage runs before any work (config imports nothing above it).
        for name in ("filters", "code_filters"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"{name}: a filter is listed twice")
        positive("samples_per_reason", self.samples_per_reason, zero=True)
