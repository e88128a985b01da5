"""Run a data stage as one task per input shard, on the configured executor, resumably.

A data stage that reads shards (clean, dedup, pack) calls ``run_shards`` with a task function
and its input shards. Each task reads its shard and writes its outputs into the stage's work
folder under names that start with its shard's name (``part-00003.parquet``, ...), each written
atomically; when the task returns, a marker (``part-00003.done.json``: the task's JSON result
and the size, inode, modification time and digest of its input as the task read it) records it
as finished. A stage killed part way and run again (``dvc repro``) finds the markers and runs
only the shards without a valid one, as datatrove's completion markers do. A marker is valid
when its input has the same size and either the same inode and modification time (checked
without reading it, as DVC's own state does) or the same bytes (a copy, say after
``dvc checkout``). The digest is taken by the task, so a first run hashes in parallel.

The download stage's tasks read input files rather than shards (``run_tasks``: a task may read
several files, or a byte range of one); their markers stamp every file a task reads, without
the digest (a copy of an input is read again: hashing a crawl's files would read them twice),
and a marker counts only for the task it was written for (its repr: files, range), so inputs
planned otherwise after files were added are read again.

The work folder is named by ``stage_key``: a digest of the stage's params and of the library's
code, so a changed rule or setting never reuses a shard written under the old one; the folders
of other keys are deleted when a run starts, this run's when the stage has moved its outputs
into place.

Results never depend on the executor or the number of workers: a task sees only its own shard,
and the results come back in shard order whatever order the tasks finished in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator

from tqdm import tqdm

from pretrain.config.executor import ExecutorConfig
from pretrain.errors import DataError
from pretrain.io import write_json

PACKAGE = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Shard:
    """One task's input: shard ``index`` of the stage's input, read from ``source``, with its
    outputs written into ``work`` (absolute paths: a Ray worker may run in another folder)."""

    index: int
    source: Path
    work: Path

    @property
    def name(self) -> str:
        """``part-00003``: the prefix of every file this task writes."""
        return f"part-{self.index:05d}"

    def output(self, suffix: str) -> Path:
        """The path of one of this task's outputs, ``work/part-00003<suffix>``."""
        return self.work / f"{self.name}{suffix}"

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The files the task reads, whose stamps its marker records."""
        return (self.source,)

    def describe(self) -> str:
        """What an error names: the input shard's file name."""
        return f"shard {self.source.name}"


def code_digest(package: Path = PACKAGE) -> str:
    """blake2b of every module of the library (paths and contents, in sorted order)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_key(stage: str, *settings: Any) -> str:
    """The work folder's name for ``stage`` run with ``settings`` (config dataclasses or plain
    JSON values) by this version of the library. The executor's own settings are not part of
    it: any executor, with any number of workers, writes the same shards."""
    plain = [dataclasses.asdict(s) if dataclasses.is_dataclass(s) else s for s in settings]
    text = json.dumps([stage, plain, code_digest()], sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def file_digest(path: Path) -> str:
    """blake2b of a file's bytes, read in 1 MiB blocks (0.68 GB/s on one core of a loaded
    2-core Xeon with AVX-512F; hashlib.file_digest needs Python 3.11)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def work_folder(work_root: Path, key: str) -> Path:
    """``work_root/key``, created; the folders of other keys (stale runs) are deleted."""
    work_root = Path(work_root)
    work_root.mkdir(parents=True, exist_ok=True)
    for stale in work_root.iterdir():
        if stale.name != key:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    folder = (work_root / key).resolve()
    folder.mkdir(exist_ok=True)
    return folder


EXECUTORS: dict[str, str] = {
    "local": "pretrain.executor.local:LocalExecutor",
    "ray": "pretrain.executor.ray:RayExecutor",  # imported only when chosen: Ray is optional
}
"""The executors by ``executor.name``. Each is a context manager with ``map(task, items)``
yielding ``(position, result or exception)`` as tasks finish (pretrain.executor.local)."""

_sessions: dict[ExecutorConfig, Any] = {}


def executor_for(cfg: ExecutorConfig) -> Any:
    """A new executor of ``cfg.name`` (EXECUTORS)."""
    module, _, name = EXECUTORS[cfg.name].partition(":")
    return getattr(importlib.import_module(module), name)(cfg)


@contextlib.contextmanager
def session(cfg: ExecutorConfig) -> Iterator[None]:
    """Keep one executor of ``cfg`` across the ``run_shards`` calls of a stage that makes
    several (dedup: pass 1, buckets, filter). With ``ray``: one ``ray.init`` for the stage (and,
    without ``address``, one local cluster, started at the first task and stopped at the end)
    instead of one per call, which took ~10 s each on a 2-core machine; ``local`` starts its
    pool per call anyway. A nested session of the same config shares the outer one."""
    if cfg in _sessions:
        yield
        return
    with executor_for(cfg) as executor:
        _sessions[cfg] = executor
        try:
            yield
        finally:
            del _sessions[cfg]


def _executor(cfg: ExecutorConfig) -> ContextManager[Any]:
    """The session's executor of ``cfg`` (left open), or a new one for one call."""
    return contextlib.nullcontext(_sessions[cfg]) if cfg in _sessions else executor_for(cfg)


def run_shards(cfg: ExecutorConfig, stage: str, task: Callable[[Shard], dict], sources: Iterable[Path],
               work: Path) -> list[dict]:
    """Run ``task`` once per shard of ``sources`` (in ``work``, from ``work_folder``) on the
    executor of ``cfg``; return the task results in shard order, as JSON values (the same on a
    resumed run as on an uninterrupted one). ``task`` must be picklable (a module-level
    function, or functools.partial of one with picklable arguments) and return a
    JSON-serialisable dict. No sources: no task, and [].

    Raises DataError naming the shard and the cause when a task raises, or when its worker
    process died more than ``cfg.retries`` times; the markers of finished shards stay, so a
    rerun resumes. Ctrl-C (KeyboardInterrupt) stops the running tasks and is raised as it is.
    """
    work = Path(work).resolve()
    shards = [Shard(i, Path(source).resolve(), work) for i, source in enumerate(sources)]
    return run_tasks(cfg, stage, task, shards)


def run_tasks(cfg: ExecutorConfig, stage: str, task: Callable[[Any], dict], items: list[Any],
              digest: bool = True, unit: str = "shard", name_item: bool = True) -> list[dict]:
    """``run_shards`` for any task items: each has ``index``, ``output(suffix)`` (its marker is
    ``output(".done.json")``), ``inputs`` (the files it reads, stamped in its marker) and
    ``describe()`` (what an error names); results in the order of ``items``. ``digest``: the
    markers also record each input's digest, so a copy of an input (new inode) is recognised by
    its bytes; without it a copy is read again (the download stage: hashing a crawl's files
    would read them twice, and a byte-range task would hash its whole file). ``name_item``
    False: a task's DataError, which names its input itself (a reader's), is raised with its
    own message alone; any other error still names the item."""
    results = {i: done for i, item in enumerate(items) if (done := finished(item)) is not None}
    pending = [i for i in range(len(items)) if i not in results]
    if not pending:
        return [results[i] for i in range(len(items))]
    run = functools.partial(_stamped, task, digest)
    with _executor(cfg) as executor, tqdm(total=len(items), initial=len(results),
                                          desc=f"{stage}: {unit}s", unit=unit) as bar, \
            contextlib.closing(executor.map(run, [items[i] for i in pending])) as outcomes:
        for position, outcome in outcomes:
            item = items[pending[position]]
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):  # KeyboardInterrupt in a worker
                    raise outcome
                if isinstance(outcome, DataError) and not name_item:
                    raise DataError(one_line(outcome)) from outcome
                raise DataError(f"{stage}: {item.describe()}: {one_line(outcome)}") from outcome
            done = json.loads(json.dumps(outcome))
            write_json(item.output(".done.json"), done)
            results[pending[position]] = done["result"]
            bar.update(1)
    return [results[i] for i in range(len(items))]


def source_stamp(path: Path, digest: bool = True) -> dict[str, Any]:
    """What a marker records of a task's input: size, inode, modification time (ns) and,
    with ``digest``, the blake2b of its bytes."""
    stat = path.stat()
    stamp = {"size": stat.st_size, "inode": stat.st_ino, "mtime_ns": stat.st_mtime_ns}
    return {**stamp, "digest": file_digest(path)} if digest else stamp


def _stamped(task: Callable[[Any], dict], digest: bool, item: Any) -> dict[str, Any]:
    """Run ``task`` (in the worker) and return its result with the stamps of its inputs, taken
    before the task reads them: an input changed meanwhile is read again next time."""
    inputs = [source_stamp(path, digest) for path in item.inputs]
    return {"task": repr(item), "inputs": inputs, "result": task(item)}


def finished(item: Any) -> Any:
    """The result in the marker of ``item`` (a Shard, or a task item of run_tasks) when the
    marker was written for this same item (its repr: its inputs, byte range, ...) and is valid
    (module docstring) for every one of its inputs, else None."""
    try:
        done = json.loads(item.output(".done.json").read_text(encoding="utf-8"))
        recorded, result = list(done["inputs"]), done["result"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or not one of ours
        return None
    if done.get("task") != repr(item) or len(recorded) != len(item.inputs):
        return None  # another task of that name: the inputs were planned otherwise
    for stamp, path in zip(recorded, item.inputs):
        if not isinstance(stamp, dict) or not _same_input(stamp, path):
            return None
    return result


def _same_input(recorded: dict[str, Any], path: Path) -> bool:
    try:
        now = source_stamp(path, digest=False)
    except OSError:  # gone since
        return False
    if recorded.get("size") != now["size"]:
        return False
    return all(recorded.get(key) == now[key] for key in ("inode", "mtime_ns")) or \
        ("digest" in recorded and recorded["digest"] == file_digest(path))


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message, or its type when the message is empty."""
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__
