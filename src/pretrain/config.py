"""Typed, validated views of ``params.yaml``: one frozen dataclass per section.

Unknown keys, wrong types and out-of-range values are errors that name the key and the file
(STYLE.md rule 3): a misspelled key that is silently never read makes an experiment wrong.
"""

from __future__ import annotations

import codecs
import dataclasses
import glob
import math
import os
import types
import typing
import urllib.parse
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

import yaml

from pretrain.errors import ConfigError

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


SOURCE_KINDS = ("builtin", "files", "hf", "urls")
BUILTIN_PARTS = ("stdlib", "pydoc_topics", "docstrings", "package_docs")


@dataclasses.dataclass(frozen=True)
class SourceConfig:
    """One source of documents: the download section itself, or an entry of download.sources."""

    _may_mix = False  # a class constant, not a field: only the section itself may be a mix
    source: str = "builtin"
    """Where documents come from: builtin (Python's own sources and docs), files, hf or urls."""
    path: Optional[str] = None
    """files: a file, folder or glob; hf: a dataset id or a local dataset folder."""
    urls: list[str] = dataclasses.field(default_factory=list)
    """urls: the http(s) addresses to fetch, one document each."""
    text_field: str = "text"
    """Name of the text column/field in JSONL, JSON, Parquet, CSV or Hugging Face records."""
    encoding: Optional[str] = None
    """Encoding of text, HTML and CSV files and URL bodies that are not UTF-8 (None: detected)."""
    hf_config: Optional[str] = None
    """hf: dataset configuration name."""
    hf_split: str = "train"
    """hf: split to read."""
    builtin_parts: list[str] = dataclasses.field(default_factory=lambda: list(BUILTIN_PARTS))
    """builtin: which parts of the installed Python to collect (see pretrain.sources)."""
    include_tests: bool = False
    """builtin: include the standard library's own test suites (19 MB of mostly test code)."""

    def __post_init__(self) -> None:
        _one_of("source", self.source, SOURCE_KINDS + (("mix",) if self._may_mix else ()))
        if self.source in ("files", "hf") and not self.path:
            raise ValueError(f"path: required when source is {self.source!r}")
        if self.source == "urls" and not self.urls:
            raise ValueError("urls: required when source is 'urls' (a list of http(s) addresses)")
        seen: set[str] = set()
        for i, url in enumerate(self.urls):
            _http_url(f"urls[{i}]", url)
            if url in seen:
                raise ValueError(f"urls[{i}]: {url!r} is listed twice")
            seen.add(url)
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None
        for part in self.builtin_parts:
            _one_of("builtin_parts", part, BUILTIN_PARTS)


@dataclasses.dataclass(frozen=True)
class MixSourceConfig(SourceConfig):
    """An entry of download.sources: a source with a name and a weight."""

    name: str = ""
    """Names the source: its documents' ``source`` field and its line in the report."""
    weight: float = 1.0
    """Share of the output documents, relative to the other weights (normalised by their sum)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.name:
            raise ValueError("name: required (it labels the source's documents)")
        _positive("weight", self.weight)


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    timeout_s: float = 30.0
    """Seconds to wait for a connection and for each read of a response."""
    retries: int = 3
    """Retries after a timeout, a dropped connection or HTTP 408 / 429 / 5xx (not after a 404)."""
    backoff_s: float = 1.0
    """Wait before the first retry, doubled after each (or the server's Retry-After)."""
    max_bytes: int = 10_000_000
    """Skip a response larger than this (it is not read past the cap)."""
    workers: int = 4
    """URLs fetched at the same time."""

    def __post_init__(self) -> None:
        _positive("timeout_s", self.timeout_s)
        _positive("retries", self.retries, zero=True)
        _positive("backoff_s", self.backoff_s, zero=True)
        _positive("max_bytes", self.max_bytes)
        _positive("workers", self.workers)


@dataclasses.dataclass(frozen=True)
class DownloadConfig(SourceConfig):
    max_documents: Optional[int] = None
    """Stop after this many documents (None: all); with source mix, the total the weights share."""
    sources: list[MixSourceConfig] = dataclasses.field(default_factory=list)
    """source mix: several sources, each with a name and a weight (see README)."""
    seed: int = 0
    """source mix: seed of the order in which the sources' documents are interleaved."""
    fetch: FetchConfig = dataclasses.field(default_factory=FetchConfig)
    """How URLs are fetched (source urls, or a urls entry of sources)."""

    _may_mix = True
    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("max_documents", self.max_documents, allow_none=True)
        if self.source != "mix":
            if self.sources:
                raise ValueError(f"sources: used only when source is 'mix' (source is {self.source!r})")
            return
        if not self.sources:
            raise ValueError("sources: required when source is 'mix' (a list of named, weighted sources)")
        if self.max_documents is None:
            raise ValueError("max_documents: required when source is 'mix' (the weights share it)")
        for f in dataclasses.fields(SourceConfig):  # a single-source key would silently be unused
            if f.name != "source" and getattr(self, f.name) != getattr(SourceConfig(), f.name):
                raise ValueError(f"{f.name}: not used when source is 'mix' (set it in each of sources)")
        names = [s.name for s in self.sources]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"sources[{i}].name: {name!r} is used twice")


@dataclasses.dataclass(frozen=True)
class ParagraphLengthConfig:
    min_lines: int = 3
    """Drop documents with fewer newline-separated lines (course: 3)."""
    min_third_longest_chars: int = 3
    """Drop documents whose third-longest line is shorter than this (course: 3)."""

    def __post_init__(self) -> None:
        _positive("min_lines", self.min_lines)
        _positive("min_third_longest_chars", self.min_third_longest_chars, zero=True)


@dataclasses.dataclass(frozen=True)
class ParagraphRepetitionConfig:
    max_dup_paragraph_frac: float = 0.3
    """Gopher: max fraction of paragraphs that duplicate an earlier one."""
    max_dup_paragraph_char_frac: float = 0.2
    """Gopher: max fraction of characters inside duplicated paragraphs."""

    def __post_init__(self) -> None:
        _fraction("max_dup_paragraph_frac", self.max_dup_paragraph_frac)
        _fraction("max_dup_paragraph_char_frac", self.max_dup_paragraph_char_frac)


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    languages: list[str] = dataclasses.field(default_factory=lambda: ["en"])
    """Keep documents whose top fastText lid.176 label is one of these."""
    min_score: float = 0.4
    """... and whose score is above this (course: 0.4)."""

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages: must name at least one language")
        _fraction("min_score", self.min_score)


@dataclasses.dataclass(frozen=True)
class WhitespaceConfig:
    max_blank_lines: int = 2
    """Collapse longer runs of blank lines to this many (line-leading indentation is kept)."""

    def __post_init__(self) -> None:
        _positive("max_blank_lines", self.max_blank_lines, zero=True)


@dataclasses.dataclass(frozen=True)
class HtmlConfig:
    drop_tags: list[str] = dataclasses.field(default_factory=lambda: [
        "script", "style", "noscript", "template", "svg", "canvas", "iframe", "head", "nav",
        "header", "footer", "aside", "form", "button", "select", "menu", "dialog"])
    """Elements dropped with everything inside them: code and page furniture, not content."""

    def __post_init__(self) -> None:
        for tag in self.drop_tags:
            if not tag.isalnum() or tag != tag.lower():
                raise ValueError(f"drop_tags: expected lower-case tag names, got {tag!r}")


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
    """Gopher's stop words (matched case-sensitively, as datatrove does)."""

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_mean_word_length", "max_mean_word_length",
                     "max_symbol_word_ratio", "min_stop_words"):
            _positive(name, getattr(self, name), allow_none=True, zero=True)
        for name in ("max_bullet_lines_frac", "max_ellipsis_lines_frac", "min_alpha_words_frac"):
            if getattr(self, name) is not None:
                _fraction(name, getattr(self, name))


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
                _fraction(name, getattr(self, name))
        for name in ("top_ngram_char_fracs", "dup_ngram_char_fracs"):
            for i, value in enumerate(getattr(self, name)):
                _fraction(f"{name}[{i}]", value)


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
    """c4: drop documents with fewer sentences left (C4: 5; 0: no minimum)."""
    lorem_ipsum: bool = True
    """c4: drop documents containing "lorem ipsum" (C4)."""
    curly_bracket: bool = True
    """c4: drop documents containing '{' (C4: a sign of code)."""

    def __post_init__(self) -> None:
        _positive("min_words_per_line", self.min_words_per_line, zero=True)
        _positive("max_word_length", self.max_word_length)
        _positive("min_sentences", self.min_sentences, zero=True)


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
        _fraction("min_punct_lines_frac", self.min_punct_lines_frac)
        _fraction("max_dup_line_char_frac", self.max_dup_line_char_frac)
        _fraction("max_short_lines_frac", self.max_short_lines_frac)
        _positive("short_line_chars", self.short_line_chars, zero=True)


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
        _positive("max_line_length", self.max_line_length, allow_none=True)
        _positive("max_mean_line_length", self.max_mean_line_length, allow_none=True)
        if self.min_alnum_frac is not None:
            _fraction("min_alnum_frac", self.min_alnum_frac)
        _positive("marker_lines", self.marker_lines, zero=True)


PROSE_FILTERS = ["fix_encoding", "unicode_nfc", "control_chars", "whitespace", "html_to_text", "pii",
                 "paragraph_length", "paragraph_repetition", "gopher_repetition", "gopher_quality",
                 "c4_lines", "c4", "fineweb", "language"]
CODE_FILTERS = ["fix_encoding", "unicode_nfc", "control_chars", "whitespace", "pii",
                "paragraph_length", "code"]


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    filters: list[str] = dataclasses.field(default_factory=lambda: list(PROSE_FILTERS))
    """Rules applied to prose, in order (names from pretrain.filters.FILTERS)."""
    code_filters: list[str] = dataclasses.field(default_factory=lambda: list(CODE_FILTERS))
    """Rules applied to source code, in order."""
    code_sources: list[str] = dataclasses.field(default_factory=lambda: ["stdlib"])
    """Documents of these sources are code (builtin: stdlib holds the .py files)."""
    code_extensions: list[str] = dataclasses.field(default_factory=lambda: [
        ".py", ".pyi", ".pyx", ".c", ".h", ".cc", ".cpp", ".hpp", ".cu", ".java", ".kt", ".scala",
        ".js", ".ts", ".go", ".rs", ".rb", ".php", ".cs", ".swift", ".sh", ".lua", ".pl", ".r",
        ".jl", ".sql"])
    """... and so are documents whose id (a file's path) ends with one of these."""
    workers: int = 0
    """Processes that clean in parallel (0: one per CPU core); the output does not depend on it."""
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
        # Rule names are checked against the registry by pretrain.filters.check_names, which
        # pretrain.stage runs before any work (config imports nothing above it).
        for name in ("filters", "code_filters"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise ValueError(f"{name}: a filter is listed twice")
        for ext in self.code_extensions:
            if not ext.startswith(".") or ext != ext.lower():
                raise ValueError(f"code_extensions: expected lower-case '.ext', got {ext!r}")
        _positive("workers", self.workers, zero=True)
        _positive("samples_per_reason", self.samples_per_reason, zero=True)


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    normalize: bool = True
    """Compare texts after Unicode NFC and whitespace collapsing (False: byte-exact)."""
    near: bool = True
    """Also remove near-duplicates (MinHash LSH); False: exact duplicates only."""
    ngram: int = 5
    """Words per shingle (Lee et al. 2022 and FineWeb: 5)."""
    num_perm: int = 100
    """MinHash permutations per document; must equal bands * rows."""
    bands: int = 25
    """LSH bands: documents sharing all the rows of any band are candidate pairs."""
    rows: int = 4
    """Signature values per band."""
    threshold: float = 0.65
    """Jaccard similarity meant as near-duplicate: checks bands/rows, and verifies candidates."""
    verify: bool = True
    """Keep only candidate pairs whose signatures' estimated Jaccard is >= threshold."""
    seed: int = 1
    """Seed of the MinHash permutations."""
    workers: int = 0
    """Processes that hash documents (0: every core); results do not depend on it."""
    batch_chars: int = 250_000
    """Bytes of text per worker task (bounds each worker's memory; measured fastest)."""
    sort_chunk: int = 4_000_000
    """Most bucket keys sorted in memory at once (a band with more is split by key range)."""
    samples: int = 20
    """Removed documents per reason written to removed_pairs.jsonl for audit."""

    def __post_init__(self) -> None:
        for name in ("ngram", "num_perm", "bands", "rows", "batch_chars", "sort_chunk"):
            _positive(name, getattr(self, name))
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"num_perm: must equal bands * rows ({self.bands} * {self.rows} = "
                             f"{self.bands * self.rows}), got {self.num_perm}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold: expected a value in (0, 1], got {self.threshold!r}")
        _positive("workers", self.workers, zero=True)
        _positive("samples", self.samples, zero=True)


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    path: Optional[str] = None
    """Use this existing tokenizer (local folder, GGUF file or hub id) instead of training one."""
    vocab_size: int = 8192
    """Vocabulary size of the trained byte-level BPE tokenizer, special tokens included."""
    min_frequency: int = 2
    """A pair must occur this often to be merged."""
    bos_token: str = "<s>"
    """Beginning-of-document token."""
    eos_token: str = "</s>"
    """End-of-document token."""
    pad_token: str = "<pad>"
    """Padding token (used only for batched evaluation and generation)."""

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ValueError("vocab_size: must be at least 300 (256 bytes + special tokens + merges)")
        _positive("min_frequency", self.min_frequency)
        if len({self.bos_token, self.eos_token, self.pad_token}) != 3:
            raise ValueError("bos_token, eos_token and pad_token must differ")


@dataclasses.dataclass(frozen=True)
class PackConfig:
    seq_len: int = 256
    """Tokens per packed row (the course uses 32)."""
    val_fraction: float = 0.05
    """Fraction of documents held out for validation (chosen by a hash of the document id)."""
    split_salt: str = "pretrain"
    """Salt of the document hash, to draw a different validation set."""
    batch_documents: int = 512
    """Documents tokenized per batch (bounds memory)."""

    def __post_init__(self) -> None:
        _positive("seq_len", self.seq_len)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction}")
        _positive("batch_documents", self.batch_documents)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    init: str = "random"
    """How to start: random (from the preset), pretrained, downscale or upscale (from base)."""
    base: Optional[str] = None
    """pretrained/downscale/upscale: a local Hugging Face model folder or GGUF file (or a hub id)."""
    preset: str = "small"
    """random: named size from pretrain.presets.PRESETS; the fields below override it when set."""
    num_layers: Optional[int] = None
    """Number of transformer blocks (downscale/upscale: the target depth)."""
    hidden_size: Optional[int] = None
    """Width of the residual stream."""
    num_heads: Optional[int] = None
    """Attention heads."""
    num_kv_heads: Optional[int] = None
    """Key/value heads (grouped-query attention); must divide num_heads."""
    intermediate_size: Optional[int] = None
    """Width of the SwiGLU feed-forward layer."""
    max_position_embeddings: Optional[int] = None
    """Longest context the model supports."""
    rope_theta: Optional[float] = None
    """RoPE base frequency."""
    tie_word_embeddings: Optional[bool] = None
    """Share the input embedding and output head."""
    init_std: float = 0.02
    """Standard deviation of the normal weight initialisation."""
    seed: int = 42
    """Seed of the weight initialisation."""

    def __post_init__(self) -> None:
        # The preset name and the sizes' consistency are checked by pretrain.presets.resolve_sizes,
        # which pretrain.stage runs before any work (config imports nothing above it).
        _one_of("init", self.init, ("random", "pretrained", "downscale", "upscale"))
        if self.init != "random":
            if not self.base:
                raise ValueError(f"base: required when model.init is {self.init!r}")
            allowed = {"num_layers"} if self.init in ("downscale", "upscale") else set()
            for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                         "max_position_embeddings", "rope_theta", "tie_word_embeddings"):
                if getattr(self, name) is not None and name not in allowed:
                    raise ValueError(f"{name}: cannot be set when model.init is {self.init!r} "
                                     "(the base model fixes it)")
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                     "max_position_embeddings"):
            _positive(name, getattr(self, name), allow_none=True)
        _positive("rope_theta", self.rope_theta, allow_none=True)
        _positive("init_std", self.init_std)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adamw"
    """adamw, or lion (use a 3-10x lower learning rate and higher weight decay, per the paper)."""
    learning_rate: float = 1e-3
    """Peak learning rate."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine, linear or constant."""
    warmup_steps: int = 20
    """Optimizer steps of linear warm-up from 0 to the peak."""
    min_lr_ratio: float = 0.1
    """Floor of the decay as a fraction of the peak."""
    max_steps: Optional[int] = 300
    """Optimizer steps to train for (set this or max_tokens, not both)."""
    max_tokens: Optional[int] = None
    """Token budget: train for ceil(max_tokens / tokens per step) optimizer steps."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass, summed over all processes (split evenly among them)."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    weight_decay: float = 0.1
    """Decoupled weight decay (not applied to norms and biases)."""
    beta1: float = 0.9
    """AdamW / Lion beta1."""
    beta2: float = 0.95
    """AdamW / Lion beta2 (the Lion paper uses 0.99)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    precision: str = "auto"
    """fp32, bf16 or fp16 autocast, or auto (bf16 where supported, else fp16 on GPU / fp32 on CPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    compile: bool = False
    """Compile the model with torch.compile (pays a compile time up front)."""
    num_workers: int = 0
    """Data-loader worker processes preparing batches (0: in the training process)."""
    log_every: int = 10
    """Log to DVCLive (and report_to) every this many optimizer steps."""
    eval_every: int = 0
    """Compute the validation loss every this many optimizer steps (0: only at the end)."""
    eval_batches: int = 8
    """Validation micro-batches per evaluation (the same rows every time)."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every this many optimizer steps (0: never)."""
    report_to: list[str] = dataclasses.field(default_factory=list)
    """Extra loggers besides DVCLive: tensorboard, wandb (API key from the environment)."""
    peak_tflops: Optional[float] = None
    """Peak TFLOP/s that MFU is relative to (None: a bf16/fp32 matmul measured at start-up)."""
    launcher: str = "python"
    """Command that runs stages/train.py, e.g. "accelerate launch --multi_gpu --num_processes 8"."""
    seed: int = 0
    """Seed of data order and dropout."""

    def __post_init__(self) -> None:
        _one_of("optimizer", self.optimizer, ("adamw", "lion"))
        _positive("learning_rate", self.learning_rate)
        _one_of("schedule", self.schedule, ("cosine", "linear", "constant"))
        _positive("warmup_steps", self.warmup_steps, zero=True)
        _fraction("min_lr_ratio", self.min_lr_ratio)
        if (self.max_steps is None) == (self.max_tokens is None):
            raise ValueError("max_steps: set exactly one of max_steps and max_tokens (the other null)")
        _positive("max_steps", self.max_steps, allow_none=True)
        _positive("max_tokens", self.max_tokens, allow_none=True)
        for name in ("micro_batch_size", "grad_accum_steps", "log_every", "eval_batches"):
            _positive(name, getattr(self, name))
        for name in ("num_workers", "eval_every", "checkpoint_every"):
            _positive(name, getattr(self, name), zero=True)
        _positive("weight_decay", self.weight_decay, zero=True)
        _fraction("beta1", self.beta1)
        _fraction("beta2", self.beta2)
        _positive("eps", self.eps)
        _positive("grad_clip", self.grad_clip, zero=True)
        _one_of("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        for name in self.report_to:
            _one_of("report_to", name, ("tensorboard", "wandb"))
        _positive("peak_tflops", self.peak_tflops, allow_none=True)
        if not self.launcher.split():
            raise ValueError("launcher: expected a command such as python or accelerate launch")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 16
    """Sequences per evaluation batch."""
    max_batches: Optional[int] = None
    """Evaluate at most this many validation batches (None: the whole split)."""
    lm_eval_tasks: list[str] = dataclasses.field(
        default_factory=lambda: ["pretrain_heldout_ppl", "pretrain_heldout_mc"])
    """lm-eval harness tasks to run: tasks in src/pretrain/lm_eval_tasks run offline."""
    lm_eval_limit: Optional[int] = 32
    """Documents per lm-eval task (None: all)."""
    lm_eval_num_fewshot: Optional[int] = None
    """Few-shot examples per lm-eval prompt (None: each task's own default)."""
    general_text: Optional[str] = None
    """Local general text (JSONL / .txt / Parquet file or folder) scored beside the held-out split,
    so continued pretraining shows forgetting next to the domain gain."""
    prompts: list[str] = dataclasses.field(
        default_factory=lambda: ["def find_max(numbers):", "The Python language is", "import os\n"]
    )
    """Prompts for the greedy generations written beside the metrics."""
    max_new_tokens: int = 48
    """Tokens generated per prompt."""

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        _positive("max_batches", self.max_batches, allow_none=True)
        _positive("lm_eval_limit", self.lm_eval_limit, allow_none=True)
        _positive("lm_eval_num_fewshot", self.lm_eval_num_fewshot, allow_none=True, zero=True)
        _positive("max_new_tokens", self.max_new_tokens)


SECTIONS: dict[str, type] = {
    "download": DownloadConfig,
    "clean": CleanConfig,
    "dedup": DedupConfig,
    "tokenizer": TokenizerConfig,
    "pack": PackConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file and reject unknown top-level sections."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (expected one of {sorted(SECTIONS)})")
    return data


def load_section(name: str, path: str | Path = "params.yaml") -> Any:
    """Load one section of ``path`` into its typed config."""
    return build(SECTIONS[name], read_params(path).get(name) or {}, where=f"{path}: {name}")


def load_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load and validate every section, and check the local files it names, before any work."""
    data = read_params(path)
    configs = {n: build(cls, data.get(n) or {}, where=f"{path}: {n}") for n, cls in SECTIONS.items()}
    check_paths(configs, where=str(path))
    return configs


def check_paths(configs: dict[str, Any], where: str) -> None:
    """Fail on a local input that params name but that does not exist (relative to the working
    directory, the repository when DVC runs a stage). Hub ids (``org/name``) are left alone."""
    download, tokenizer, model = configs["download"], configs["tokenizer"], configs["model"]
    general = configs["evaluate"].general_text
    if general and not os.path.exists(general):
        raise ConfigError(f"{where}: evaluate.general_text: {general!r} does not exist "
                          "(expected a local .jsonl, .txt or .parquet file or a folder)")
    entries = ([(f"download.sources[{i}].path", s) for i, s in enumerate(download.sources)]
               if download.source == "mix" else [("download.path", download)])
    named = []
    for key, source in entries:
        if source.source == "files" and not (os.path.exists(source.path)
                                             or glob.glob(source.path, recursive=True)):
            raise ConfigError(f"{where}: {key}: nothing matches {source.path!r} "
                              "(expected an existing file, folder or glob)")
        if source.source == "hf":
            named.append((key, source.path, "a local dataset folder"))
    named += [("tokenizer.path", tokenizer.path, "a local tokenizer folder or GGUF file"),
              ("model.base", model.base if model.init != "random" else None,
               "a local model folder or GGUF file")]
    for key, value, expected in named:
        if value and is_local_path(value) and not os.path.exists(value):
            raise ConfigError(f"{where}: {key}: {value!r} does not exist "
                              f"(expected {expected}, or a hub id like org/name)")


def is_local_path(value: str) -> bool:
    """Whether ``value`` names a local path rather than a hub id (``org/name``): it exists, is
    absolute, starts with ".", is a GGUF file or has more than one "/"."""
    return (os.path.exists(value) or os.path.isabs(value) or value.startswith(".")
            or value.endswith(".gguf") or value.count("/") > 1)


def build(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected one of {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        # PyYAML reads "3e-4" (no dot) as a string, and `dvc exp run -S` writes it that way.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this loader does not know is a programming error
        raise TypeError(f"{where}: unsupported field type {hint}")
    raise ConfigError(f"{where}: expected {hint.__name__}, got {_show(value)}")


def _show(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def _positive(name: str, value: Any, allow_none: bool = False, zero: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}: expected a value {bound}, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value!r}")


def _http_url(name: str, url: str) -> None:
    """Only http(s) is fetched: file:, ftp: and the like would read local files or other services."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: expected an http:// or https:// URL, got {url!r}")
