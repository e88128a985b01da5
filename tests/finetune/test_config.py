"""The finetune section's checks: one line naming the key, before any stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pretrain.config import load_all
from pretrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def params_with(tmp_path: Path, finetune: dict, export: dict | None = None) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["finetune"].update(finetune)
    params["export"].update(export or {})
    (tmp_path / "labels.jsonl").write_text('{"text": "a", "label": "x"}\n')
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("finetune, export, message", [
    ({"task": "classify"}, None, "finetune.path: task classify needs its data"),
    ({"task": "sft", "freeze": "all_but_head"}, None, "freeze: not read by task sft"),
    ({"task": "sft", "text_field": "body"}, None, "text_field: not read by task sft"),
    ({"task": "classify", "template": "chatml"}, None, "template: sft only (task is classify)"),
    ({"task": "classify", "lora_r": 4, "freeze": "last_k"}, None, "freeze: last_k with lora_r 4"),
    ({"task": "classify", "unfreeze_last_k": 2}, None, "unfreeze_last_k: read by freeze last_k only"),
    ({"task": "classify", "split_field": "part", "test_fraction": 0.2}, None, "test_fraction: not read with split_field"),
    ({"task": "classify", "compare": ["init", "init"]}, None, "compare: two backbones of one name (final, init, init)"),
    ({"task": "classify", "prompts": ["hi"]}, None, "prompts: sft only"),
    ({"task": "classify", "focal_gamma": 1.0}, None, "focal_gamma: read by loss focal only"),
    ({"task": "sft", "early_stopping_metric": "accuracy"}, None, "early_stopping_metric"),
    ({"task": "classify", "gradual_unfreeze_every": 5}, None, "needs freeze all_but_head or last_k"),
    ({"task": "classify", "val_fraction": 0.5, "test_fraction": 0.5}, None, "must leave examples"),
    ({"task": "classify", "path": "nowhere/*.jsonl"}, None, "finetune.path: nothing matches"),
    ({"task": "classify"}, {"model": "finetuned"}, "export.model: finetuned exports the sft model"),
    ({"task": "clasify"}, None, "finetune.task: expected one of"),
])
def test_bad_finetune_params_stop_in_one_line(tmp_path, finetune, export, message):
    if finetune.get("task") in ("classify", "sft") and "path" not in finetune and "needs its data" not in message:
        finetune = {**finetune, "path": str(tmp_path / "labels.jsonl")}
    with pytest.raises(ConfigError) as info:
        load_all(params_with(tmp_path, finetune, export))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_default_and_a_classify_set_up_load(tmp_path):
    configs = load_all(params_with(tmp_path, {"task": "classify", "path": str(tmp_path / "labels.jsonl"),
                                              "loss": "focal", "focal_gamma": 1.0}))
    assert configs["finetune"].loss == "focal"
    assert load_all(ROOT / "params.yaml")["finetune"].task == "none"
