"""The training loop: schedule, data order, loss going down, DVCLive steps, saved model."""

import json

import numpy as np
import pytest
import torch
from dvclive import Live
from transformers import AutoModelForCausalLM

from pretrain.config import TrainConfig
from pretrain.errors import DataError
from pretrain.train import autocast_dtype, batch_order, load_rows, lr_at, param_groups, train


def test_lr_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, 1.0, 10, 100, "cosine", 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.1)


@pytest.mark.parametrize("schedule, middle", [("linear", 0.55), ("cosine", 0.55), ("constant", 1.0)])
def test_lr_schedules(schedule, middle):
    # halfway through the decay (warmup 0, 101 steps -> step 50), floor 0.1
    assert lr_at(50, 1.0, 0, 101, schedule, 0.1) == pytest.approx(middle)


def test_batch_order_is_seeded_and_covers_every_row_per_epoch():
    a = batch_order(10, 2, seed=1)
    first_epoch = np.concatenate([next(a) for _ in range(5)])
    assert sorted(first_epoch) == list(range(10))
    b = batch_order(10, 2, seed=1)
    assert all(np.array_equal(next(b), x) for x in np.split(first_epoch, 5))
    assert not np.array_equal(first_epoch, np.concatenate([next(batch_order(10, 10, seed=2))]))


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(DataError, match="micro_batch_size"):
        batch_order(3, 4, seed=0)  # at the call, before any batch is drawn


def test_norms_and_biases_are_not_decayed(init_dir):
    model = AutoModelForCausalLM.from_pretrained(init_dir)
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0


def test_fp32_is_plain_and_bf16_is_autocast():
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16


def test_training_lowers_the_loss_and_logs_every_optimizer_step(tmp_path, init_dir, packed_dir):
    cfg = TrainConfig(max_steps=40, warmup_steps=2, learning_rate=1e-2, micro_batch_size=4,
                      grad_accum_steps=2, precision="fp32", log_every=1)
    with Live(dir=str(tmp_path / "live"), save_dvc_exp=False, dvcyaml=None) as live:
        report = train(cfg, init_dir, packed_dir, tmp_path / "trained", live)
    assert report["final_loss"] < report["first_loss"] - 0.5
    assert report["tokens"] == 40 * 4 * 2 * load_rows(packed_dir / "train.parquet").shape[1]
    steps = [int(line.split("\t")[0]) for line in
             (tmp_path / "live/plots/metrics/train/loss.tsv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 41))  # the x-axis is the optimizer step, not a log-call count
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "trained")
    init = AutoModelForCausalLM.from_pretrained(init_dir)
    assert not torch.equal(model.lm_head.weight, init.lm_head.weight)
    assert (tmp_path / "trained" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "trained" / "config.json").read_text())["use_cache"] is True


def test_same_seed_gives_the_same_model_in_fp32(tmp_path, init_dir, packed_dir):
    cfg = TrainConfig(max_steps=3, warmup_steps=1, micro_batch_size=2, precision="fp32")
    for name in ("a", "b"):
        with Live(dir=str(tmp_path / f"live{name}"), save_dvc_exp=False, dvcyaml=None) as live:
            train(cfg, init_dir, packed_dir, tmp_path / name, live)
    a = AutoModelForCausalLM.from_pretrained(tmp_path / "a").state_dict()
    b = AutoModelForCausalLM.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
