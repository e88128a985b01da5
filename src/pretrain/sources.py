"""Document sources: the built-in corpus, local files, and Hugging Face datasets.

Every source yields dicts with ``id``, ``text``, ``source`` and ``provenance`` (where the text
came from, precisely enough to find it again). Records that cannot be used are skipped and
counted in ``skipped`` by reason, with where the first few were; a file that cannot be read at
all raises DataError naming it.
"""

from __future__ import annotations

import ast
import glob
import importlib.metadata
import json
import os
import sys
import sysconfig
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from pretrain.config import DownloadConfig
from pretrain.errors import DataError
from pretrain.io import DocumentWriter, atomic_path

Document = dict[str, str]
TEST_DIRS = {"test", "tests", "idle_test"}
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".py"}
FILE_SUFFIXES = {".jsonl", ".json", ".parquet"} | TEXT_SUFFIXES


class Skipped(Counter):
    """Records skipped, counted by reason, with where the first ``EXAMPLES`` of each reason were
    (``examples``), so that a lost file can be found from the report."""

    EXAMPLES = 5

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, where: str) -> None:
        self[reason] += 1
        found = self.examples.setdefault(reason, [])
        if len(found) < self.EXAMPLES:
            found.append(where)


def iter_documents(cfg: DownloadConfig, skipped: Skipped) -> Iterator[Document]:
    """Yield the documents of the configured source, at most ``cfg.max_documents``."""
    docs = {"builtin": _builtin, "files": _files, "hf": _hf}[cfg.source](cfg, skipped)
    for n, doc in enumerate(docs):
        if cfg.max_documents is not None and n >= cfg.max_documents:
            return
        yield doc


# --- built-in corpus: real text that every machine with Python installed has ---------------


def _builtin(cfg: DownloadConfig, skipped: Skipped) -> Iterator[Document]:
    parts = {
        "stdlib": stdlib_sources,
        "pydoc_topics": pydoc_topics,
        "docstrings": stdlib_docstrings,
        "package_docs": package_descriptions,
    }
    for part in cfg.builtin_parts:
        yield from parts[part](cfg.include_tests, skipped)


def stdlib_files(include_tests: bool) -> list[tuple[str, Path]]:
    """The standard library's ``.py`` files as (relative posix path, path), sorted."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if "site-packages" in rel.parts or "dist-packages" in rel.parts:
            continue
        if not include_tests and TEST_DIRS & set(rel.parts[:-1]):
            continue
        found.append((rel.as_posix(), path))
    return sorted(found)


def _python_version() -> str:
    return "python " + ".".join(map(str, sys.version_info[:3]))


def stdlib_sources(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per standard-library source file (code)."""
    for rel, path in stdlib_files(include_tests):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped.add("stdlib_not_utf8", f"Lib/{rel}")
            continue
        yield {"id": f"stdlib/{rel}", "text": text, "source": "stdlib",
               "provenance": f"{_python_version()}: Lib/{rel}"}


def pydoc_topics(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per topic of the Python reference manual that ships as ``pydoc_data``."""
    try:
        from pydoc_data.topics import topics
    except ImportError:
        skipped.add("pydoc_topics_missing", "pydoc_data.topics")
        return
    for name in sorted(topics):
        yield {"id": f"pydoc_topics/{name}", "text": topics[name], "source": "pydoc_topics",
               "provenance": f"{_python_version()}: pydoc_data.topics[{name!r}]"}


def module_docstrings(source: str) -> list[str]:
    """The module, class and function docstrings of a Python source, in source order."""
    tree = ast.parse(source)
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    nodes.sort(key=lambda n: getattr(n, "lineno", 0))
    return [d for n in nodes if (d := ast.get_docstring(n, clean=True))]


def stdlib_docstrings(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per standard-library module: its docstrings joined by blank lines."""
    for rel, path in stdlib_files(include_tests):
        try:
            docs = module_docstrings(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, SyntaxError, ValueError):
            skipped.add("docstrings_unparsable", f"Lib/{rel}")
            continue
        if docs:
            yield {"id": f"docstrings/{rel}", "text": "\n\n".join(docs), "source": "docstrings",
                   "provenance": f"{_python_version()}: docstrings of Lib/{rel}"}


def package_descriptions(include_tests: bool, skipped: Skipped) -> Iterator[Document]:
    """One document per installed distribution: its long description (usually its README)."""
    seen = set()
    dists = sorted(importlib.metadata.distributions(),
                   key=lambda d: (d.metadata["Name"] or "").lower())
    for dist in dists:
        name, version = dist.metadata["Name"], dist.version
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        text = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if not isinstance(text, str) or not text.strip():
            skipped.add("package_docs_empty", f"{name} {version}")
            continue
        yield {"id": f"package_docs/{name}", "text": text, "source": "package_docs",
               "provenance": f"{name} {version}: package metadata description"}


# --- local files ----------------------------------------------------------------------------


def resolve_files(pattern: str) -> list[Path]:
    """Files named by a path, a folder (searched recursively) or a glob, sorted."""
    path = Path(pattern)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()]
    if not files:
        raise DataError(f"download.path: no input files match {pattern!r}")
    return sorted(files)


def _files(cfg: DownloadConfig, skipped: Skipped) -> Iterator[Document]:
    readers = {".jsonl": _jsonl, ".json": _jsonl, ".parquet": _parquet}
    for path in resolve_files(cfg.path or ""):
        suffix = path.suffix.lower()
        try:
            if suffix in readers:
                yield from readers[suffix](path, cfg.text_field, skipped)
            elif suffix in TEXT_SUFFIXES:
                yield from _text(path, skipped)
            else:
                skipped.add("unsupported_file_type", _name(path))
        except OSError as exc:  # permission denied, a device error: the file cannot be read at all
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _record(text: Any, doc_id: str, provenance: str, skipped: Skipped,
            source: str = "files") -> Iterator[Document]:
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


def _name(path: Path) -> str:
    """A path relative to the working directory (the repository) when inside it, so ids do not
    depend on whether download.path was written relative or absolute."""
    rel = os.path.relpath(path.resolve())
    return Path(rel).as_posix() if not rel.startswith("..") else path.resolve().as_posix()


def _jsonl(path: Path, field: str, skipped: Skipped) -> Iterator[Document]:
    name, records = _name(path), 0
    for lineno, record, reason in _json_records(path):
        records += 1
        where = f"{name}:{lineno}"
        if reason:
            skipped.add(reason, where)
        elif not isinstance(record, dict):
            skipped.add("json_record_not_an_object", where)
        else:
            yield from _record(record.get(field), where, where, skipped)
    if not records:
        skipped.add("empty_file", name)


def _json_records(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, record, None)`` per non-blank JSON line, ``(line, None, reason)`` for one that
    cannot be used; a JSON array file gives its elements, numbered from 1."""
    with open(path, "rb") as handle:
        head = handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
        handle.seek(0)
        if head.startswith(b"["):  # a JSON array of records rather than JSON lines
            yield from ((n, record, None) for n, record in enumerate(_json_array(path, handle), 1))
            return
        for lineno, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig")  # utf-8-sig: drops a byte-order mark
            except UnicodeDecodeError:  # one bad line costs that line, not the file
                yield lineno, None, "not_utf8"
                continue
            if line.strip():
                yield (lineno, *_parse_json(line))


def _parse_json(line: str) -> tuple[Any, str | None]:
    try:
        return json.loads(line), None  # CRLF line endings: the \r is whitespace to JSON
    except json.JSONDecodeError:
        return None, "malformed_json_line"


def _json_array(path: Path, handle) -> list:
    try:
        return json.loads(handle.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None


def _parquet(path: Path, field: str, skipped: Skipped) -> Iterator[Document]:
    name = _name(path)
    if path.stat().st_size == 0:
        skipped.add("empty_file", name)
        return
    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: cannot read Parquet ({_one_line(exc)})") from None
    if field not in reader.schema_arrow.names:
        raise DataError(f"{path}: no column {field!r} (columns: {reader.schema_arrow.names}); "
                        "set download.text_field")
    if reader.metadata.num_rows == 0:
        skipped.add("empty_file", name)
        return
    row = 0
    try:
        for batch in reader.iter_batches(columns=[field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                yield from _record(text, f"{name}:{row}", f"{name}#row={row}", skipped)
                row += 1
    except (pa.ArrowException, OSError) as exc:  # a damaged page behind a readable footer
        raise DataError(f"{path}: cannot read Parquet ({_one_line(exc)})") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())  # pyarrow's messages span lines


def _text(path: Path, skipped: Skipped) -> Iterator[Document]:
    raw, name = path.read_bytes(), _name(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        skipped.add("not_utf8", name)
        return
    if not text.strip():
        skipped.add("empty_file", name)
        return
    yield from _record(text, name, name, skipped)


# --- Hugging Face datasets -------------------------------------------------------------------


def _hf(cfg: DownloadConfig, skipped: Skipped) -> Iterator[Document]:
    import datasets

    path = Path(cfg.path or "")
    try:
        if any((path / f).exists() for f in ("state.json", "dataset_dict.json")):
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                data = data[cfg.hf_split]
        else:
            data = datasets.load_dataset(cfg.path, cfg.hf_config, split=cfg.hf_split, streaming=True)
    except Exception as exc:  # datasets raises many types: offline, missing, bad config
        raise DataError(f"download.path: cannot load dataset {cfg.path!r}: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    for row, record in enumerate(data):
        yield from _record(record.get(cfg.text_field), f"{cfg.path}:{cfg.hf_split}:{row}",
                           f"{cfg.path}#{cfg.hf_split}[{row}]", skipped, source="hf")


def download(cfg: DownloadConfig, out_dir: Path) -> dict[str, Any]:
    """Write the source's documents to ``out_dir/documents.parquet``; return the report."""
    skipped = Skipped()
    by_source: Counter = Counter()
    chars = 0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with DocumentWriter(tmp / "documents.parquet") as writer:
            for doc in tqdm(iter_documents(cfg, skipped), desc="download", unit="doc"):
                writer.write(doc)
                by_source[doc["source"]] += 1
                chars += len(doc["text"])
        if writer.count == 0:
            raise DataError(f"download: the {cfg.source} source yielded no documents"
                            + (f" (skipped: {dict(skipped)})" if skipped else ""))
    return {"documents": writer.count, "chars": chars, "by_source": dict(sorted(by_source.items())),
            "skipped": dict(sorted(skipped.items())),
            "skipped_examples": dict(sorted(skipped.examples.items()))}
