"""The download stage's last pass: from the read tasks' shards to data/raw.

The tasks (pretrain.sources.tasks) wrote every document they read, in input order. This pass,
in the stage's process, takes each source's window (its first ``skip`` documents counted as
``skipped_by_config``, then at most ``limit``, and at most its share: ``max_documents``, or its
mix count), makes its ids unique, and writes the output:

- one source: each task shard inside the window is put in place as it is (a hard link, no
  copy); only a shard cut by the window's ends, or holding an id made unique, is rewritten;
- a mix: the windows of the sources are interleaved in the seeded order of
  pretrain.sources.download.mix_counts, with each id prefixed by its source's name: a copy of
  the documents, one at a time (a second pass, serial, because the interleave's order runs across
  every source; reading stays parallel).

Ids are made unique as one reader reading the window in order would (pretrain.sources.streams:
``unique_ids``): a document whose id an earlier one ends up with gets ``{provenance}/{id}``
(then ``{provenance}#2/{id}``, ...). From the tasks' 64-bit id digests, sorted once (32 bytes a
document in all, not the 83 of a set of ids): only documents whose digest another one has are
looked at, by their ids' text, so a collision of digests changes nothing.
"""

from __future__ import annotations

import bisect
import heapq
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

from pretrain.io import DocumentWriter, iter_batches, place, shard_name
from pretrain.sources.records import Skipped, display_name
from pretrain.sources.tasks import ReadTask, count_document, id_digest, new_totals, task_shard


class EntryDocs:
    """The documents the read tasks of one source wrote, in input order: a list of shards,
    each with its counts, and a document's place in the source (from 0)."""

    def __init__(self, tasks: list[ReadTask], results: list[dict]):
        self.tasks = tasks
        self.shards = [(task_shard(task, n), shard) for task, result in zip(tasks, results)
                       for n, shard in enumerate(result["shards"])]
        self.starts = [0]
        for _, shard in self.shards:
            self.starts.append(self.starts[-1] + shard["documents"])
        self.total = self.starts[-1]
        self._columns: tuple[Path, dict] | None = None
        self._ids: dict[int, str] = {}

    def pieces(self, start: int, stop: int) -> Iterator[tuple[Path, int, int, int, dict]]:
        """``(shard, first, last, place of first, counts)`` of each shard that holds documents
        of ``[start, stop)``: rows ``[first, last)`` of the shard."""
        for (path, shard), begin in zip(self.shards, self.starts):
            first, last = max(start - begin, 0), min(stop - begin, shard["documents"])
            if first < last:
                yield path, first, last, begin + first, shard

    def digests(self, start: int, stop: int) -> np.ndarray:
        """The id digests of ``[start, stop)`` (uint64, one per document)."""
        parts, begin = [], 0
        for task in self.tasks:
            ids = np.load(task.output(".ids.npy"), mmap_mode="r")
            first, last = max(start - begin, 0), min(stop - begin, len(ids))
            if first < last:
                parts.append(np.asarray(ids[first:last]))
            begin += len(ids)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)

    def prefetch_ids(self, positions: np.ndarray) -> None:
        """Read the ids at ``positions`` (sorted), one shard after another, for ``field`` to
        answer without going back to a shard: the documents whose digest another one has, when
        ids repeat across many files (each numbering its records from 0), would otherwise take
        turns reading the shards of the first and the later ones."""
        for (path, _), begin, end in zip(self.shards, self.starts, self.starts[1:]):
            rows = positions[(positions >= begin) & (positions < end)] - begin
            if len(rows):
                ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
                self._ids.update((begin + int(r), ids[r]) for r in rows)

    def field(self, position: int, name: str) -> str:
        """Field ``name`` (id or provenance) of the document at ``position``; the columns of
        the last shard asked are kept."""
        if name == "id" and position in self._ids:
            return self._ids[position]
        n = bisect.bisect_right(self.starts, position) - 1
        path = self.shards[n][0]
        if self._columns is None or self._columns[0] != path:
            table = pq.read_table(path, columns=["id", "provenance"])
            self._columns = (path, {c: table.column(c).to_pylist() for c in ("id", "provenance")})
        return self._columns[1][name][position - self.starts[n]]

    def documents(self, start: int, stop: int) -> Iterator[dict]:
        """The documents of ``[start, stop)`` in order, read in batches."""
        for path, first, last, _, _ in self.pieces(start, stop):
            row = 0
            for batch in iter_batches(path):
                for doc in batch.to_pylist():
                    if first <= row < last:
                        yield doc
                    row += 1
                if row >= last:
                    break


def window(total: int, skip: int, limit: int | None, share: int | None) -> tuple[int, int]:
    """The documents ``[start, stop)`` of a source used: after ``skip``, at most ``limit``,
    at most ``share``."""
    start = min(skip, total)
    stop = total
    for cap in (limit, share):
        if cap is not None:
            stop = min(stop, start + cap)
    return start, stop


def count_skipped(docs: EntryDocs, start: int, skipped: Skipped) -> None:
    """Count the first ``start`` documents as ``skipped_by_config`` (the first few by name)."""
    for position in range(start):
        if len(skipped.examples.get("skipped_by_config", [])) < Skipped.EXAMPLES:
            skipped.add("skipped_by_config", docs.field(position, "provenance"))
        else:
            skipped["skipped_by_config"] += start - position
            return


def count_over_cap(docs: EntryDocs, stop: int, unread: list[ReadTask], skipped: Skipped,
                   reason: str) -> None:
    """Count what a capped source's waves read past its window, ``reason`` in records (the first
    few by place), and the inputs of its tasks that never ran in files and bytes as
    ``not_read_over_cap`` (a file counts there when none of its bytes were read; the unread
    ranges of a file read in part count in bytes)."""
    for position in range(stop, docs.total):
        if len(skipped.examples.get(reason, [])) < Skipped.EXAMPLES:
            skipped.add(reason, docs.field(position, "provenance"))
        else:
            skipped[reason] += docs.total - position
            break
    whole_files: set[Path] = set()
    for task in unread:
        if task.end is None:
            for path, absolute in zip(task.paths, task.inputs):
                skipped.add_file("not_read_over_cap", display_name(path), absolute.stat().st_size)
        elif task.start == 0:  # none of the file read: its later ranges are unread too
            whole_files.add(task.paths[0])
            skipped.add_file("not_read_over_cap", display_name(task.paths[0]), task.inputs[0].stat().st_size)
        elif task.paths[0] not in whole_files:  # read in part: the rest in bytes
            skipped.files["not_read_over_cap"] += 0
            skipped.file_bytes["not_read_over_cap"] += task.end - task.start


def shared_digests(digests: np.ndarray) -> np.ndarray:
    """The places (sorted) of the documents whose digest another document has."""
    order = np.argsort(digests, kind="stable")
    ranked = digests[order]
    same = ranked[1:] == ranked[:-1]
    shared = np.zeros(len(digests), dtype=bool)
    shared[order[1:][same]] = shared[order[:-1][same]] = True
    return np.flatnonzero(shared)


class _Ids:
    """The ids of a window as its documents end up with them, asked in place order (see
    ``made_unique``): the digests sorted once (a stable sort: each run of equal digests in place
    order), each document's first holder of its digest, the ids made up so far."""

    def __init__(self, digests: np.ndarray, original: Callable[[int], str]):
        self.order = np.argsort(digests, kind="stable")
        self.ranked = digests[self.order]
        new_run = np.r_[True, self.ranked[1:] != self.ranked[:-1]][:len(digests)]  # none: none
        starts, runs = np.flatnonzero(new_run), np.cumsum(new_run) - 1
        self.first = np.empty(len(digests), dtype=np.int64)
        self.first[self.order] = self.order[starts[runs]]
        self.original = original
        self.final: dict[int, str] = {}  # document -> its made-up id
        self.made: set[str] = set()

    def holders(self, digest: int) -> list[int]:
        """The documents whose original id has ``digest``, in place order."""
        d = np.uint64(digest)
        left = int(np.searchsorted(self.ranked, d, "left"))
        if left == len(self.ranked) or self.ranked[left] != d:
            return []  # most made-up ids: one search, not two
        return self.order[left:int(np.searchsorted(self.ranked, d, "right"))].tolist()

    def taken(self, doc_id: str, before: int, holders: list[int]) -> bool:
        """Whether a document before ``before`` ends up with ``doc_id``, whose digest's
        ``holders`` are given."""
        if doc_id in self.made:
            return True
        for q in holders:
            if q >= before:
                return False
            if q not in self.final and self.original(q) == doc_id:
                return True
        return False

    def kept_by_first(self, position: int) -> bool:
        """Whether the first holder of document ``position``'s digest, before it, kept that
        very id: the answer for nearly every repeated id, without a search."""
        q = int(self.first[position])
        return q < position and q not in self.final and self.original(q) == self.original(position)


def made_unique(digests: np.ndarray, original: Callable[[int], str],
                provenance: Callable[[int], str]) -> dict[int, str]:
    """The new ids of the documents (by place in ``digests``) whose id an earlier document ends
    up with (module docstring); ``original(i)``, ``provenance(i)``: document i's id and
    provenance, asked only of documents whose digest another one has (``shared_digests``) or
    of an id made up here. Memory: 32 bytes a document (the digests, their sorted copy and order,
    each one's first holder; a set of the ids took 83). Time: 11 us a repeated id against 4.5
    for one reader's set (40,000 ids each repeated 40 times, one core of a 2-core Xeon with
    AVX-512 BF16, 2026-12-07); run once per source's window, in the stage's process."""
    ids = _Ids(digests, original)
    later = ids.order[1:][ids.ranked[1:] == ids.ranked[:-1]]  # a digest an earlier document has
    heap = np.sort(later).tolist()
    done: set[int] = set()
    while heap:
        position = heapq.heappop(heap)
        if position in done:
            continue
        done.add(position)
        doc_id = original(position)
        if not (ids.kept_by_first(position) or
                ids.taken(doc_id, position, ids.holders(int(digests[position])))):
            continue
        n, new = 2, f"{provenance(position)}/{doc_id}"
        while ids.taken(new, position, holders := ids.holders(id_digest(new))):  # could, just, be real
            n += 1
            new = f"{provenance(position)}#{n - 1}/{doc_id}"
        ids.final[position] = new
        ids.made.add(new)
        for q in holders:  # a later document with the made-up id gives way
            if q > position:
                heapq.heappush(heap, q)
    return ids.final


def write_single(docs: EntryDocs, start: int, stop: int, new_ids: dict[int, str],
                 out: Path) -> tuple[int, dict]:
    """Put the window's shards into ``out`` as ``part-00000.parquet``, ...; return the shard
    count and the window's counts (documents, chars, by_source, by_kind)."""
    totals = new_totals()
    shards = 0
    for path, first, last, begin, counts in docs.pieces(start, stop):
        target = out / shard_name(shards)
        changed = any(begin - start + row - first in new_ids for row in range(first, last))
        if first == 0 and last == counts["documents"] and not changed:
            place(path, target)
            _add(totals, counts)
        else:
            with DocumentWriter(target) as writer:
                for i, doc in enumerate(docs.documents(begin, begin + last - first)):
                    doc = _renamed(doc, new_ids.get(begin - start + i))
                    writer.write(doc)
                    count_document(totals, doc)
        shards += 1
    return shards, totals


def window_documents(docs: EntryDocs, start: int, stop: int, new_ids: dict[int, str],
                     prefix: str = "") -> Iterator[dict]:
    """The documents of a window with their unique ids, after ``prefix``."""
    for i, doc in enumerate(docs.documents(start, stop)):
        doc_id = new_ids.get(i, doc["id"])
        yield {**doc, "id": prefix + doc_id}


def _renamed(doc: dict, new: str | None) -> dict:
    return doc if new is None else {**doc, "id": new}


def _add(totals: dict, counts: dict) -> None:
    totals["documents"] += counts["documents"]
    totals["chars"] += counts["chars"]
    totals["by_source"].update(counts["by_source"])
    totals["by_kind"].update(counts["by_kind"])


def counted(docs: Iterator[dict], totals: dict[str, Any]) -> Iterator[dict]:
    """``docs``, each counted into ``totals`` as it passes."""
    for doc in docs:
        count_document(totals, doc)
        yield doc
