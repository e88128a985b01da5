"""The download stage: the configured source, or mix of sources, read by tasks on the
executor into the document shards of data/raw.

A source of local files is read by one task per input file, group of small files, or byte
range of a large JSON lines file; any other source by one task (pretrain.sources.tasks). The
tasks run on the executor of every data stage (pretrain.executor: the local pool or Ray) with
completion markers, so that a run killed part way reads only the unfinished tasks' inputs when
run again. A last pass in this process (pretrain.sources.assemble) takes each source's window
(skip, limit, its share of max_documents), makes its ids unique and puts the shards in place, or
interleaves a mix: the built-in source and each mix entry are read in parallel like the rest,
and the mix's interleave is a second pass, serial, a copy of the mixed documents, because its
seeded order runs across every source. The output is the same bytes for any executor and number
of workers, and the same documents as ``iter_documents`` reads in one process
(pretrain.sources.streams: what a source yields, ids, mixing).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import itertools
import os
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from pretrain.config.executor import ExecutorConfig
from pretrain.config.sources import DownloadConfig, SourceConfig
from pretrain.errors import ConfigError, DataError
from pretrain.executor.shards import (
    file_digest,
    run_tasks,
    session,
    stage_key,
    work_folder,
)
from pretrain.io import ShardedDocumentWriter, atomic_path
from pretrain.sources.assemble import (
    EntryDocs,
    count_over_cap,
    count_skipped,
    counted,
    made_unique,
    shared_digests,
    window,
    window_documents,
    write_single,
)
from pretrain.sources.builtin import normalize_name, read_locked
from pretrain.sources.files import files_under
from pretrain.sources.manifest import manifest_path, text_digest, write_manifest
from pretrain.sources.records import (
    Document,
    Skipped,
    describe_skipped,
    display_name,
    params_key,
)
from pretrain.sources.streams import (
    Context,
    check_mix_shares,
    iter_documents,
    mix_counts,
    short_of_share,
    unique_ids,
)
from pretrain.sources.tasks import (
    LineTask,
    ReadTask,
    count_lines,
    entries,
    line_tasks,
    new_totals,
    plan_files,
    ranges_of,
    read_task,
)
from pretrain.sources.urls import mark_cache_dir

__all__ = ["Skipped", "describe_skipped", "download", "iter_documents", "mix_counts", "unique_ids"]


def download(cfg: DownloadConfig, out_dir: Path, url_cache: Path | None = None,
             lock: Path | None = None, executor: ExecutorConfig | None = None,
             work_root: Path | None = None) -> dict[str, Any]:
    """Write the documents to ``out_dir`` as shards of at most ``cfg.shard_mb`` MB of text
    (``part-00000.parquet``, ...: pretrain.io.ShardedDocumentWriter); return the report.

    The sources are read by tasks on ``executor`` (default: one worker, in this process), one
    per input file or group or range of files, or one per other source
    (pretrain.sources.tasks), with their work and completion markers in ``work_root`` (default:
    a temporary folder, so nothing to resume); a rerun after a kill reads only the inputs of the
    tasks without a marker. A source capped by ``max_documents``, its ``limit`` or its mix
    share is read in waves of tasks (``WAVE``, doubling), in input order, until it has enough
    documents; the same inputs are read, and the same bytes written, for any executor and
    worker count. The last pass (pretrain.sources.assemble) cuts each source's window, makes
    its ids unique and puts the shards in place, or interleaves a mix. Fetched URLs are cached in
    ``url_cache`` (a DVC output, so it is created even when nothing is fetched).

    ``lock``: the requirements lock (``requirements/core.lock``) whose distributions alone give
    the built-in corpus package descriptions (None: every installed one). The built-in
    documents are checked against the committed manifest of this Python (report:
    ``builtin_manifest``; a difference is one line in the report's ``warnings``, which the
    stage prints).

    Raises DataError naming the input when a task fails (pretrain.executor.shards.run_tasks),
    when a mix source has fewer documents than its share, and when no document is left.
    """
    if url_cache is not None:
        mark_cache_dir(url_cache)
    check_mix_shares(cfg)
    executor = executor or ExecutorConfig(workers=1)
    context = Context(cfg.fetch, url_cache, read_locked(lock) if lock is not None else None)
    with contextlib.ExitStack() as stack:
        if work_root is None:
            work_root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="download-")))
        lock_digest = file_digest(lock) if lock is not None else None
        work = work_folder(work_root, stage_key("download", cfg, lock_digest, str(url_cache)))
        with session(executor):
            tasks = plan(cfg, executor, work, lock)
            results = read_in_waves(cfg, executor, context, tasks)
        report = _assemble(cfg, tasks, results, out_dir)
        shutil.rmtree(work)
    return report


WAVE = 4
"""Tasks per source in the first wave of a capped source; each later wave doubles."""


def plan(cfg: DownloadConfig, executor: ExecutorConfig, work: Path,
         lock: Path | None = None) -> dict[int, list[ReadTask]]:
    """The read tasks of each source (by its place in ``entries``), numbered in input order
    across sources; large JSON lines files are cut into ranges by a first pass of line-count
    tasks (pretrain.sources.tasks)."""
    cwd, task_bytes = os.getcwd(), max(1, round(cfg.task_mb * 1e6))
    specs: dict[int, list[tuple]] = {}
    counting: list[LineTask] = []
    for e, (src, label) in enumerate(entries(cfg)):
        if src.source != "files":
            specs[e] = [("stream", watched_inputs(src, lock))]
            continue
        specs[e] = plan_files(src, params_key(label, "path"), task_bytes)
        for spec in specs[e]:
            path = Path(os.path.abspath(spec[1])) if spec[0] == "range" else None
            if path is not None and all(c.path != path for c in counting):  # once per file
                counting += line_tasks(path, task_bytes, work, len(counting))
    counts = run_tasks(executor, "download: line starts", count_lines, counting, digest=False,
                       unit="range") if counting else []
    by_file: dict[Path, list[dict]] = {}
    for task, count in zip(counting, counts):
        by_file.setdefault(task.path, []).append(count)
    tasks: dict[int, list[ReadTask]] = {}
    index = 0
    for e in range(len(specs)):
        tasks[e] = []
        for spec in specs[e]:
            if spec[0] == "stream":
                made = [ReadTask(index, e, work, cwd, stream=True, stop=_needed(cfg, e), watched=spec[1])]
            elif spec[0] == "files":
                made = [ReadTask(index, e, work, cwd, paths=spec[1])]
            else:
                ranges = ranges_of(by_file[Path(os.path.abspath(spec[1]))])
                made = [ReadTask(index + i, e, work, cwd, paths=(spec[1],), start=start, end=end,
                                 first_line=line) for i, (start, end, line) in enumerate(ranges)]
            tasks[e] += made
            index += len(made)
    return tasks


def watched_inputs(src: SourceConfig, lock: Path | None) -> tuple[Path, ...]:
    """The local files a stream source's task reads, stamped in its marker so that a changed one
    is read again after a kill: a local Hugging Face folder's files, the lock whose
    distributions give the built-in corpus its package descriptions."""
    if src.source == "hf" and src.path and Path(src.path).is_dir():
        return tuple(sorted(Path(os.path.abspath(p)) for p in files_under(Path(src.path))))
    if src.source == "builtin" and lock is not None:
        return (Path(os.path.abspath(lock)),)
    return ()


def _needed(cfg: DownloadConfig, entry: int) -> int | None:
    """Documents of source ``entry`` read at most: its skip, then the least of its limit and
    its share (max_documents, or its mix count); None: all."""
    src, _ = entries(cfg)[entry]
    caps = [c for c in (src.limit, _share(cfg, entry)) if c is not None]
    return src.skip + min(caps) if caps else None


def read_in_waves(cfg: DownloadConfig, executor: ExecutorConfig, context: Context,
                  tasks: dict[int, list[ReadTask]]) -> dict[int, list[dict]]:
    """Run the read tasks; a capped source's in waves (``WAVE``) until it has the documents it
    needs or none are left. Returns the results of each source's tasks that ran, in order."""
    run = functools.partial(read_task, cfg, context)
    results: dict[int, list[dict]] = {e: [] for e in tasks}
    size = WAVE
    while True:
        wave = []
        for e, made in tasks.items():
            needed, got = _needed(cfg, e), sum(_documents(r) for r in results[e])
            done = len(results[e])
            if done < len(made) and (needed is None or got < needed):
                wave += made[done:] if needed is None else made[done:done + size]
        if not wave:
            return results
        for task, result in zip(wave, run_tasks(executor, "download", run, wave, digest=False,
                                                unit="task", name_item=False)):
            results[task.entry].append(result)
        size *= 2


def _documents(result: dict) -> int:
    return sum(shard["documents"] for shard in result["shards"])


def _assemble(cfg: DownloadConfig, tasks: dict[int, list[ReadTask]], results: dict[int, list[dict]],
              out_dir: Path) -> dict[str, Any]:
    """The last pass (pretrain.sources.assemble) and the report."""
    skipped = Skipped.merged([r["skipped"] for e in sorted(results) for r in results[e]])
    count_empty_ranged(tasks, results, skipped)
    windows = _windows(cfg, tasks, results, skipped)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        if cfg.source == "mix":
            totals = new_totals()
            with ShardedDocumentWriter(tmp, round(cfg.shard_mb * 1e6)) as writer:
                for doc in counted(_interleaved(cfg, windows), totals):
                    writer.write(doc)
            shards = writer.shards
        else:
            shards, totals = write_single(*windows[0], tmp)
        if totals["documents"] == 0:
            raise DataError(nothing_yielded(cfg, skipped))
    ran = [r for e in sorted(results) for r in results[e]]
    manifest = {name: m for r in ran for name, m in r.get("manifest", {}).items()}
    report = {"documents": totals["documents"], "chars": totals["chars"], "shards": shards,
              "by_source": dict(sorted(totals["by_source"].items())),
              "by_kind": dict(sorted(totals["by_kind"].items())),
              "inputs": {"files": sum(r["input_files"] for r in ran),
                         "bytes": sum(r["input_bytes"] for r in ran),
                         "tasks": len(ran)},
              **skipped.report(),
              "fetched": dict(sorted(skipped.fetched.items())),
              "ids": dict(sorted(skipped.ids.items())),
              **({"kind_field_missing": skipped.kind_field_missing}
                 if skipped.kind_field_missing else {})}
    return {**report, **_manifest_report(manifest), **_mix_report(cfg, totals["by_source"])}


def _windows(cfg: DownloadConfig, tasks: dict[int, list[ReadTask]], results: dict[int, list[dict]],
             skipped: Skipped) -> dict[int, tuple[EntryDocs, int, int, dict[int, str]]]:
    """Each source's documents, window and new ids; what falls outside a window counted."""
    windows: dict[int, tuple[EntryDocs, int, int, dict[int, str]]] = {}
    for e, (src, label) in enumerate(entries(cfg)):
        docs = EntryDocs(tasks[e][:len(results[e])], results[e])
        start, stop = window(docs.total, src.skip, src.limit, _share(cfg, e))
        count_skipped(docs, start, skipped)
        count_over_cap(docs, stop, tasks[e][len(results[e]):], skipped,
                       "over_limit" if src.limit is not None and stop - start == src.limit
                       else "over_max_documents")
        if cfg.source == "mix" and stop - start < _share(cfg, e):
            raise DataError(short_of_share(cfg, e, stop - start, skipped))
        digests = docs.digests(start, stop)
        docs.prefetch_ids(shared_digests(digests) + start)
        new_ids = made_unique(digests, lambda i, d=docs, s=start: d.field(s + i, "id"),
                              lambda i, d=docs, s=start: d.field(s + i, "provenance"))
        if new_ids:
            skipped.ids["duplicate_made_unique"] += len(new_ids)
        windows[e] = (docs, start, stop, new_ids)
    return windows


def count_empty_ranged(tasks: dict[int, list[ReadTask]], results: dict[int, list[dict]],
                       skipped: Skipped) -> None:
    """Count as ``empty_file`` each file read in ranges none of which found a non-blank line
    (a range alone cannot tell: the file's other ranges may have some), once all ran."""
    ranges: dict[Path, list] = {}
    for e, made in tasks.items():
        for task, result in itertools.zip_longest(made, results[e]):
            if task.end is not None:
                ranges.setdefault(task.paths[0], []).append(result)
    for path, found in ranges.items():
        if None not in found and not any(r["records"] for r in found):
            skipped.add_file("empty_file", display_name(path), path.stat().st_size)


def _share(cfg: DownloadConfig, entry: int) -> int | None:
    """The documents source ``entry`` gives at most: its mix count, or max_documents."""
    if cfg.source == "mix":
        return mix_counts([s.weight for s in cfg.sources], cfg.max_documents)[entry]
    return cfg.max_documents


def _interleaved(cfg: DownloadConfig, windows: dict) -> Iterator[Document]:
    """The mix's documents: each source's window in the order shuffled with ``cfg.seed``."""
    streams = [window_documents(*windows[e], prefix=f"{s.name}/") for e, s in enumerate(cfg.sources)]
    order = [e for e, (_, start, stop, _) in sorted(windows.items()) for _ in range(stop - start)]
    random.Random(cfg.seed).shuffle(order)
    for e in order:
        yield next(streams[e])


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


def _manifest_report(checks: dict[str, dict]) -> dict[str, Any]:
    """The report's ``builtin_manifest`` (per built-in source) and ``warnings``, if any, from
    the read tasks' manifest checks (label -> report and warning)."""
    if not checks:
        return {}
    warnings = [c["warning"] for _, c in sorted(checks.items()) if c["warning"]]
    return {"builtin_manifest": {label: c["report"] for label, c in sorted(checks.items())},
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
