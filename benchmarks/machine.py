"""The machine a benchmark ran on, for the first line of its output (figures are only comparable
on the same kind of CPU: AVX-512 BF16 trains about twice as fast as AVX2 alone)."""

from __future__ import annotations

import os
import platform
import subprocess
import threading
import time


def machine() -> str:
    """CPU model, cores this process may use, and whether it has AVX-512 BF16 / AVX-512F / AVX2."""
    with open("/proc/cpuinfo") as handle:
        info = handle.read()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())
    kind = "AVX-512 BF16" if "avx512_bf16" in info else "AVX-512F" if "avx512f" in info else "AVX2"
    return f"{model}, {len(os.sched_getaffinity(0))} cores usable, {kind}"


def watch(process: subprocess.Popen) -> tuple[dict, threading.Thread]:
    """Sample the process tree every 50 ms until it exits: peak summed RSS (``rss``) and the
    last CPU seconds seen per process (``cpu``: pid -> user + system)."""
    import psutil  # here: machine() alone needs nothing outside the standard library

    box: dict = {"rss": 0, "cpu": {}}

    def sample() -> None:
        try:
            root = psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            return
        while process.poll() is None:
            total = 0
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for proc in tree:
                try:
                    with proc.oneshot():
                        total += proc.memory_info().rss
                        times = proc.cpu_times()
                    box["cpu"][proc.pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            box["rss"] = max(box["rss"], total)
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    return box, thread
