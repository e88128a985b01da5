"""The download stage's read tasks: which inputs each reads, and the task that reads them.

A source of local files becomes one task per input file (datatrove's readers: a task per file),
with files smaller than ``download.task_mb`` grouped, in order, up to that much work (a file's
size times its reader's cost per byte, ``READ_COST``: a PDF's is ~50 times a JSON line's), and an
uncompressed JSON lines file larger than it cut into byte ranges of about that size, each
starting at a line start (``line_tasks``: a first, cheap pass of tasks finds the line starts and
counts the lines of each range, so that a record's provenance ``file:line`` is the same as a
read of the whole file gives). A compressed file, a WARC, a PDF or a Parquet file is one task:
a compressed stream can only be read from its start. Any other source (the built-in corpus,
URLs, a Hugging Face dataset) is one task that reads it as a stream, up to the documents the
stage needs of it (``stop``).

The plan depends only on the inputs (their order and sizes) and the params, never on the
executor or the number of workers, so each task's output, and the stage's, is the same bytes
on any of them. Each task writes its documents as shards of ``download.shard_mb`` MB of text
into a folder of its own in the stage's work folder (``part-00003/part-00000.parquet``, ...),
with the 64-bit BLAKE2b digest of each document's id beside them (``part-00003.ids.npy``, 8
bytes a document, for the stage's check that ids are unique: pretrain.sources.assemble), and
returns what it read and skipped; its completion marker (pretrain.executor.shards) lets a
rerun after a kill skip it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import shutil
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pretrain.config.sources import DownloadConfig, SourceConfig
from pretrain.errors import DataError
from pretrain.executor.shards import one_line
from pretrain.io import ShardedDocumentWriter, atomic_path, shard_name
from pretrain.sources.files import is_json_lines, read_cost, read_file, resolve_files
from pretrain.sources.jsonl import read_jsonl_range
from pretrain.sources.records import Document, Skipped, display_name
from pretrain.sources.streams import SOURCES

COUNT_BLOCK = 8 << 20  # bytes read at a time when counting lines


@dataclasses.dataclass(frozen=True)
class ReadTask:
    """One read task: a group of whole ``paths``; or the byte range ``[start, end)`` of one
    uncompressed JSON lines file, whose first line is ``first_line``; or (``stream``) the
    source of entry ``entry`` read as a stream, ``stop`` documents at most (None: all).
    ``entry``: the source's place in ``download.sources`` (0 for a single source). ``cwd``: the
    stage's working folder, which provenance is relative to, wherever the task runs."""

    index: int
    entry: int
    work: Path
    cwd: str
    paths: tuple[Path, ...] = ()
    start: int = 0
    end: int | None = None
    first_line: int = 1
    stream: bool = False
    stop: int | None = None
    watched: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    def output(self, suffix: str) -> Path:
        return self.work / f"{self.name}{suffix}"

    @property
    def folder(self) -> Path:
        """Where the task writes its shards."""
        return self.work / self.name

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files read, absolute (stamped wherever the task runs); a stream's local files."""
        return tuple(Path(self.cwd) / path for path in self.paths) + self.watched

    def describe(self) -> str:
        """What an error names: the file (and range), the files, or the source."""
        with working_directory(self.cwd):
            if self.end is not None:
                return f"{display_name(self.paths[0])} (bytes {self.start}-{self.end})"
            if self.paths:
                names = [display_name(p) for p in self.paths]
                return names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]} ({len(names)} files)"
        return "the source" if self.entry == 0 else f"download.sources[{self.entry}]"


@dataclasses.dataclass(frozen=True)
class LineTask:
    """The line count of part ``[start, end)`` (nominal offsets, moved to line starts) of a
    large JSON lines file: the first pass of ``line_tasks``."""

    index: int
    path: Path
    start: int
    end: int
    work: Path

    def output(self, suffix: str) -> Path:
        return self.work / f"lines-{self.index:05d}{suffix}"

    @property
    def inputs(self) -> tuple[Path, ...]:
        return (self.path,)

    def describe(self) -> str:
        return f"{self.path} (bytes {self.start}-{self.end})"


def entries(cfg: DownloadConfig) -> list[tuple[SourceConfig, str | None]]:
    """The sources of ``cfg``: itself, or each entry of a mix, with its label (None: single)."""
    return [(src, src.name) for src in cfg.sources] if cfg.source == "mix" else [(cfg, None)]


def plan_files(src: SourceConfig, key: str, task_bytes: int) -> list[tuple]:
    """The inputs of a files source as task specs, in order: ``("files", paths)`` for a group of
    whole files up to ``task_bytes`` of work (their sizes times their reader's ``READ_COST``),
    ``("range", path)`` for a JSON lines file of more than ``task_bytes``, to be cut into ranges
    (``line_tasks``)."""
    specs: list[tuple] = []
    group: list[Path] = []
    size = 0
    for path in resolve_files(src.path or "", key):
        length = path.stat().st_size if path.exists() else 0
        if length > task_bytes and path.is_file() and is_json_lines(path):
            if group:
                specs.append(("files", tuple(group)))
                group, size = [], 0
            specs.append(("range", path))
            continue
        group.append(path)
        size += length * read_cost(path)
        if size >= task_bytes:
            specs.append(("files", tuple(group)))
            group, size = [], 0
    if group:
        specs.append(("files", tuple(group)))
    return specs


def line_tasks(path: Path, task_bytes: int, work: Path, first_index: int) -> list[LineTask]:
    """The line-count tasks of one large file: nominal ranges of ``task_bytes``."""
    path = Path(os.path.abspath(path))
    size = path.stat().st_size
    starts = list(range(0, size, task_bytes))
    return [LineTask(first_index + i, path, start, min(start + task_bytes, size), work)
            for i, start in enumerate(starts)]


def count_lines(task: LineTask) -> dict[str, int]:
    """The line start at or after each end of the task's nominal range (the range's own start
    when it is 0) and the newlines between them: ``{"start", "end", "lines"}``."""
    start, end = line_start(task.path, task.start), line_start(task.path, task.end)
    lines = 0
    with open(task.path, "rb") as handle:
        handle.seek(start)
        left = end - start
        while left > 0 and (block := handle.read(min(COUNT_BLOCK, left))):
            lines += block.count(b"\n")
            left -= len(block)
    return {"start": start, "end": end, "lines": lines}


def line_start(path: Path, offset: int) -> int:
    """The first line start at or after ``offset``: the byte after the first newline at or
    after ``offset - 1`` (0 for 0; the file's size when there is none)."""
    if offset == 0:
        return 0
    with open(path, "rb") as handle:
        handle.seek(offset - 1)
        position = offset - 1
        while block := handle.read(1 << 16):
            found = block.find(b"\n")
            if found >= 0:
                return position + found + 1
            position += len(block)
    return position


def ranges_of(counts: list[dict[str, int]]) -> list[tuple[int, int, int]]:
    """``(start, end, first_line)`` of each non-empty range, from ``count_lines`` results in
    order (a line longer than a range leaves the ranges it spans empty)."""
    found, line = [], 1
    for count in counts:
        if count["end"] > count["start"]:
            found.append((count["start"], count["end"], line))
        line += count["lines"]
    return found


# --- the task ------------------------------------------------------------------------------------


@contextlib.contextmanager
def working_directory(folder: str) -> Iterator[None]:
    """Run in ``folder`` (a Ray worker may start elsewhere), then go back."""
    here = os.getcwd()
    if folder == here or not folder:
        yield
        return
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def read_task(cfg: DownloadConfig, context: Any, task: ReadTask) -> dict[str, Any]:
    """Read what ``task`` names into its folder (module docstring); return, as JSON values, per
    shard written its documents, characters, sources and kinds (``shards``), the inputs read
    (``input_files``, ``input_bytes``), the tally of what was skipped (Skipped.state) and, for
    a built-in source, its manifest check (``manifest``: report and warning).
    ``context``: pretrain.sources.download.Context."""
    src, label = entries(cfg)[task.entry]
    skipped, seen = Skipped(), Counter()
    checks: dict = {}
    shutil.rmtree(task.folder, ignore_errors=True)  # a killed run's part
    with working_directory(task.cwd):
        if task.stream:
            ctx = context._replace(checks=checks)
            docs = itertools.islice(SOURCES[src.source](src, ctx, skipped, label), task.stop)
        elif task.end is not None:
            docs = _named(task.paths[0], read_jsonl_range(
                task.paths[0], task.start, task.end, task.first_line, src, skipped, label or "files", seen))
        else:
            docs = (doc for path in task.paths
                    for doc in _named(path, read_file(path, src, skipped, label or "files")))
        shards, digests = _write(docs, task.folder, round(cfg.shard_mb * 1e6))
    with atomic_path(task.output(".ids.npy")) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.frombuffer(digests, dtype=np.uint64))
    manifest = {name: {"report": check.report(), "warning": check.warning()}
                for name, check in sorted(checks.items())}
    # A file read in ranges counts once, with its first range; its bytes add up over them.
    return {"shards": shards, "input_files": len(task.paths) if task.end is None else int(task.start == 0),
            "input_bytes": sum(p.stat().st_size for p in task.paths) if task.end is None
            else task.end - task.start,
            "skipped": skipped.state(), **({"manifest": manifest} if manifest else {}),
            **({"records": seen["records"]} if task.end is not None else {})}


def _named(path: Path, docs: Iterator[Document]) -> Iterator[Document]:
    """``docs`` of the file ``path``; an error a reader did not expect (its own DataErrors name
    the file already) is raised as a DataError naming the file, so that a group's task names
    which of its files failed."""
    try:
        yield from docs
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 (any library's error, for one line naming the file)
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {one_line(exc)})") from exc


def _write(docs: Iterator[Document], folder: Path, shard_bytes: int) -> tuple[list[dict], array]:
    """Write ``docs`` as shards into ``folder``; per shard its counts, and each id's digest
    (8 bytes a document)."""
    shards: list[dict] = []
    digests = array("Q")
    with ShardedDocumentWriter(folder, shard_bytes) as writer:
        for doc in docs:
            writer.write(doc)
            if len(shards) < writer.shards:
                shards.append(new_totals())
            count_document(shards[-1], doc)
            digests.append(id_digest(doc["id"]))
    for shard in shards:
        shard["by_source"], shard["by_kind"] = dict(shard["by_source"]), dict(shard["by_kind"])
    return shards, digests


def new_totals() -> dict[str, Any]:
    """Counts of a set of documents (a shard, a window): documents, characters, by source and
    by kind."""
    return {"documents": 0, "chars": 0, "by_source": Counter(), "by_kind": Counter()}


def count_document(totals: dict[str, Any], doc: Document) -> None:
    """Add one document to ``totals`` (``new_totals``)."""
    totals["documents"] += 1
    totals["chars"] += len(doc["text"])
    totals["by_source"][doc["source"]] += 1
    totals["by_kind"][doc["kind"]] += 1


def id_digest(doc_id: str) -> int:
    """The 64-bit BLAKE2b digest of an id, as an unsigned integer."""
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "little")


def task_shard(task: ReadTask, n: int) -> Path:
    """Shard ``n`` of a task's output."""
    return task.folder / shard_name(n)


