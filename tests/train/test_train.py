"""The training loop: schedule, data order, loss going down, per-step curves, precision options,
and the saved model."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from pretrain.config.train import TrainConfig, total_steps
from pretrain.errors import ConfigError, DataError
from pretrain import runtime
from pretrain.runtime import MAX_EPOCHS, autocast_dtype, batch_order, epochs_warning, load_rows
from pretrain.train.loop import rate_warning, total_steps, train
from pretrain.train.optim import Lion, lr_at, param_groups
from pretrain.train.peaks import nominal_peak
from pretrain.train.zero import engine_config


def steps_logged(live_dir, name="train/loss"):
    rows = (live_dir / f"plots/metrics/{name}.tsv").read_text().splitlines()
    column = rows[0].split("\t").index("step")
    return [int(row.split("\t")[column]) for row in rows[1:]]


def weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


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


@pytest.mark.parametrize("rows, steps, accum, warned", [
    (499, 30, 1, False),    # the debug profile: 62 micro-batches an epoch, 30 steps = 0.5 epochs
    (48, 24, 1, False),     # 6 micro-batches an epoch: 24 steps = 4 epochs exactly
    (48, 25, 1, True),
    (48, 12, 2, False), (48, 13, 2, True),
])
def test_training_over_the_rows_more_than_4_times_is_warned_in_one_line(rows, steps, accum, warned):
    cfg = TrainConfig(micro_batch_size=8, grad_accum_steps=accum, max_steps=steps)
    warning = epochs_warning(rows, cfg, steps, seq_len=64)
    assert bool(warning) == warned
    if warned:
        # the budget it names keeps to MAX_EPOCHS, and is the largest that does
        fits = MAX_EPOCHS * 6 // accum
        assert warning.endswith(f"add data, or train.max_steps: {fits} for 4 epochs") and "\n" not in warning
        assert epochs_warning(rows, cfg, fits, 64) is None and epochs_warning(rows, cfg, fits + 1, 64)


def test_the_epochs_warning_names_the_token_budget_when_that_sets_the_steps():
    cfg = TrainConfig(micro_batch_size=8, max_steps=None, max_tokens=8 * 64 * 100)
    assert epochs_warning(48, cfg, 100, 64).endswith(f"train.max_tokens: {24 * 8 * 64} for 4 epochs")
    one_step = TrainConfig(micro_batch_size=8, grad_accum_steps=5, max_steps=1)  # 5 epochs a step
    assert epochs_warning(8, one_step, 1, 64).endswith("add data, or lower train.grad_accum_steps")


def test_batch_order_restarts_at_any_position_across_epochs():
    """Resuming recomputes the data position from the step: no saved iterator state."""
    full = batch_order(10, 3, seed=4)  # 3 batches per epoch, the last row of each epoch unused
    expected = [next(full) for _ in range(8)]
    for start in (0, 2, 3, 7):
        resumed = batch_order(10, 3, seed=4, start=start)
        assert all(np.array_equal(next(resumed), x) for x in expected[start:])


def test_batch_larger_than_data_is_a_clear_error():
    with pytest.raises(DataError, match="micro_batch_size"):
        batch_order(3, 4, seed=0)  # at the call, before any batch is drawn


def test_norms_and_biases_are_not_decayed(init_dir):
    model = AutoModelForCausalLM.from_pretrained(init_dir)
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0


def test_precision_names_map_to_autocast_dtypes():
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("fp16", cpu) is torch.float16


@pytest.mark.parametrize("native_bf16, dtype", [(True, torch.bfloat16), (False, None)])
def test_auto_precision_on_the_cpu_is_bf16_where_it_has_bf16_kernels(monkeypatch, native_bf16, dtype):
    """Both answers on every CPU: the branch for AVX-512 BF16 / AMX CPUs runs here too."""
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: native_bf16)
    assert autocast_dtype("auto", torch.device("cpu")) is dtype


def test_token_budget_sets_the_number_of_steps():
    cfg = TrainConfig(max_steps=None, max_tokens=10_000, micro_batch_size=4, grad_accum_steps=2)
    assert total_steps(cfg, seq_len=32) == 40  # ceil(10,000 / 256)
    with pytest.raises(ValueError, match="exactly one"):
        TrainConfig(max_steps=10, max_tokens=100)


def test_a_warmup_past_the_last_step_is_refused_before_training(tmp_path, init_dir, tokens_dir):
    """The params check refuses it at the first stage; train() called directly does too, instead
    of training with a peak rate it never reaches (here 2 of 3 warm-up steps: 67%)."""
    cfg = TrainConfig(max_steps=2, warmup_steps=3, micro_batch_size=2, precision="fp32")
    with pytest.raises(ConfigError, match=r"^train\.warmup_steps 3 is not below train\.max_steps 2: .* 67% of it"):
        train(cfg, init_dir, tokens_dir, tmp_path / "trained", tmp_path / "live")
    assert not (tmp_path / "trained").exists()


def test_rows_longer_than_the_context_are_refused_before_training(tmp_path, tiny_tokenizer, tokens_dir):
    """Lightning-AI/litgpt#1717: rows of 32 tokens on a model of context 16 trained silently
    (RoPE computes any position) and the model still declared 16."""
    from pretrain.config.model import ModelConfig
    from pretrain.model.build import init_model

    init_model(ModelConfig(preset="debug", max_position_embeddings=16), tiny_tokenizer, tmp_path / "init")
    cfg = TrainConfig(max_steps=2, warmup_steps=1, micro_batch_size=2, precision="fp32")
    with pytest.raises(ConfigError, match=r"^pack\.seq_len: rows of 32 tokens are longer than the context of "
                                          r"the model in .*init, max_position_embeddings 16"):
        train(cfg, tmp_path / "init", tokens_dir, tmp_path / "trained", tmp_path / "live")
    assert not (tmp_path / "trained").exists()


def test_lion_moves_every_coordinate_by_the_learning_rate():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    p.grad = torch.tensor([0.5, -0.1, 0.0])
    Lion([p], lr=0.1, betas=(0.9, 0.99)).step()
    # momentum 0: update = sign(0.1 * grad) -> [+1, -1, 0]
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9, 3.0]))


def test_training_lowers_the_loss_and_logs_every_optimizer_step(tmp_path, init_dir, tokens_dir):
    cfg = TrainConfig(max_steps=40, warmup_steps=2, learning_rate=1e-2, micro_batch_size=4,
                      grad_accum_steps=2, precision="fp32", log_every=1, eval_every=20)
    report = train(cfg, init_dir, tokens_dir, tmp_path / "trained", tmp_path / "live")
    assert report["final_loss"] < report["first_loss"] - 0.5
    assert report["val_loss"] < report["first_loss"]
    assert report["tokens"] == 40 * 4 * 2 * load_rows(tokens_dir, "train").shape[1]
    assert 0 < report["mfu"] < 1 and 0 < report["mfu_measured"]
    assert report["peak_flops"] == nominal_peak("cpu", torch.float32).flops  # the stated peak
    assert report["peak_source"].startswith("nominal CPU peak: ")
    live = tmp_path / "live"
    assert steps_logged(live) == list(range(1, 41))  # the optimizer step, not a log-call count
    for name in ("train/mfu", "train/mfu_measured", "train/memory_gb", "train/tokens_per_second", "train/grad_norm"):
        assert steps_logged(live, name) == list(range(1, 41))
    assert steps_logged(live, "val/loss") == [20, 40]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "trained")
    init = AutoModelForCausalLM.from_pretrained(init_dir)
    assert not torch.equal(model.lm_head.weight, init.lm_head.weight)
    assert (tmp_path / "trained" / "tokenizer.json").exists()
    assert json.loads((tmp_path / "trained" / "config.json").read_text())["use_cache"] is True


def test_same_seed_gives_the_same_model_in_fp32(tmp_path, init_dir, tokens_dir):
    cfg = TrainConfig(max_steps=3, warmup_steps=1, micro_batch_size=2, precision="fp32")
    for name in ("a", "b"):
        train(cfg, init_dir, tokens_dir, tmp_path / name, tmp_path / f"live_{name}")
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_data_loader_workers_do_not_change_the_result(tmp_path, init_dir, tokens_dir):
    base = dict(max_steps=4, warmup_steps=1, micro_batch_size=2, precision="fp32")
    train(TrainConfig(**base), init_dir, tokens_dir, tmp_path / "a", tmp_path / "la")
    train(TrainConfig(**base, num_workers=2), init_dir, tokens_dir, tmp_path / "b", tmp_path / "lb")
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_gives_the_same_curve(tmp_path, init_dir, tokens_dir):
    base = dict(max_steps=3, warmup_steps=1, micro_batch_size=2, precision="fp32")
    plain = train(TrainConfig(**base), init_dir, tokens_dir, tmp_path / "a", tmp_path / "la")
    ckpt = train(TrainConfig(**base, gradient_checkpointing=True), init_dir, tokens_dir,
                 tmp_path / "b", tmp_path / "lb")
    assert ckpt["final_loss"] == pytest.approx(plain["final_loss"], rel=1e-5)


@pytest.mark.parametrize("options", [{"optimizer": "lion", "learning_rate": 1e-3, "precision": "fp32"},
                                     {"precision": "fp16"}, {"precision": "bf16"}])
def test_optimizer_and_precision_options_train(tmp_path, init_dir, tokens_dir, options):
    cfg = TrainConfig(**{"max_steps": 20, "warmup_steps": 2, "learning_rate": 1e-2,
                         "micro_batch_size": 4, **options})
    report = train(cfg, init_dir, tokens_dir, tmp_path / "trained", tmp_path / "live")
    assert report["final_loss"] < report["first_loss"] - 0.3
    assert report["precision"] == options.get("precision", report["precision"])


def test_training_reads_the_rows_of_every_row_shard_in_order(tmp_path, corpus_path, tiny_tokenizer, tokens_dir):
    """Rows split over several row shards (pack.shard_mb) are the rows of one shard, in order;
    validation takes only the first eval_batches micro-batches; no rows is a clear error."""
    from pretrain.config.executor import ExecutorConfig
    from pretrain.config.tokens import PackConfig
    from pretrain.io import row_shards
    from pretrain.tokens.pack import pack
    from pretrain.train.loop import load_data

    pack(PackConfig(seq_len=32, val_fraction=0.2, shard_mb=0.02), ExecutorConfig(workers=1), tiny_tokenizer,
         corpus_path, tmp_path / "packed", tmp_path / "work", tmp_path / "tokens")
    assert len(row_shards(tmp_path / "packed", "train")) > 1 == len(row_shards(tokens_dir.parent / "packed", "train"))
    assert len(list((tmp_path / "tokens").glob("train-*.bin"))) == len(row_shards(tmp_path / "packed", "train"))
    cfg = TrainConfig(micro_batch_size=4, eval_batches=2)
    rows, val = load_data(cfg, tmp_path / "tokens")
    whole, whole_val = load_data(cfg, tokens_dir)
    assert rows[:].dtype == np.int64 and np.array_equal(rows[:], whole[:]) and np.array_equal(val, whole_val)
    assert len(val) == 8 < len(load_rows(tokens_dir, "val"))
    with pytest.raises(DataError, match="no token store"):
        load_rows(tmp_path, "train")


def test_uneven_split_among_processes_is_a_clear_error(tmp_path, init_dir, tokens_dir):
    from pretrain.train.loop import shard_batches
    with pytest.raises(ConfigError, match="split evenly among 2"):
        shard_batches(load_rows(tokens_dir, "train"), TrainConfig(micro_batch_size=3),
                      0, 0, 2, pin=False)


def test_uneven_split_is_caught_before_deepspeed_sees_the_batch_size(init_dir, tokens_dir):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from pretrain.train.loop import Run
    from pretrain.train.objective import LanguageModeling
    launched = SimpleNamespace(device=torch.device("cpu"), is_main_process=True, num_processes=2,
                               distributed_type=DistributedType.MULTI_CPU)
    cfg = TrainConfig(micro_batch_size=3, deepspeed={"zero_optimization": {"stage": 2}})
    with pytest.raises(ConfigError, match="train.micro_batch_size: 3 rows cannot be split evenly"):
        Run(cfg, launched, init_dir, LanguageModeling(tokens_dir), None)


def test_accelerate_fsdp_or_deepspeed_plugin_is_a_clear_error(init_dir, tokens_dir):
    from types import SimpleNamespace

    from accelerate.utils import DistributedType

    from pretrain.train.loop import Run
    from pretrain.train.objective import LanguageModeling
    for kind in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        launched = SimpleNamespace(device=torch.device("cpu"), is_main_process=True,
                                   num_processes=2, distributed_type=kind)
        with pytest.raises(ConfigError, match="train.sharding: full_shard .* or train.deepspeed"):
            Run(TrainConfig(), launched, init_dir, LanguageModeling(tokens_dir), None)


@pytest.mark.parametrize("layout", [{"sharding": "full_shard"},
                                    {"deepspeed": {"zero_optimization": {"stage": 3}}}])
def test_sharding_in_one_process_warns_and_trains_plainly(tmp_path, init_dir, tokens_dir, capsys,
                                                          layout):
    cfg = TrainConfig(max_steps=2, warmup_steps=1, micro_batch_size=4, precision="fp32", **layout)
    report = train(cfg, init_dir, tokens_dir, tmp_path / "model", tmp_path / "live")
    assert "has no effect in one process" in capsys.readouterr().out
    assert report["sharding"] == "none" and report["processes"] == 1


@pytest.mark.parametrize("layout, world, name", [
    ({}, 1, "ddp"), ({}, 2, "ddp"), ({"sharding": "full_shard"}, 1, "ddp"),
    ({"sharding": "shard_grad_op"}, 2, "fsdp"), ({"deepspeed": {"zero_optimization": {"stage": 1}}}, 2,
                                                 "deepspeed")])
def test_the_backend_is_picked_by_name_from_the_train_params(layout, world, name):
    from pretrain.train.backends import BACKENDS, backend_name
    assert backend_name(TrainConfig(**layout), world) == name and name in BACKENDS


def test_deepspeed_config_takes_batch_clipping_and_precision_from_the_train_params():
    cfg = TrainConfig(micro_batch_size=8, grad_accum_steps=2, grad_clip=0.5,
                      deepspeed={"zero_optimization": {"stage": 2}, "gradient_clipping": "auto",
                                 "train_micro_batch_size_per_gpu": 4})
    config = engine_config(cfg, world=2)
    assert config["train_micro_batch_size_per_gpu"] == 4 and config["train_batch_size"] == 16
    assert config["gradient_accumulation_steps"] == 2 and config["gradient_clipping"] == 0.5
    assert config["zero_optimization"] == {"stage": 2}
    assert cfg.deepspeed == {"zero_optimization": {"stage": 2}, "gradient_clipping": "auto",
                             "train_micro_batch_size_per_gpu": 4}  # the params are not changed


def test_deepspeed_reduces_gradients_in_fp32_under_bf16_autocast_as_ddp_does():
    """No bf16 / fp16 section reaches DeepSpeed, so its engine reduces the fp32 gradients of the
    fp32 weights in fp32 (DeepSpeedEngine.communication_data_type: the config's, else fp16 or
    bf16 when enabled, else fp32), as DDP does. Seen in a 2-process ZeRO-3 run with
    ``precision: bf16`` too: ``engine.communication_data_type`` was torch.float32."""
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = TrainConfig(micro_batch_size=8, precision="bf16", deepspeed={"zero_optimization": {"stage": 3}})
    config = DeepSpeedConfig(engine_config(cfg, world=1))  # this process alone: DeepSpeed checks the batch
    assert config.communication_data_type is None
    assert not config.bfloat16_config.enabled and not config.float16_config.enabled


@pytest.mark.parametrize("deepspeed, message", [
    ({"zero_optimization": {"stage": 2}, "bf16": {"enabled": True}},
     r"train.deepspeed.bf16: precision comes from train.precision"),
    ({"zero_optimization": {"stage": 2}, "optimizer": {"type": "Adam"}},
     r"train.deepspeed.optimizer: the optimizer comes from train.optimizer"),
    ({"zero_optimization": {"stage": 2}, "scheduler": {"type": "WarmupLR"}},
     r"train.deepspeed.scheduler: "),
    ({"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": 4},
     r"train.deepspeed.gradient_accumulation_steps: 4 contradicts the train params \(1 for 2 "),
    ({"zero_optimisation": {"stage": 2}}, r"train.deepspeed.zero_optimization.stage: expected 1, "
                                          r"2 or 3, got None"),
    ({"zero_optimization": {"stage": 0}}, r"stage 0 is plain data parallelism"),
    ({"zero_optimization": 2}, r"train.deepspeed.zero_optimization.stage: expected 1, 2 or 3"),
])
def test_a_deepspeed_config_that_contradicts_the_train_params_is_a_clear_error(deepspeed, message):
    with pytest.raises(ConfigError, match=message):
        engine_config(TrainConfig(deepspeed=deepspeed), world=2)


def test_deepspeed_not_installed_is_a_clear_error(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "deepspeed" else real(name, *args))
    with pytest.raises(ConfigError, match=r"DeepSpeed is not installed \(pip install 'pretrain\[deepspeed\]'\)"):
        engine_config(TrainConfig(deepspeed={"zero_optimization": {"stage": 2}}), world=2)


@pytest.mark.parametrize("init, rate, warned", [
    ("pretrained", 2e-3, True), ("upscale", 1e-3, True), ("pretrained", 1e-4, False),
    ("random", 2e-3, False), (None, 2e-3, False)])
def test_a_pretrained_start_at_a_from_scratch_rate_is_warned_in_one_line(tmp_path, init, rate, warned):
    if init:
        (tmp_path / "lineage.json").write_text(json.dumps({"init": init, "base": "models/bases/b"}))
    warning = rate_warning(rate, tmp_path)
    assert bool(warning) == warned
    if warned:
        assert "\n" not in warning and f"model.init: {init}" in warning
        assert "profiles/continued.yaml" in warning
