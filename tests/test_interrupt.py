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
from test_pipeline import copy_run, run

pytestmark = pytest.mark.slow


def repro_until(repo: Path, marker: str, target: str, timeout: float = 300) -> str:
    """Start `dvc repro target`, kill -9 its whole process group as soon as ``marker`` is printed."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(["dvc", "repro", target], cwd=repo, env=env, stdout=subprocess.PIPE,
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


def changed_copy(debug_run: Path, dest: Path, section: str, key: str, value) -> Path:
    """A copy of the finished debug run (conftest.debug_run) with ``section.key`` set to
    ``value``, so that ``dvc repro <section>`` has that stage, and only it, to run again."""
    repo = copy_run(debug_run, dest)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def locked_params(repo: Path, stage: str) -> dict:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"][stage]["params"]["params.yaml"]


# Each test kills the one stage it is about and reruns that stage: a copy of the finished debug
# run with one of the stage's params changed (the upstream stages are up to date, and what follows
# the stage is not this test's subject), rather than the whole pipeline three times (8.5 minutes
# of a 2-core CI run, now about 2).
@pytest.mark.parametrize("victim,key,value", [("pack", "split_salt", "interrupted"),
                                              ("train", "seed", 1)])
def test_rerun_after_kill_completes_and_caches_only_whole_outputs(tmp_path, debug_run, victim, key, value):
    repo = changed_copy(debug_run, tmp_path / "clone", victim, key, value)
    before = locked_params(repo, victim)
    marker = {"pack": "pack: shards:   0%", "train": "train:   0%"}[victim]  # its progress bar: at work
    log = repro_until(repo, marker, victim)
    assert marker in log
    assert locked_params(repo, victim) == before  # DVC did not record the interrupted stage

    out = run(["dvc", "repro", victim], repo)
    assert f"Running stage '{victim}'" in out
    assert locked_params(repo, victim)[victim][key] == value
    assert "up to date" in run(["dvc", "status", victim], repo)
    leftovers = [p for p in (repo / "data").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    leftovers += [p for p in (repo / "models").iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []


def lock_md5(repo: Path, path: str) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
                if out["path"] == path)


def test_killed_training_resumes_from_its_checkpoint_to_the_same_model(tmp_path, debug_run):
    """kill -9 after the step-10 checkpoint (debug profile: 30 steps, one every 10): the rerun
    resumes there, ends with the model an uninterrupted run trains, and logs every step once."""
    repo = changed_copy(debug_run, tmp_path / "clone", "train", "seed", 1)
    log = repro_until(repo, "checkpoint checkpoints/train/step-00000010", "train")
    assert "step-00000010" in log
    out = run(["dvc", "repro", "train"], repo)
    assert "resuming from the checkpoint of step 10" in out
    steps = [int(line.split("\t")[0]) for line in
             (repo / "dvclive/train/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 31))
    assert not list((repo / "checkpoints/train").iterdir())
    resumed = lock_md5(repo, "models/trained")
    run(["dvc", "repro", "--force", "--single-item", "train"], repo)
    assert lock_md5(repo, "models/trained") == resumed
