"""The machine a benchmark ran on, for the first line of its output (figures are only comparable
on the same kind of CPU: AVX-512 BF16 trains about twice as fast as AVX2 alone)."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model, cores this process may use, and whether it has AVX-512 BF16 / AVX-512F / AVX2."""
    with open("/proc/cpuinfo") as handle:
        info = handle.read()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())
    kind = "AVX-512 BF16" if "avx512_bf16" in info else "AVX-512F" if "avx512f" in info else "AVX2"
    return f"{model}, {len(os.sched_getaffinity(0))} cores usable, {kind}"
