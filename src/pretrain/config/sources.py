"""The `download` section of params.yaml: where documents come from."""

from __future__ import annotations

import codecs
import dataclasses
import re
from typing import Optional

from pretrain.config import fraction, http_url, one_of, positive

SOURCE_KINDS = ("builtin", "files", "hf", "urls")
CODE_EXTENSIONS = [".py", ".pyi", ".pyx", ".c", ".h", ".cc", ".cpp", ".hpp", ".cu", ".java", ".kt",
                   ".scala", ".js", ".ts", ".go", ".rs", ".rb", ".php", ".cs", ".swift", ".sh",
                   ".lua", ".pl", ".r", ".jl", ".sql"]
# The languages of CODE_EXTENSIONS as The Stack's ``lang`` field and GitHub's linguist name them.
CODE_VALUES = ["python", "cython", "c", "c++", "cuda", "java", "kotlin", "scala", "javascript",
               "typescript", "go", "rust", "ruby", "php", "c#", "swift", "shell", "lua", "perl",
               "r", "julia", "sql"]
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
    id_field: Optional[str] = "id"
    """Field/column of those records whose value becomes the document id when a record has one
    (else its file:line). None: always file:line."""
    metadata_fields: Optional[list[str]] = None
    """Fields/columns of those records kept as the document's metadata. None: every scalar one
    (text, number, boolean, date/time, null; not bytes, lists, structs or maps); []: none."""
    encoding: Optional[str] = None
    """Encoding of text, HTML and CSV files and URL bodies that are not UTF-8 (None: detected)."""
    kind_field: Optional[str] = None
    """Field/column of those records that says what a record is (``lang``, ``path``, ``ext``,
    ``kind``): code when its value is one of code_values, HTML when one of html_values, else by
    its extension (``x.py``, ``py``) as a file's. None: by the record's id, as a file's name."""
    code_values: list[str] = dataclasses.field(default_factory=lambda: list(CODE_VALUES))
    """Values of kind_field that make a record code, in any case (The Stack: ``Python``)."""
    html_values: list[str] = dataclasses.field(default_factory=lambda: ["html"])
    """Values of kind_field that make a record HTML, for the clean stage to extract its text."""
    code_extensions: list[str] = dataclasses.field(default_factory=lambda: list(CODE_EXTENSIONS))
    """Files, ids and kind_field paths with these extensions are code (the rest prose or HTML)."""
    hf_config: Optional[str] = None
    """hf: dataset configuration name."""
    hf_split: str = "train"
    """hf: split to read."""
    builtin_parts: list[str] = dataclasses.field(default_factory=lambda: list(BUILTIN_PARTS))
    """builtin: which parts of the installed Python to collect (see pretrain.sources)."""
    include_tests: bool = False
    """builtin: include the standard library's own test suites (19 MB of mostly test code)."""
    fallback_encoding: Optional[str] = "cp1252"
    """files: encoding of the lines of a mostly-UTF-8 text file that are not UTF-8 (None: drop them)."""
    max_bad_line_share: float = 0.1
    """files: above this share of non-UTF-8 lines a text file is one encoding, told whole."""
    split_above_chars: Optional[int] = 100_000
    """files: a .txt/.md/.rst file longer than this many characters is cut into documents (None: never)."""
    split_target_chars: int = 4_000
    """files: most characters of whole paragraphs grouped into one document of a cut file."""
    split_max_chars: int = 40_000
    """files: a paragraph (or regex section) longer than this is cut at line ends."""
    split_regex: Optional[str] = None
    """files: cut at each line this regex matches (e.g. "^CHAPTER [IVXLC]+") instead of paragraphs."""
    skip: int = 0
    """The first this many documents of the source are not used (counted as skipped_by_config)."""
    limit: Optional[int] = None
    """Most documents read from the source after skip (None: all); reading stops there."""

    def __post_init__(self) -> None:
        one_of("source", self.source, SOURCE_KINDS + (("mix",) if self._may_mix else ()))
        if self.id_field is not None and not self.id_field.strip():
            raise ValueError("id_field: expected a field name, or null for file:line ids")
        if self.id_field == self.text_field:
            raise ValueError(f"id_field: {self.id_field!r} is also the text_field")
        for i, name in enumerate(self.metadata_fields or []):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"metadata_fields[{i}]: expected a field name, got {name!r}")
            if name in (self.text_field, self.id_field):
                raise ValueError(f"metadata_fields[{i}]: {name!r} is already the document's "
                                 f"{'text' if name == self.text_field else 'id'}")
            if name in self.metadata_fields[:i]:
                raise ValueError(f"metadata_fields[{i}]: {name!r} is listed twice")
        self._check_kinds()
        if self.source in ("files", "hf") and not self.path:
            raise ValueError(f"path: required when source is {self.source!r}")
        if self.source == "urls" and not self.urls:
            raise ValueError("urls: required when source is 'urls' (a list of http(s) addresses)")
        seen: set[str] = set()
        for i, url in enumerate(self.urls):
            http_url(f"urls[{i}]", url)
            if url in seen:
                raise ValueError(f"urls[{i}]: {url!r} is listed twice")
            seen.add(url)
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(f"encoding: unknown encoding {self.encoding!r}") from None
        for part in self.builtin_parts:
            one_of("builtin_parts", part, BUILTIN_PARTS)
        self._check_files_options()

    def _check_files_options(self) -> None:
        if self.fallback_encoding is not None:
            try:
                codecs.lookup(self.fallback_encoding)
            except LookupError:
                raise ValueError(f"fallback_encoding: unknown encoding {self.fallback_encoding!r}") from None
        fraction("max_bad_line_share", self.max_bad_line_share)
        positive("split_above_chars", self.split_above_chars, allow_none=True, zero=True)
        positive("split_target_chars", self.split_target_chars)
        positive("split_max_chars", self.split_max_chars)
        if self.split_max_chars < self.split_target_chars:
            raise ValueError(f"split_max_chars: {self.split_max_chars} is below split_target_chars "
                             f"{self.split_target_chars}")
        if self.split_regex is not None:
            try:
                re.compile(self.split_regex)
            except re.error as exc:
                raise ValueError(f"split_regex: not a regular expression ({exc})") from None
        positive("skip", self.skip, zero=True)
        positive("limit", self.limit, allow_none=True)

    def _check_kinds(self) -> None:
        if self.kind_field is not None:
            if not isinstance(self.kind_field, str) or not self.kind_field.strip():
                raise ValueError("kind_field: expected a field name, or null (kind by the id)")
            if self.kind_field == self.text_field:
                raise ValueError(f"kind_field: {self.kind_field!r} is also the text_field")
        for name in ("code_values", "html_values"):
            for i, value in enumerate(getattr(self, name)):
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"{name}[{i}]: expected a value of kind_field, got {value!r}")
        both = {v.lower() for v in self.code_values} & {v.lower() for v in self.html_values}
        if both:
            raise ValueError(f"code_values, html_values: {sorted(both)[0]!r} is in both")
        for ext in self.code_extensions:
            if not isinstance(ext, str) or not ext.startswith(".") or ext != ext.lower() or len(ext) < 2:
                raise ValueError(f"code_extensions: expected lower-case '.ext', got {ext!r}")


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
        if "/" in self.name:  # ids become name/id: a "/" in a name could make two sources' ids meet
            raise ValueError(f"name: {self.name!r} contains '/' (it prefixes the source's ids)")
        positive("weight", self.weight)


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
        positive("timeout_s", self.timeout_s)
        positive("retries", self.retries, zero=True)
        positive("backoff_s", self.backoff_s, zero=True)
        positive("max_bytes", self.max_bytes)
        positive("workers", self.workers)


@dataclasses.dataclass(frozen=True)
class DownloadConfig(SourceConfig):
    max_documents: Optional[int] = None
    """Stop after this many documents (None: all); with source mix, the total the weights share."""
    sources: list[MixSourceConfig] = dataclasses.field(default_factory=list)
    """source mix: several sources, each with a name and a weight (docs/data.md, "Several sources mixed")."""
    seed: int = 0
    """source mix: seed of the order in which the sources' documents are interleaved."""
    fetch: FetchConfig = dataclasses.field(default_factory=FetchConfig)
    """How URLs are fetched (source urls, or a urls entry of sources)."""
    shard_mb: float = 8.0
    """Megabytes (10^6 bytes) of UTF-8 text per shard of data/raw; clean, dedup and pack run
    one task per shard (docs/scale.md: 64-256 for a corpus of many GB)."""

    task_mb: float = 16.0
    """Megabytes (10^6 bytes) of input files per read task of the download stage: files smaller
    than this are grouped, in order, up to it; an uncompressed JSON lines file larger than this
    is read in byte ranges of it, cut at line ends (docs/scale.md). A shard of data/raw holds one
    task's documents at most: for shards of ``shard_mb``, task_mb at least as large."""

    _may_mix = True

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("max_documents", self.max_documents, allow_none=True)
        positive("shard_mb", self.shard_mb)
        positive("task_mb", self.task_mb)
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
