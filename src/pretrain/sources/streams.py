"""Document sources as streams: the built-in corpus (pretrain.sources.builtin), local files,
URLs and Hugging Face datasets, alone or mixed with weights (``SOURCES``; ``iter_documents`` reads
them in one process, in order: the reference the download stage's tasks give the same documents
as, pretrain.sources.download).

Every source yields dicts with ``id``, ``text``, ``source``, ``provenance`` (where the text
came from, precisely enough to find it again) and ``metadata`` (a record's other fields, as a
JSON object: see pretrain.sources.records). What cannot be used is skipped and counted in
``skipped`` by reason and in its unit (records; whole files, with their bytes; URLs), with where
the first few were; a file that cannot be read at all raises DataError naming it.

Ids are unique in the output, whichever sources they come from: the pack stage assigns a
document to training or validation by a hash of its id, and every later report names documents
by it. No document is lost for its id: in a mix each id is prefixed with its entry's name
(``{name}/{id}``; a name holds no "/"), so two sources that both number their records from 0
cannot meet, and within one source a document whose id an earlier one already has keeps it
prefixed with its own provenance (``{provenance}/{id}``, e.g. ``data/a.jsonl:3/7``), counted
in ``ids`` as ``duplicate_made_unique``. A prefix rather than a suffix, because the end of an id
may be read: a record's kind is told from its id's extension when its source names no
``kind_field`` (pretrain.sources.kinds). The ids seen
are held per source as 16-byte BLAKE2b digests (83 bytes per document with the set's overhead,
measured with tracemalloc for a million ids; a collision by chance needs ~2^64 documents).

Mixing (``source: mix``): each entry of ``download.sources`` gets a share of
``max_documents`` equal to its weight over the sum of the weights, rounded to whole documents by
the largest-remainder method (so the counts are exact and add up to ``max_documents``). Each
source gives its first documents, in its own order; the output interleaves the sources in an
order shuffled with ``seed``. A source with fewer documents than its share is an error: the mix
would not be the one asked for. Weights are shares of documents, not of characters or tokens,
and not epochs: repeating documents here would only feed the dedup stage duplicates to remove.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import random
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from pretrain.config.sources import DownloadConfig, FetchConfig, SourceConfig
from pretrain.errors import ConfigError, DataError
from pretrain.sources.builtin import (
    package_descriptions,
    pydoc_topics,
    stdlib_docstrings,
    stdlib_sources,
)
from pretrain.sources.files import read_files
from pretrain.sources.hf import read_hf
from pretrain.sources.manifest import ManifestCheck
from pretrain.sources.records import (
    EMPTY_METADATA,
    Document,
    Skipped,
    describe_skipped,
    params_key,
)
from pretrain.sources.urls import read_urls

__all__ = ["SOURCES", "Context", "iter_documents", "mix_counts", "unique_ids"]


class Context(NamedTuple):
    """What a source may need beyond its own settings: the fetch settings and URL cache, the
    locked distributions (None: every installed one gives a package description) and, per
    built-in source (by its label), the check of its documents against the manifest."""

    fetch: FetchConfig
    url_cache: Path | None
    locked: dict[str, str] | None = None
    checks: dict[str, ManifestCheck] | None = None


def iter_documents(cfg: DownloadConfig, skipped: Skipped, url_cache: Path | None = None,
                   locked: dict[str, str] | None = None,
                   checks: dict[str, ManifestCheck] | None = None) -> Iterator[Document]:
    """Yield the documents of the configured source (at most ``cfg.max_documents``), or of the
    mix of ``cfg.sources``. ``locked`` and ``checks``: see Context."""
    ctx = Context(cfg.fetch, url_cache, locked, checks)
    if cfg.source == "mix":
        yield from _mix(cfg, ctx, skipped)
        return
    docs = unique_ids(read_source(cfg, ctx, skipped, None), skipped)
    # islice stops before asking for one more: a document past the cap is never read or fetched.
    yield from itertools.islice(docs, cfg.max_documents)


def read_source(src: SourceConfig, ctx: Context, skipped: Skipped,
                label: str | None) -> Iterator[Document]:
    """The documents of one source after its first ``src.skip`` (each counted as
    ``skipped_by_config`` in records), at most ``src.limit`` of them; islice stops reading there,
    as with max_documents."""
    docs = SOURCES[src.source](src, ctx, skipped, label)
    for doc in itertools.islice(docs, src.skip):
        skipped.add("skipped_by_config", doc["provenance"])
    yield from itertools.islice(docs, src.limit)


def unique_ids(docs: Iterator[Document], skipped: Skipped, prefix: str = "") -> Iterator[Document]:
    """Every document of one source, its id made unique where an earlier one has it (see the
    module docstring; counted in ``skipped.ids["duplicate_made_unique"]``) and put after
    ``prefix``."""
    seen: set[bytes] = set()
    for doc in docs:
        doc_id, n = doc["id"], 1
        while not _first_sight(doc_id, seen):  # a made-up id could, just, be a real one
            n += 1
            again = "" if n == 2 else f"#{n - 1}"
            doc_id = f"{doc['provenance']}{again}/{doc['id']}"
        if n > 1:
            skipped.ids["duplicate_made_unique"] += 1
        if prefix or n > 1:
            doc = {**doc, "id": prefix + doc_id}
        yield doc


def _first_sight(doc_id: str, seen: set[bytes]) -> bool:
    """Whether ``doc_id`` is new to ``seen``, which then has it."""
    key = hashlib.blake2b(doc_id.encode(), digest_size=16).digest()
    if key in seen:
        return False
    seen.add(key)
    return True


# --- mixing ---------------------------------------------------------------------------------------


def mix_counts(weights: list[float], total: int) -> list[int]:
    """Documents per source: ``total`` shared in proportion to ``weights``, rounded by largest
    remainder (Hamilton's method; ties go to the earlier source)."""
    shares = [w / sum(weights) * total for w in weights]
    counts = [math.floor(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[:total - sum(counts)]:
        counts[i] += 1
    return counts


def _mix(cfg: DownloadConfig, ctx: Context, skipped: Skipped) -> Iterator[Document]:
    check_mix_shares(cfg)
    counts = mix_counts([s.weight for s in cfg.sources], cfg.max_documents)
    streams = [unique_ids(read_source(s, ctx, skipped, s.name), skipped, f"{s.name}/")
               for s in cfg.sources]
    order = [i for i, count in enumerate(counts) for _ in range(count)]
    random.Random(cfg.seed).shuffle(order)
    taken = [0] * len(streams)
    for i in order:
        doc = next(streams[i], None)
        if doc is None:
            raise DataError(short_of_share(cfg, i, taken[i], skipped))
        taken[i] += 1
        yield doc


def check_mix_shares(cfg: DownloadConfig) -> None:
    """Raise ConfigError for a mix entry whose weight gives it no document of max_documents."""
    if cfg.source != "mix":
        return
    counts = mix_counts([s.weight for s in cfg.sources], cfg.max_documents)
    for i, (src, count) in enumerate(zip(cfg.sources, counts)):
        if count == 0:
            raise ConfigError(f"download.sources[{i}].weight: {src.weight} gives {src.name!r} no "
                              f"document of max_documents {cfg.max_documents}")


def short_of_share(cfg: DownloadConfig, i: int, has: int, skipped: Skipped) -> str:
    """The error for mix entry ``i``, which has ``has`` usable documents, fewer than its share."""
    src, count = cfg.sources[i], mix_counts([s.weight for s in cfg.sources], cfg.max_documents)[i]
    lost = describe_skipped(skipped.report())
    return (f"download.sources[{i}] ({src.name!r}): has {has} usable documents, but its weight "
            f"asks for {count} of max_documents {cfg.max_documents}; lower its weight or "
            f"max_documents" + (f", or its skip ({src.skip})" if src.skip else "")
            + (f", or raise its limit ({src.limit})" if src.limit is not None else "")
            + (f" (skipped so far, all sources: {lost})" if lost else ""))


# --- built-in corpus: real text that every machine with Python installed has ---------------


def _builtin(src: SourceConfig, ctx: Context, skipped: Skipped,
             label: str | None) -> Iterator[Document]:
    """Each document labelled with its part (stdlib, ...), or with ``label`` in a mix; no
    metadata of its own (its provenance names the Python version and file). Each is checked
    against the manifest when ``ctx.checks`` is given (pretrain.sources.manifest)."""
    check = ManifestCheck(src.builtin_parts, src.include_tests)
    if ctx.checks is not None:
        ctx.checks[label or "builtin"] = check
    parts = {**BUILTIN_PARTS,
             "package_docs": functools.partial(package_descriptions, locked=ctx.locked)}
    for part in src.builtin_parts:
        for doc in parts[part](src.include_tests, skipped):
            doc["metadata"] = EMPTY_METADATA
            check.observe(doc)
            yield {**doc, "source": label} if label else doc
    check.finish()


BUILTIN_PARTS: dict[str, Callable[[bool, Skipped], Iterator[Document]]] = {
    "stdlib": stdlib_sources,
    "pydoc_topics": pydoc_topics,
    "docstrings": stdlib_docstrings,
    "package_docs": package_descriptions,
}


# --- local files, URLs, Hugging Face datasets ---------------------------------------------------


def _files(src: SourceConfig, ctx: Context, skipped: Skipped,
           label: str | None) -> Iterator[Document]:
    return read_files(src, skipped, label or "files", params_key(label, "path"))


def _urls(src: SourceConfig, ctx: Context, skipped: Skipped,
          label: str | None) -> Iterator[Document]:
    return read_urls(src, ctx.fetch, ctx.url_cache, skipped, label or "urls")


def _hf(src: SourceConfig, ctx: Context, skipped: Skipped, label: str | None) -> Iterator[Document]:
    return read_hf(src, skipped, label or "hf", params_key(label, "path"))


Source = Callable[[SourceConfig, Context, Skipped, str | None], Iterator[Document]]
SOURCES: dict[str, Source] = {"builtin": _builtin, "files": _files, "hf": _hf, "urls": _urls}
