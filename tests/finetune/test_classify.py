"""finetune task classify end to end on a made task: the label is the first word of the text."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.model import ModelConfig
from pretrain.config.tokens import TokenizerConfig
from pretrain.config.train import TrainConfig
from pretrain.errors import ConfigError, DataError
from pretrain.finetune.runner import MANIFEST, finetune

WORDS = "the of and a to in is it that for on with as was by at be this from or an are".split()


def write_task(path: Path, n: int = 400, shuffled: bool = False, seed: int = 0) -> Path:
    """JSON lines whose label is the text's first word (cat / dog); ``shuffled``: labels drawn
    independently of the text."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        word = rng.choice(["cat", "dog"])
        label = rng.choice(["cat", "dog"]) if shuffled else word
        text = word + " " + " ".join(rng.choice(WORDS) for _ in range(12))
        lines.append(json.dumps({"id": f"r{i}", "text": text, "label": label}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def task_root(tmp_path_factory) -> Path:
    """The made task's data and a random init (debug preset) with a tokenizer trained on it."""
    from pretrain.model.build import init_model
    from pretrain.tokens.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("classify")
    data = write_task(root / "data.jsonl")
    write_task(root / "shuffled.jsonl", shuffled=True)
    texts = [json.loads(line)["text"] for line in data.read_text().splitlines()]
    init_model(ModelConfig(preset="debug"), train_bpe(TokenizerConfig(vocab_size=300), iter(texts)),
               root / "init")
    return root


def config(root: Path, **overrides) -> FinetuneConfig:
    settings = dict(task="classify", path=str(root / "data.jsonl"), compare=[], max_steps=60,
                    warmup_steps=5, learning_rate=1e-3, micro_batch_size=16, max_length=24,
                    eval_every=20, checkpoint_every=0)
    return FinetuneConfig(**{**settings, **overrides})


def run(root: Path, out: Path, cfg: FinetuneConfig, ckpt: Path | None = None) -> dict:
    return finetune(cfg, TrainConfig(precision="fp32"), root / "init", root / "init", out / "model",
                    out / "live", ckpt)


def test_learns_a_one_token_label_and_not_shuffled_labels(task_root, tmp_path):
    report = run(task_root, tmp_path / "a", config(task_root))
    assert report["backbones"]["final"]["test"]["accuracy"] >= 0.9
    assert report["examples"] == {"train": 320, "validation": 40, "test": 40}
    shuffled = run(task_root, tmp_path / "b", config(task_root, path=str(task_root / "shuffled.jsonl")))
    # near chance: a split that leaked test examples into training would score high here
    assert 0.25 <= shuffled["backbones"]["final"]["test"]["accuracy"] <= 0.75


def test_the_model_loads_in_a_transformers_pipeline_with_its_label_names(task_root, tmp_path):
    from transformers import pipeline

    run(task_root, tmp_path, config(task_root))
    classify = pipeline("text-classification", model=str(tmp_path / "model"), device="cpu")
    answers = classify(["cat the of and a", "dog the of and a"])
    assert [a["label"] for a in answers] == ["cat", "dog"]
    assert json.loads((tmp_path / "model" / MANIFEST).read_text())["task"] == "classify"


def body(folder: Path) -> dict[str, torch.Tensor]:
    weights = load_file(str(folder / "model.safetensors"))
    return {k.removeprefix("model."): v for k, v in weights.items()
            if not k.startswith(("score", "lm_head"))}


def test_head_only_freeze_leaves_the_body_bit_identical(task_root, tmp_path):
    run(task_root, tmp_path, config(task_root, freeze="all_but_head", max_steps=20))
    init, tuned = body(task_root / "init"), body(tmp_path / "model")
    assert tuned.keys() == init.keys()
    assert all(torch.equal(init[k], tuned[k]) for k in init)
    full = tmp_path / "full"
    run(task_root, full, config(task_root, max_steps=20))
    assert not all(torch.equal(init[k], body(full / "model")[k]) for k in init)


def test_last_k_trains_the_top_block_only_until_gradual_unfreezing_reaches_the_next(task_root, tmp_path):
    cfg = config(task_root, freeze="last_k", unfreeze_last_k=1, max_steps=10)
    run(task_root, tmp_path / "k", cfg)
    init, tuned = body(task_root / "init"), body(tmp_path / "k" / "model")
    changed = {k for k in init if not torch.equal(init[k], tuned[k])}
    assert changed and all(k.startswith(("layers.1.", "norm.")) for k in changed)
    run(task_root, tmp_path / "g", dataclasses.replace(cfg, gradual_unfreeze_every=5))
    gradual = body(tmp_path / "g" / "model")
    assert any(not torch.equal(init[k], gradual[k]) for k in init if k.startswith("layers.0."))
    assert torch.equal(init["embed_tokens.weight"], gradual["embed_tokens.weight"])


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("settings, stop", [
    (dict(max_steps=40, eval_every=10, checkpoint_every=10, early_stopping_metric="loss",
          early_stopping_patience=10), 25),
    # resumed between two unfreezings: the depth of the resumed step, and the optimizer state
    # of the blocks unfrozen before the checkpoint, restored
    (dict(max_steps=16, freeze="last_k", gradual_unfreeze_every=3, checkpoint_every=4, eval_every=8), 6),
], ids=["early_stopping", "gradual_unfreezing"])
def test_resume_is_bit_exact(task_root, tmp_path, monkeypatch, settings, stop):
    from pretrain.finetune.classify import Classification

    cfg = config(task_root, **settings)
    whole = run(task_root, tmp_path / "whole", cfg, tmp_path / "ckpt-whole")
    original = Classification.before_step

    def stop_there(self, step, model):
        if step == stop:
            raise Interrupt
        original(self, step, model)

    monkeypatch.setattr(Classification, "before_step", stop_there)
    with pytest.raises(Interrupt):
        run(task_root, tmp_path / "cut", cfg, tmp_path / "ckpt")
    monkeypatch.setattr(Classification, "before_step", original)
    resumed = run(task_root, tmp_path / "cut", cfg, tmp_path / "ckpt")
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["backbones"]["final"].get("early_stopping") == whole["backbones"]["final"].get("early_stopping")


def test_early_stopping_without_validation_examples_is_refused(task_root, tmp_path):
    with pytest.raises(ConfigError, match="finetune.early_stopping_metric: no validation example"):
        run(task_root, tmp_path, config(task_root, val_fraction=0.0, early_stopping_metric="loss"))


def test_compared_backbones_share_the_split_and_report_the_gain(task_root, tmp_path):
    report = run(task_root, tmp_path, config(task_root, compare=["init"], max_steps=10))
    final, init = report["backbones"]["final"], report["backbones"]["init"]
    assert final["model_hash"] == init["model_hash"]  # here the final model is the init itself
    assert final["steps"] == init["steps"] == 10
    assert report["transfer_gain"]["init"] == {"accuracy": 0.0, "f1_macro": 0.0}
    assert set(report["split_hashes"]) == {"train", "validation", "test"}


def test_lora_trains_and_saves_a_plain_model(task_root, tmp_path):
    report = run(task_root, tmp_path, config(task_root, lora_r=4, learning_rate=3e-3))
    assert report["backbones"]["final"]["test"]["accuracy"] >= 0.9
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert not any("lora" in k for k in weights)


def test_the_data_s_own_splits_are_kept(task_root, tmp_path):
    lines = [json.loads(line) for line in (task_root / "data.jsonl").read_text().splitlines()]
    names = ["train"] * 300 + ["dev"] * 50 + ["TEST"] * 48 + ["holdout", None]
    path = tmp_path / "split.jsonl"
    path.write_text("".join(json.dumps({**line, "part": name}) + "\n" for line, name in zip(lines, names)))
    report = run(task_root, tmp_path, config(task_root, path=str(path), split_field="part", max_steps=6))
    assert report["examples"] == {"train": 300, "validation": 50, "test": 48}
    assert report["skipped"]["skipped"] == {"missing_split_field": 1, "unknown_split": 1}  # records


@pytest.mark.parametrize("lines, expected", [
    ([{"text": "a b c", "label": "x"}] * 20, "only one class"),
    ([{"body": "a b c", "label": "x"}] * 20, "missing_text_field"),
])
def test_bad_data_stops_in_one_line(task_root, tmp_path, lines, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(DataError, match=expected) as info:
        run(task_root, tmp_path, config(task_root, path=str(path)))
    assert "\n" not in str(info.value)


def test_task_none_is_a_pass_through(tmp_path):
    report = finetune(FinetuneConfig(), TrainConfig(), tmp_path / "t", tmp_path / "i", tmp_path / "out",
                      tmp_path / "live", None)
    assert report == {"task": "none"}
    assert [p.name for p in (tmp_path / "out").iterdir()] == [MANIFEST]
    assert (tmp_path / "live").is_dir()


def test_a_backbone_without_a_pad_token_gets_one(task_root, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "nopad"
    shutil.copytree(task_root / "init", folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.pad_token = None
    tokenizer.save_pretrained(str(folder))
    assert AutoTokenizer.from_pretrained(str(folder)).pad_token is None
    report = finetune(config(task_root, max_steps=30), TrainConfig(precision="fp32"), folder, folder,
                      tmp_path / "model", tmp_path / "live", None)
    assert report["backbones"]["final"]["added_tokens"] == ["<pad>"]
    assert report["backbones"]["final"]["test"]["accuracy"] >= 0.9
