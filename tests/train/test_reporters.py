"""Training curves: DVCLive always, TensorBoard and W&B on request, and no duplicated steps
after a resume."""

import pytest

from pretrain.config.train import TrainConfig
from pretrain.errors import ConfigError
from pretrain.train.loop import train
from pretrain.train.reporters import Reporters, truncate_tsv


def test_truncate_keeps_the_header_and_the_steps_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "loss.tsv"
    path.write_text("step\tloss\n1\t3.0\n2\t2.5\n3\t2.4\n4\t2.2\n")
    truncate_tsv(path, 2)
    assert path.read_text() == "step\tloss\n1\t3.0\n2\t2.5\n"


def test_unknown_reporter_is_a_params_error():
    with pytest.raises(ValueError, match="report_to"):
        TrainConfig(report_to=["mlflow"])


def test_tensorboard_gets_every_step(tmp_path, init_dir, tokens_dir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(max_steps=5, warmup_steps=1, micro_batch_size=2, precision="fp32",
                      log_every=1, report_to=["tensorboard"])
    train(cfg, init_dir, tokens_dir, tmp_path / "model", tmp_path / "live")
    events = EventAccumulator(str(tmp_path / "live" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5]
    assert "train/mfu" in events.Tags()["scalars"]


def test_wandb_offline_run_logs_the_steps(tmp_path, monkeypatch, init_dir, tokens_dir):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no API key, no network: a local run folder
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = TrainConfig(max_steps=3, warmup_steps=1, micro_batch_size=2, precision="fp32",
                      log_every=1, report_to=["wandb"])
    train(cfg, init_dir, tokens_dir, tmp_path / "model", tmp_path / "live")
    runs = list((tmp_path / "live" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_a_missing_optional_package_is_a_one_line_error(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(ConfigError, match=r"pip install 'pretrain\[wandb\]'"):
        Reporters(["wandb"], tmp_path / "live", None, {}, run_id="x")
