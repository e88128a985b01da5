"""The local executor: shard tasks in processes on this machine, no server to start.

``concurrent.futures.ProcessPoolExecutor`` (not ``multiprocessing.Pool``, which waits forever for
a task whose worker was killed). A worker that dies (killed, out of memory) breaks the whole
pool: every unfinished future gets ``BrokenProcessPool``, whether its task was running on the
dead worker, on another one, or still queued (CPython's concurrent/futures/process.py,
``terminate_broken``). So each task notes when it starts (a flag at its position in an array
shared with the workers), and only the tasks that had started and not finished are suspects:
one suspect is the task that died and is charged an attempt; several (two workers busy when one
died) are each charged and run again alone, in a pool of one, where a death names its task
exactly. A task fails with ``WorkerDied`` when its worker died alone and it has been charged
more than ``executor.retries`` times; a task that was only beside a dying one never fails for
it. Every task runs at most ``1 + retries`` times, or ``2 + retries`` where a death beside
another running task (charged to both) came after its retries were spent (seen in a full test run: twice
alone before its neighbour started, then once beside it, then alone); the ``WorkerDied``
message counts every death charged to it.

Workers are forked from a forkserver that imported the task's module once (``worker_context``).
With one worker, or one task, the tasks run in this process: no start-up cost and plain
tracebacks under a debugger; a task killed there stops
the stage, and the rerun resumes from the completion markers (pretrain.executor.shards).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Generator, Iterator, Sequence

from pretrain.config.executor import ExecutorConfig
from pretrain.io import worker_count

Outcomes = Generator[tuple[int, Any], None, list[int]]


class WorkerDied(RuntimeError):
    """A shard task whose worker process kept dying (killed, out of memory)."""


_started: Any = None  # in a worker process: the shared flags its tasks set when they start


def _start_worker(started: Any, parent: int) -> None:
    """Set up a worker process: the flags its tasks set when they start, and a watch on the
    stage's process. A worker outlives a stage killed with SIGKILL (or by the OOM killer),
    waiting forever on the pool's queue, whose write end it holds itself, with the stage's pipes
    still open; it must exit instead (checked once a second, on any platform, unlike Linux's
    PR_SET_PDEATHSIG)."""
    global _started
    _started = started
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="parent-watch").start()


def _exit_with(parent: int) -> None:
    # The stage's pid, not os.getppid(): a forkserver worker's parent is the server, which
    # outlives the stage too.
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # the pid was reused by another user's process: the stage is gone
            os._exit(1)
        time.sleep(1)


def _tracked(task: Callable[[Any], Any], position: int, item: Any) -> Any:
    _started[position] = 1
    return task(item)


def worker_context(task: Callable[[Any], Any]) -> Any:
    """The multiprocessing context of the pool: forkserver, with the task's module imported once
    in the server, so each worker is a fork of a process that has the stage's libraries loaded
    (a spawned worker imports them itself: 5 s for pack, which imports transformers and torch,
    each time a pool starts; dedup starts three). Not a plain fork: the stage's process holds
    pyarrow's and torch's threads, which a forked child must not inherit; the server is a fresh
    single-threaded process. spawn where there is no forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    module = task_module(task)
    if module and module.startswith("pretrain."):
        context.set_forkserver_preload([module])  # ignored once the server runs (one per process)
    return context


def task_module(task: Callable[[Any], Any]) -> str | None:
    """The module of the function a task runs, under its wrappers: functools.partial, and the
    stamping partial of run_tasks (``partial(_stamped, partial(clean_shard, cfg), digest)``,
    whose own module, the executor's, has none of the stage's libraries to preload)."""
    while isinstance(task, functools.partial):
        inner = [arg for arg in task.args if callable(arg)]
        task = inner[0] if inner and task.func.__module__ == "pretrain.executor.shards" else task.func
    return getattr(task, "__module__", None)


class LocalExecutor:
    """Run ``task(item)`` for each item over ``executor.workers`` processes (0: every core)."""

    def __init__(self, cfg: ExecutorConfig):
        self.workers = worker_count(cfg.workers)
        self.retries = cfg.retries

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def map(self, task: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(position, result or the exception the task raised) for each item, as they finish;
        ``WorkerDied`` for an item whose worker died more than ``retries`` times."""
        if self.workers == 1 or len(items) == 1:
            for position, item in enumerate(items):
                try:
                    yield position, task(item)
                except Exception as exc:  # noqa: BLE001 (handed to the caller, who names the shard)
                    yield position, exc
            return
        attempts = [0] * len(items)
        left = set(range(len(items)))
        alone: list[int] = []  # suspects of a death among several running tasks, run one by one
        while left:
            batch = alone[:1] or sorted(left)
            suspects = yield from self._round(task, items, batch, 1 if alone else self.workers, left)
            if not suspects:
                del alone[:1]
            elif alone or len(suspects) == 1:
                culprit = suspects[0]
                attempts[culprit] += 1
                if attempts[culprit] > self.retries:
                    left.discard(culprit)
                    alone = [p for p in alone if p != culprit]
                    yield culprit, WorkerDied(f"its worker process died {attempts[culprit]} times "
                                              "(killed, or out of memory)")
            else:  # each suspect is charged, and runs alone until it ends or dies alone
                for position in suspects:
                    attempts[position] += 1
                alone = suspects

    def _round(self, task: Callable, items: Sequence[Any], batch: list[int], workers: int,
               left: set[int]) -> Outcomes:
        """Run the ``batch`` items on one pool of ``workers`` processes until they finish or the
        pool breaks; yield the outcomes (dropping their positions from ``left``) and return the
        suspects of a break (see the module docstring): [] when every task finished."""
        context = worker_context(task)
        started = context.RawArray("b", len(items))  # one byte each: written whole, no lock needed
        pool = ProcessPoolExecutor(min(workers, len(batch)), mp_context=context,
                                   initializer=_start_worker, initargs=(started, os.getpid()))
        futures: dict[Future, int] = {}
        broken: list[int] = []
        try:
            for position in batch:
                try:
                    futures[pool.submit(_tracked, task, position, items[position])] = position
                except BrokenProcessPool:  # a worker died already: the rest wait for the next pool
                    break
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.get):
                    position = futures.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        broken.append(position)
                        continue
                    left.discard(position)
                    yield position, error if error is not None else future.result()
            ran = {position for position in batch if started[position]}
        finally:
            if futures:  # the caller stopped early (a failed shard, Ctrl-C): stop the others now
                # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14
                # (terminate_workers); its workers are plain multiprocessing processes.
                for process in list((getattr(pool, "_processes", None) or {}).values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
        # A worker that died before it started a task leaves no suspect: then all are.
        return sorted(p for p in broken if p in ran) or sorted(broken)
