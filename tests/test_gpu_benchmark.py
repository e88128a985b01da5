"""benchmarks/gpu_train.py end to end on the CPU (``--device cpu --tiny``): its header, its
table of the three contenders, and its one-line refusal without CUDA."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.py"


def run(*args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=600, check=False, env={**os.environ, **(env or {})})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_without_cuda_it_refuses_in_one_line():
    done = run()
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith("gpu_train: no CUDA device") and "--device cpu --tiny" in done.stderr


@pytest.mark.slow  # three fresh processes that each import torch and transformers: ~40 s on 2 cores
def test_tiny_cpu_run_prints_every_contender(tmp_path):
    done = run("--device", "cpu", "--tiny", "--json", str(tmp_path / "out.json"),
               env={"CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("gpu_train: ") and f"torch {torch.__version__}" in lines[0]
    assert any(line.startswith("model: debug, ") for line in lines)
    assert any(line.startswith("MFU against ") for line in lines)
    rows = {line.split("  ")[0]: line for line in lines
            if line.startswith(("pretrain ", "HF Trainer ", "nanoGPT-style loop "))}
    assert set(rows) == {"pretrain", "HF Trainer", "nanoGPT-style loop"}
    assert "1.00x" in rows["pretrain"]
    assert all("GiB" in row and row.endswith("sdpa: flash (CPU)") for row in rows.values())
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    assert set(results) == {"pretrain", "hf-trainer", "plain-loop"}
    for result in results.values():
        assert result["steps"] == 4 and result["window_s"] > 0 and result["memory_bytes"] > 0
