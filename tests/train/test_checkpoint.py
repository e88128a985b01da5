"""Never lose a run: checkpoints resume bit for bit, curves have no gap and no duplicate, and a
checkpoint from another experiment is never resumed."""

import os
import shutil
import signal

import pytest
import torch
from transformers import AutoModelForCausalLM

import pretrain.train.loop
from pretrain.config.train import TrainConfig
from pretrain.token_store import read_manifest
from pretrain.train import checkpoint
from pretrain.train.loop import train

CFG = dict(max_steps=8, warmup_steps=2, learning_rate=1e-2, micro_batch_size=4, grad_accum_steps=2,
           precision="fp32", log_every=1, eval_every=4, checkpoint_every=3)


def tsv(live_dir, name):
    return (live_dir / f"plots/metrics/{name}.tsv").read_text().splitlines()


def column(live_dir, name, header):
    rows = [row.split("\t") for row in tsv(live_dir, name)]
    index = rows[0].index(header)
    return [row[index] for row in rows[1:]]


def steps(live_dir, name="train/loss"):
    return [int(step) for step in column(live_dir, name, "step")]


def values(live_dir, name):
    return column(live_dir, name, name.split("/")[-1])


def weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def crash_at(monkeypatch, at_step, action):
    """Run ``action`` when optimizer step ``at_step`` (0-based) begins."""
    real = pretrain.train.loop.lr_at

    def lr_at(step, *args):
        if step == at_step:
            action()
        return real(step, *args)

    monkeypatch.setattr(pretrain.train.loop, "lr_at", lr_at)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, init_dir, tokens_dir):
    out = tmp_path_factory.mktemp("uninterrupted")
    report = train(TrainConfig(**CFG), init_dir, tokens_dir, out / "model", out / "live", out / "ckpt")
    return out, report


def test_a_killed_run_resumes_to_the_same_model_and_curves(tmp_path, monkeypatch, init_dir,
                                                           tokens_dir, uninterrupted):
    def die():
        raise SystemExit("killed")  # as abrupt as kill -9 for the loop: no handler runs

    crash_at(monkeypatch, 7, die)  # steps 1..7 done, checkpoints at 3 and 6 (only 6 kept)
    with pytest.raises(SystemExit):
        train(TrainConfig(**CFG), init_dir, tokens_dir, tmp_path / "model", tmp_path / "live",
              tmp_path / "ckpt")
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["step-00000006"]
    assert steps(tmp_path / "live") == list(range(1, 8))  # step 7 was logged before the crash
    monkeypatch.undo()
    # dvc repro deletes the log folder (a plain output, so that the run cache can restore the
    # stage) before it reruns train: the curves up to step 6 come back from the checkpoint.
    shutil.rmtree(tmp_path / "live")

    report = train(TrainConfig(**CFG), init_dir, tokens_dir, tmp_path / "model", tmp_path / "live",
                   tmp_path / "ckpt")
    ref_dir, ref = uninterrupted
    a, b = weights(ref_dir / "model"), weights(tmp_path / "model")
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert steps(tmp_path / "live") == list(range(1, 9))  # no gap, step 7 not twice
    assert steps(tmp_path / "live", "val/loss") == [4, 8]
    for name in ("train/loss", "train/learning_rate", "train/grad_norm", "val/loss"):
        assert values(tmp_path / "live", name) == values(ref_dir / "live", name)
    assert {k: report[k] for k in ("first_loss", "final_loss", "val_loss")} == \
           {k: ref[k] for k in ("first_loss", "final_loss", "val_loss")}
    assert not list((tmp_path / "ckpt").iterdir())  # finished: the model is the artifact


def test_ctrl_c_saves_a_checkpoint_at_the_step_boundary(tmp_path, monkeypatch, init_dir,
                                                        tokens_dir, uninterrupted):
    crash_at(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGINT))
    # What the process had before: Python's default_int_handler, or SIG_IGN when the test run
    # was started in the background by a non-interactive shell (`.ci/run &`), which ignores
    # SIGINT for background jobs; the run must put back whichever it found.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="after step 5"):
        train(TrainConfig(**CFG), init_dir, tokens_dir, tmp_path / "model", tmp_path / "live",
              tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-00000005"]
    assert signal.getsignal(signal.SIGINT) is before  # handler restored
    monkeypatch.undo()
    train(TrainConfig(**CFG), init_dir, tokens_dir, tmp_path / "model", tmp_path / "live",
          tmp_path / "ckpt")
    a, b = weights(uninterrupted[0] / "model"), weights(tmp_path / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert steps(tmp_path / "live") == list(range(1, 9))


def test_another_experiments_checkpoint_is_not_resumed(tmp_path, monkeypatch, init_dir, tokens_dir):
    def die():
        raise SystemExit("killed")

    crash_at(monkeypatch, 4, die)
    with pytest.raises(SystemExit):
        train(TrainConfig(**CFG), init_dir, tokens_dir, tmp_path / "m", tmp_path / "live",
              tmp_path / "ckpt")
    monkeypatch.undo()
    other = TrainConfig(**{**CFG, "learning_rate": 3e-3})  # a dvc exp run -S variant
    printed = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    train(other, init_dir, tokens_dir, tmp_path / "m", tmp_path / "live", tmp_path / "ckpt")
    assert not any("resuming" in line for line in printed)
    assert steps(tmp_path / "live") == list(range(1, 9))  # fresh curves, not appended


def test_the_key_ignores_logging_but_not_the_data_or_the_params(tmp_path, init_dir, tokens_dir):
    train_shards = read_manifest(tokens_dir)["splits"]["train"]["shards"]
    key = checkpoint.run_key(TrainConfig(**CFG), init_dir, train_shards)
    assert key == checkpoint.run_key(TrainConfig(**{**CFG, "log_every": 5, "eval_every": 0}),
                                     init_dir, train_shards)
    assert key != checkpoint.run_key(TrainConfig(**{**CFG, "seed": 1}), init_dir, train_shards)
    other_data = [{**train_shards[0], "blake2b": "0" * 32}, *train_shards[1:]]
    assert key != checkpoint.run_key(TrainConfig(**CFG), init_dir, other_data)
    assert key != checkpoint.run_key(TrainConfig(**CFG), init_dir, [*train_shards, train_shards[0]])


def test_a_half_written_checkpoint_is_ignored(tmp_path, init_dir, tokens_dir):
    (tmp_path / "ckpt" / ".step-00000003.tmp-1234").mkdir(parents=True)
    (tmp_path / "ckpt" / "step-00000006").mkdir()  # no state.json: not complete
    key = checkpoint.run_key(TrainConfig(**CFG), init_dir, read_manifest(tokens_dir)["splits"]["train"]["shards"])
    assert checkpoint.find(tmp_path / "ckpt", key) is None
