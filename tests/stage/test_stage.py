"""The shared entry point of stage scripts keeps optional dependencies that the params leave
unused out of the process: a default CPU run neither imports DeepSpeed nor prints its
"Setting accelerator to CPU" warning (accelerate imports DeepSpeed on every save_pretrained
whenever it is installed)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretrain.config import load_all
from pretrain.stage import unused_optional

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = ("deepspeed", "wandb", "tensorboard")  # installed by the dev extra, unused by default
TRAIN = {"max_steps": 2, "warmup_steps": 1, "micro_batch_size": 4, "precision": "fp32",
         "eval_every": 0, "checkpoint_every": 0}


def imported(importtime_log: str) -> set[str]:
    """Top-level names of the modules that ``python -X importtime`` reports as imported."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def run_stage(tmp_path: Path, script: str, params: dict, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_DEEPSPEED"}
    return subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "stages" / script),
                           "--params", "params.yaml", *args], capture_output=True, text=True,
                          cwd=tmp_path, env={**env, "CUDA_VISIBLE_DEVICES": ""}, timeout=600)


@pytest.mark.parametrize("script", ["init_model.py", "train.py"])
def test_a_default_run_imports_no_unused_optional_dependency_and_prints_none_of_its_noise(
        tmp_path, tiny_tokenizer, init_dir, tokens_dir, script):
    """Both stages save a model with save_pretrained, where DeepSpeed was imported."""
    tiny_tokenizer.save_pretrained(str(tmp_path / "tokenizer"))
    args = {"init_model.py": ["--tokenizer", "tokenizer", "--out", "init", "--metrics", "m.json"],
            "train.py": ["--model", str(init_dir), "--data", str(tokens_dir), "--out", "trained",
                         "--live", "live", "--checkpoints", "ckpt", "--metrics", "m.json"]}[script]
    result = run_stage(tmp_path, script, {"model": {"preset": "debug"}, "train": TRAIN}, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "m.json").exists()
    assert "Setting accelerator" not in result.stdout + result.stderr
    assert imported(result.stderr) & set(OPTIONAL) == set()
    assert "torch" in imported(result.stderr)  # the import log was read


def test_deepspeed_stays_importable_where_the_params_or_the_launcher_use_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    (tmp_path / "default.yaml").write_text("{}")
    (tmp_path / "zero.yaml").write_text(yaml.safe_dump(
        {"train": {"deepspeed": {"zero_optimization": {"stage": 2}}}}))
    assert unused_optional(load_all(tmp_path / "default.yaml")) == ["deepspeed"]
    assert unused_optional(load_all(tmp_path / "zero.yaml")) == []
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")  # accelerate launch --use_deepspeed
    assert unused_optional(load_all(tmp_path / "default.yaml")) == []
