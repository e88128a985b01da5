"""Document sources: the built-in corpus (pretrain.sources.builtin), local files, URLs and
Hugging Face datasets, alone or mixed with weights.

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
import importlib.metadata
import itertools
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from tqdm import tqdm

from pretrain.config.sources import DownloadConfig, FetchConfig, SourceConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import ShardedDocumentWriter, atomic_path
from pretrain.sources.builtin import (
    normalize_name,
    package_descriptions,
    pydoc_topics,
    read_locked,
    stdlib_docstrings,
    stdlib_sources,
)
from pretrain.sources.files import read_files
from pretrain.sources.hf import read_hf
from pretrain.sources.manifest import ManifestCheck, manifest_path, text_digest, write_manifest
from pretrain.sources.records import EMPTY_METADATA, Document, Skipped, describe_skipped, params_key
from pretrain.sources.urls import mark_cache_dir, read_urls

__all__ = ["Skipped", "describe_skipped", "download", "iter_documents", "mix_counts"]


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
    counts = mix_counts([s.weight for s in cfg.sources], cfg.max_documents)
    for i, (src, count) in enumerate(zip(cfg.sources, counts)):
        if count == 0:
            raise ConfigError(f"download.sources[{i}].weight: {src.weight} gives {src.name!r} no "
                              f"document of max_documents {cfg.max_documents}")
    streams = [unique_ids(read_source(s, ctx, skipped, s.name), skipped, f"{s.name}/")
               for s in cfg.sources]
    order = [i for i, count in enumerate(counts) for _ in range(count)]
    random.Random(cfg.seed).shuffle(order)
    taken = [0] * len(streams)
    for i in order:
        doc = next(streams[i], None)
        if doc is None:
            src = cfg.sources[i]
            lost = describe_skipped(skipped.report())
            raise DataError(f"download.sources[{i}] ({src.name!r}): has {taken[i]} usable "
                            f"documents, but its weight asks for {counts[i]} of max_documents "
                            f"{cfg.max_documents}; lower its weight or max_documents"
                            + (f", or its skip ({src.skip})" if src.skip else "")
                            + (f", or raise its limit ({src.limit})" if src.limit is not None else "")
                            + (f" (skipped so far, all sources: {lost})" if lost else ""))
        taken[i] += 1
        yield doc


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


# --- the stage ---------------------------------------------------------------------------------


def download(cfg: DownloadConfig, out_dir: Path, url_cache: Path | None = None,
             lock: Path | None = None) -> dict[str, Any]:
    """Write the documents to ``out_dir`` as shards of ``cfg.shard_mb`` MB of text
    (``part-00000.parquet``, ...: pretrain.io.ShardedDocumentWriter); return the report. Fetched
    URLs are cached in ``url_cache`` (a DVC output, so it is created even when nothing is
    fetched). The sources are read as one stream, so download itself runs in one process.

    ``lock``: the requirements lock (``requirements/core.lock``) whose distributions alone give
    the built-in corpus package descriptions (None: every installed one). The built-in
    documents are checked against the committed manifest of this Python (report:
    ``builtin_manifest``; a difference is one line in the report's ``warnings``, which the
    stage prints).
    """
    if url_cache is not None:
        mark_cache_dir(url_cache)
    locked = read_locked(lock) if lock is not None else None
    checks: dict[str, ManifestCheck] = {}
    skipped = Skipped()
    by_source: Counter = Counter()
    by_kind: Counter = Counter()
    chars = 0
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with ShardedDocumentWriter(tmp, round(cfg.shard_mb * 1e6)) as writer:
            for doc in tqdm(iter_documents(cfg, skipped, url_cache, locked, checks),
                            desc="download", unit="doc"):
                writer.write(doc)
                by_source[doc["source"]] += 1
                by_kind[doc["kind"]] += 1
                chars += len(doc["text"])
        if writer.count == 0:
            raise DataError(nothing_yielded(cfg, skipped))
    report = {"documents": writer.count, "chars": chars, "shards": writer.shards,
              "by_source": dict(sorted(by_source.items())),
              "by_kind": dict(sorted(by_kind.items())), **skipped.report(),
              "fetched": dict(sorted(skipped.fetched.items())),
              "ids": dict(sorted(skipped.ids.items())),
              **({"kind_field_missing": skipped.kind_field_missing}
                 if skipped.kind_field_missing else {})}
    return {**report, **_manifest_report(checks), **_mix_report(cfg, by_source)}


FIELD_HINTS = {
    "missing_text_field": "download.text_field is {text_field!r}: set it to the field that holds the text",
    "text_not_a_string": "download.text_field {text_field!r} holds no string: set it to the field that holds the text",
}
"""For a source that gave no document, what to change when every record was skipped for this reason."""


def nothing_yielded(cfg: DownloadConfig, skipped: Skipped) -> str:
    """The one line for a source that gave no document: what was skipped (each in its unit), where
    the first of the most common reason was, and for a record field that was never found, the key
    to change (``FIELD_HINTS``)."""
    report = skipped.report()
    line = f"download: the {cfg.source} source yielded no documents"
    lost = describe_skipped(report)
    if not lost:
        return line
    line += f" (skipped: {lost})"
    counts = {**report["skipped"], **{r: c["files"] for r, c in report["skipped_files"].items()}}
    top = max(sorted(counts), key=counts.get, default=None)
    if top and report["skipped_examples"].get(top):
        line += f"; the first: {report['skipped_examples'][top][0]}"
    if top in FIELD_HINTS and cfg.source != "mix":
        line += "; " + FIELD_HINTS[top].format(text_field=cfg.text_field)
    return line


def _manifest_report(checks: dict[str, ManifestCheck]) -> dict[str, Any]:
    """The report's ``builtin_manifest`` (per built-in source) and ``warnings``, if any."""
    if not checks:
        return {}
    warnings = [w for _, check in sorted(checks.items()) if (w := check.warning())]
    return {"builtin_manifest": {label: check.report() for label, check in sorted(checks.items())},
            **({"warnings": warnings} if warnings else {})}


def _mix_report(cfg: DownloadConfig, by_source: Counter) -> dict[str, Any]:
    """The report's ``mix``: each entry's weight, share and documents (a mix only)."""
    if cfg.source != "mix":
        return {}
    total = sum(s.weight for s in cfg.sources)
    return {"mix": {s.name: {"weight": s.weight, "share": s.weight / total,
                             "documents": by_source[s.name]} for s in cfg.sources}}


# --- the built-in corpus's manifest (pretrain.sources.manifest) ---------------------------------


def build_manifest(lock: Path, folder: Path | None = None) -> tuple[Path, int]:
    """Write the manifest of this Python's built-in corpus (every part, tests included, the
    package descriptions of ``lock``'s distributions) into ``folder``; its path and size.

    Raises ConfigError when a locked distribution is not installed at its locked version: a
    manifest must describe the locked environment, not this machine's.
    """
    locked = read_locked(lock)
    installed = {normalize_name(d.metadata["Name"] or ""): d.version
                 for d in importlib.metadata.distributions()}
    wrong = sorted(n for n, v in locked.items() if installed.get(n, "").split("+")[0] != v)
    if wrong:
        name = wrong[0]
        raise ConfigError(f"{lock}: {len(wrong)} locked distributions are not installed at their "
                          f"locked version ({name}=={locked[name]}, installed: "
                          f"{installed.get(name, 'none')}): run ./setup.sh first")
    docs = iter_documents(DownloadConfig(include_tests=True), Skipped(), locked=locked)
    path = manifest_path(folder) if folder is not None else manifest_path()
    return path, write_manifest(path, ((d["id"], text_digest(d["text"])) for d in docs))
