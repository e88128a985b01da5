"""Killing `dvc repro` mid-stage and running it again completes correctly, and DVC never
records a half-written output."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_pipeline import debug_clone, run

pytestmark = pytest.mark.slow


def repro_until(repo: Path, marker: str, timeout: float = 300) -> str:
    """Start `dvc repro`, kill -9 its whole process group as soon as ``marker`` is printed."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    seen, deadline = b"", time.monotonic() + timeout
    while marker.encode() not in seen and time.monotonic() < deadline:
        chunk = os.read(proc.stdout.fileno(), 4096)  # progress bars end in \r, not \n
        if not chunk:
            break
        seen += chunk
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return seen.decode(errors="replace")


@pytest.mark.parametrize("victim", ["pack", "train"])
def test_rerun_after_kill_completes_and_caches_only_whole_outputs(tmp_path, victim):
    repo = tmp_path / "clone"
    repo.mkdir()
    debug_clone(repo)
    marker = {"pack": "pack: shards:   0%", "train": "train:   0%"}[victim]  # its progress bar: at work
    log = repro_until(repo, marker)
    assert marker in log
    lock = (repo / "dvc.lock").read_text() if (repo / "dvc.lock").exists() else ""
    assert f"\n  {victim}:" not in lock  # DVC did not record the interrupted stage

    out = run(["dvc", "repro"], repo)
    assert f"Running stage '{victim}'" in out
    assert "up to date" in run(["dvc", "status"], repo)
    leftovers = [p for p in (repo / "data").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    leftovers += [p for p in (repo / "models").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    assert json.loads((repo / "metrics/eval.json").read_text())["val"]["trained"]["perplexity"] > 0


def lock_md5(repo: Path, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
                if out["path"] == path)


def test_killed_training_resumes_from_its_checkpoint_to_the_same_model(tmp_path):
    """kill -9 after the step-10 checkpoint (debug profile: 30 steps, one every 10): the rerun
    resumes there, ends with the model an uninterrupted run trains, and logs every step once."""
    (tmp_path / "clone").mkdir()
    repo = debug_clone(tmp_path / "clone")
    log = repro_until(repo, "checkpoint checkpoints/train/step-00000010")
    assert "step-00000010" in log
    out = run(["dvc", "repro"], repo)
    assert "resuming from the checkpoint of step 10" in out
    steps = [int(line.split("\t")[0]) for line in
             (repo / "dvclive/train/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 31))
    assert not list((repo / "checkpoints/train").iterdir())
    resumed = lock_md5(repo, "models/trained")
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)
    assert lock_md5(repo, "models/trained") == resumed
