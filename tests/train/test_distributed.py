"""`accelerate launch` with 2 CPU processes (DDP or FSDP over gloo) follows the loss curve of 1
process at the same global batch: each process takes half of every micro-batch. FSDP saves the
whole model and resumes from its checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

DRIVER = """
import json, sys
from pathlib import Path
import pretrain.train.loop
from pretrain.config.train import TrainConfig
from pretrain.train.loop import leave, train
cfg, init, packed, out = json.loads(sys.argv[1]), *map(Path, sys.argv[2:5])
die_at = cfg.pop("die_at", None)
if die_at is not None:  # every process stops dead when this step begins, as after a kill -9
    real = pretrain.train.loop.lr_at
    def lr_at(step, *args):
        if step == die_at:
            raise SystemExit("killed")
        return real(step, *args)
    pretrain.train.loop.lr_at = lr_at
report = train(TrainConfig(**cfg), init, packed, out / "model", out / "live", out / "ckpt")
if report is not None:
    (out / "report.json").write_text(json.dumps(report))
leave()
"""

CFG = {"max_steps": 6, "warmup_steps": 1, "learning_rate": 1e-2, "micro_batch_size": 4,
       "grad_accum_steps": 2, "precision": "fp32", "log_every": 1, "eval_every": 3,
       "checkpoint_every": 3}


def launch(tmp_path: Path, name: str, processes: int, init_dir, tokens_dir, fails: str = "",
           **options) -> tuple[dict, list]:
    """Run the driver in ``processes`` processes; ``fails``: the run must fail with this message."""
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    bin_dir = Path(sys.executable).parent
    prefix = ([str(bin_dir / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", "0"] if processes > 1 else [sys.executable])
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*prefix, str(driver), json.dumps({**CFG, **options}), str(init_dir),
                             str(tokens_dir), str(out)], env=env, capture_output=True, text=True,
                            timeout=600)
    (out / "stderr.txt").write_text(result.stderr)  # the whole log of a failed launch
    if fails:
        assert result.returncode != 0 and fails in result.stderr, result.stderr[-3000:]
        return {}, []
    assert result.returncode == 0, result.stderr[-3000:]
    rows = (out / "live/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    report = json.loads((out / "report.json").read_text())
    return {**report, "stdout": result.stdout}, [float(r.split("\t")[-1]) for r in rows]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, init_dir, tokens_dir):
    tmp_path = tmp_path_factory.mktemp("one")
    return (*launch(tmp_path, "one", 1, init_dir, tokens_dir), tmp_path / "one/model")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, init_dir, tokens_dir):
    """The same run in 2 processes with DDP: the model every 2-process layout must save."""
    tmp_path = tmp_path_factory.mktemp("two")
    return (*launch(tmp_path, "two", 2, init_dir, tokens_dir), tmp_path / "two/model")


def weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def assert_same_model(expected: Path, saved: Path) -> None:
    """``saved`` holds the whole model of ``expected``: every tensor of it (same names and
    shapes) to 1e-3 in relative L2 norm, and all but 0.1% of all values to 1e-4.

    Compared with the DDP model of the same 2 processes, not with the 1-process one. Not every
    value to 1e-4: both backends reduce fp32 gradients (DeepSpeed's communication_data_type is
    fp32, as no bf16/fp16 section is allowed), but ZeRO-2/3 sum each micro-batch's gradient over
    the processes as it comes, where DDP sums a process's micro-batches first, and AdamW turns
    that rounding in a near-zero gradient (|g| ~ eps) into a step of up to the learning rate.
    Measured on a 2-core AMD EPYC (AVX2) on 2026-12-07, ZeRO-3 against DDP after 6 steps at lr
    1e-2: 34 of 158,016 values apart by up to 5.0e-4 (5.0e-4 after the first step; 7e-6 with
    one micro-batch per step), 3.8e-4 at most in relative L2; ZeRO-1 (reduced at the step, as
    DDP) 9e-7. A tensor left at its initial values is off by 2% at least (the norms), one
    partition of it by far more.
    """
    a, b = weights(expected), weights(saved)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert [k for k in a if torch.linalg.vector_norm(a[k] - b[k]) > 1e-3 * torch.linalg.vector_norm(a[k])] == []
    apart = sum(int(((a[k] - b[k]).abs() > 1e-4).sum()) for k in a)
    assert apart <= 1e-3 * sum(v.numel() for v in a.values())


def test_two_processes_follow_the_one_process_loss_curve(one_process, two_processes):
    one, curve_one, _ = one_process
    two, curve_two, _ = two_processes
    assert two["processes"] == 2 and one["processes"] == 1
    assert len(curve_two) == len(curve_one) == 6
    assert curve_two == pytest.approx(curve_one, rel=1e-4)
    assert curve_one[-1] < curve_one[0]
    assert two["tokens"] == one["tokens"]  # the same global batch


@pytest.mark.parametrize("sharding, checkpointing", [("full_shard", False), ("shard_grad_op", True)])
def test_fsdp_follows_the_one_process_curve_and_saves_the_whole_model(
        tmp_path, init_dir, tokens_dir, one_process, two_processes, sharding, checkpointing):
    one, curve_one, _ = one_process
    two, curve_two = launch(tmp_path, "fsdp", 2, init_dir, tokens_dir, sharding=sharding,
                            gradient_checkpointing=checkpointing)
    assert two["sharding"] == sharding and two["processes"] == 2
    assert curve_two == pytest.approx(curve_one, rel=1e-4)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)  # every process validates
    assert_same_model(two_processes[2], tmp_path / "fsdp/model")  # whole, not one shard
    assert not list((tmp_path / "fsdp/ckpt").iterdir())


@pytest.mark.parametrize("stage, checkpointing", [(1, False), (2, True), (3, True)])
def test_deepspeed_zero_follows_the_one_process_curve_and_saves_the_whole_model(
        tmp_path, init_dir, tokens_dir, one_process, two_processes, stage, checkpointing):
    one, curve_one, _ = one_process
    two, curve_two = launch(tmp_path, "zero", 2, init_dir, tokens_dir,
                            deepspeed={"zero_optimization": {"stage": stage}},
                            gradient_checkpointing=checkpointing)
    assert two["sharding"] == f"deepspeed_zero{stage}" and two["processes"] == 2
    assert curve_two == pytest.approx(curve_one, rel=1e-4)
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert_same_model(two_processes[2], tmp_path / "zero/model")  # whole, not one partition


DEEPSPEED = {"deepspeed": {"zero_optimization": {"stage": 2}}}
ZERO3 = {"deepspeed": {"zero_optimization": {"stage": 3}}, "optimizer": "lion",
         "learning_rate": 1e-3}


OFFLOAD = {"deepspeed": {"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}}


@pytest.mark.parametrize("layout", [{"sharding": "none"}, {"sharding": "full_shard"}, DEEPSPEED,
                                    OFFLOAD], ids=["ddp", "fsdp", "zero2", "zero2-offload"])
def test_a_killed_multi_process_run_resumes_from_its_checkpoint(tmp_path, init_dir, tokens_dir,
                                                                 one_process, two_processes, layout):
    launch(tmp_path, "run", 2, init_dir, tokens_dir, fails="killed", die_at=4, **layout)
    assert [p.name for p in (tmp_path / "run/ckpt").iterdir()] == ["step-00000003"]
    resumed, curve = launch(tmp_path, "run", 2, init_dir, tokens_dir, **layout)
    assert "resuming from the checkpoint of step 3" in resumed["stdout"]
    assert len(curve) == 6  # steps 1-6 once each: the killed run's step 4 was dropped
    assert curve == pytest.approx(one_process[1], rel=1e-4)
    assert_same_model(two_processes[2], tmp_path / "run/model")


@pytest.mark.parametrize("layout", [{"sharding": "none"}, {"sharding": "full_shard"}, DEEPSPEED],
                         ids=["ddp", "fsdp", "zero2"])
def test_compiled_multi_process_training_follows_the_eager_one_process_curve(
        tmp_path, init_dir, tokens_dir, one_process, layout):
    report, curve = launch(tmp_path, "compiled", 2, init_dir, tokens_dir, compile=True, **layout)
    assert report["compiled"] and "torch.compile failed" not in report["stdout"]
    assert curve == pytest.approx(one_process[1], rel=1e-4)


@pytest.mark.parametrize("first, then", [(ZERO3, {"sharding": "full_shard", "optimizer": "lion",
                                                    "learning_rate": 1e-3}),
                                          (DEEPSPEED, {"deepspeed": {"zero_optimization": {"stage": 1}}})],
                         ids=["zero3-to-fsdp", "zero2-to-zero1"])
def test_a_deepspeed_checkpoint_resumes_on_another_layout(tmp_path, init_dir, tokens_dir, first,
                                                          then):
    """Checkpoints hold the whole state, named by parameter, whatever wrote them."""
    uninterrupted, curve_whole = launch(tmp_path, "whole", 2, init_dir, tokens_dir, **then)
    launch(tmp_path, "run", 2, init_dir, tokens_dir, fails="killed", die_at=4, **first)
    resumed, curve = launch(tmp_path, "run", 2, init_dir, tokens_dir, **then)
    assert "resuming from the checkpoint of step 3" in resumed["stdout"]
    assert curve == pytest.approx(curve_whole, rel=1e-4)


def test_a_deepspeed_config_that_deepspeed_refuses_is_a_clear_error(tmp_path, init_dir, tokens_dir):
    launch(tmp_path, "bad", 2, init_dir, tokens_dir, fails="train.deepspeed: DeepSpeed refused",
           deepspeed={"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "gpu"}}})


def test_fp16_with_sharding_is_a_clear_error(tmp_path, init_dir, tokens_dir):
    launch(tmp_path, "fp16", 2, init_dir, tokens_dir, fails="fp16 loss scaling is not supported",
           sharding="full_shard", precision="fp16")
