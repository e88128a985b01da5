"""Reproducibility and sharing, end to end on the debug profile through the real `dvc repro`.

A forced rerun gives bit-identical artifacts and trained model; a rerun on one thread (torch's
OpenMP threads and the tokenizers library's Rayon threads) bit-identical data and the same
training to rounding; a clone pulls them from a DVC remote and has nothing to rebuild.
"""

import json
import re

import pytest
import torch
import yaml
from test_pipeline import copy_run, run
from transformers import AutoModelForCausalLM

from pretrain.config.train import TrainConfig
from pretrain.train.loop import train

pytestmark = pytest.mark.slow

# Outputs that record wall-clock time (the report draws tokens/s and MFU); everything else they
# hold is compared.
TIMED = {"metrics/train.json", "dvclive/train", "metrics/report.md", "metrics/report.html", "metrics/figures"}
TIMING_KEYS = {"train_runtime_s", "tokens_per_second", "mfu", "mfu_measured", "peak_flops_measured"}
# The training report's nominal peak: of the cores that trained, so it follows the thread count.
THREAD_KEYS = {"peak_flops", "peak_source"}
DATA = {"data/raw", "data/clean", "data/dedup", "data/tokenizer", "data/packed", "models/init"}
MUST_MATCH = {"data/raw", "data/clean", "data/dedup", "data/tokenizer", "data/packed", "models/init",
              "models/trained", "metrics/eval.json", "metrics/generations.md"}


def lock_outs(repo) -> dict[str, str]:
    """The md5 of every output of every stage, from dvc.lock."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


def untimed(repo) -> dict:
    """What the timed outputs hold besides the times: the training report and per-step curves."""
    report = json.loads((repo / "metrics/train.json").read_text())
    curves = repo / "dvclive/train/plots/metrics/train"
    return {"report": {k: v for k, v in report.items() if k not in TIMING_KEYS},
            **{name: (curves / f"{name}.tsv").read_text() for name in ("loss", "learning_rate", "grad_norm")}}


def snapshot(repo) -> tuple[dict[str, str], dict]:
    outs = lock_outs(repo)
    assert MUST_MATCH <= set(outs) and TIMED <= set(outs)
    return {p: md5 for p, md5 in outs.items() if p not in TIMED}, untimed(repo)


def assert_same(before, after) -> None:
    changed = sorted(p for p in before[0] if before[0][p] != after[0].get(p))
    assert not changed, f"not reproduced bit for bit: {changed}"
    assert before[1] == after[1]


@pytest.fixture(scope="module", autouse=True)
def cpu_only():
    """Bit-identity is a property of the CPU run; on a GPU the pipeline would train there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUDA_VISIBLE_DEVICES", "")
        yield


@pytest.fixture(scope="module")
def repo(tmp_path_factory, debug_run):
    """The debug run, copied to another path: the forced rerun there also shows that no output
    depends on where the repository lies."""
    return copy_run(debug_run, tmp_path_factory.mktemp("repro") / "repo")


@pytest.fixture(scope="module")
def first(repo):
    return snapshot(repo)


def test_forced_rerun_is_bit_identical(repo, first):
    out = run(["dvc", "repro", "--force"], repo)
    assert out.count("Running stage") == 12
    assert json.loads((repo / "metrics/train.json").read_text())["device"] == "cpu"
    assert_same(first, snapshot(repo))


def test_thread_counts_do_not_change_any_artifact(repo, first, monkeypatch):
    """One thread against the default (one per core), the same checks on every CPU: the
    documents, the tokenizer, the packed rows and the initial model bit for bit; the training
    report and curves to rounding (rel 1e-4), but the nominal peak that MFU is taken against,
    which is that of the cores that trained (pretrain.train.peaks.nominal_peak). Not the trained
    model bit for bit: torch's CPU kernels may sum in an order that follows the thread count,
    and PyTorch promises nothing either way (docs/stages.md says where it was bit-identical)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    run(["dvc", "repro", "--force"], repo)
    after = snapshot(repo)
    assert {p: first[0][p] for p in DATA} == {p: after[0][p] for p in DATA}, "data artifacts differ"
    before, alone = first[1]["report"], after[1]["report"]
    cores = int(re.search(r"(\d+) cores", before["peak_source"]).group(1))
    assert alone["peak_source"] == before["peak_source"].replace(f"{cores} cores", "1 cores")
    assert alone["peak_flops"] == pytest.approx(before["peak_flops"] / cores, rel=1e-12)
    assert alone.keys() == before.keys()
    for key in before.keys() - THREAD_KEYS:
        number = isinstance(before[key], float)
        assert alone[key] == (pytest.approx(before[key], rel=1e-4) if number else before[key]), key
    for name in ("loss", "learning_rate", "grad_norm"):
        rows = [line.split("\t") for line in first[1][name].splitlines()[1:]]
        again = [line.split("\t") for line in after[1][name].splitlines()[1:]]
        assert [r[0] for r in rows] == [r[0] for r in again]  # the same steps
        assert [float(r[1]) for r in again] == pytest.approx([float(r[1]) for r in rows], rel=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_training_is_bit_identical(tmp_path, init_dir, tokens_dir, precision):
    """torch.compile's CPU kernels add the embedding gradient with atomic adds from parallel
    threads unless deterministic algorithms are on: at this batch size two runs used to differ.
    Both precisions on every CPU (``auto`` picks bf16 only where the CPU has AVX-512 BF16)."""
    cfg = TrainConfig(max_steps=3, warmup_steps=1, micro_batch_size=128, compile=True, precision=precision)
    for name in ("a", "b"):
        assert train(cfg, init_dir, tokens_dir, tmp_path / name, tmp_path / f"live_{name}")["compiled"]
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert not torch.are_deterministic_algorithms_enabled()  # the global switch is restored


def test_a_clone_pulls_every_artifact_from_a_remote(repo, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "local", str(remote)], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "pipeline run, local remote"], repo)
    run(["dvc", "push"], repo)
    assert any(remote.rglob("*"))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "models/trained").exists()
    run(["dvc", "pull"], clone)
    weights = "models/trained/model.safetensors"
    assert (clone / weights).read_bytes() == (repo / weights).read_bytes()
    assert "up to date" in run(["dvc", "status"], clone)
    assert "Running stage" not in run(["dvc", "repro"], clone)
