"""The fine-tuning tasks by name (``finetune.task``): each reads its data once, runs the
training loop with its objective from a backbone, and scores the result.

A task is ``Task(cfg)`` with ``describe()`` (the data: sizes, hashes, what was skipped),
``run(train_cfg, backbone, out_dir, live_dir, checkpoint_dir)`` (one backbone's fine-tune and
scores) and ``compare(backbones)`` (what the backbones' scores say side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.train import TrainConfig
from pretrain.finetune.classify import Classification, LabelledData, test_scores
from pretrain.finetune.labels import SPLITS, data_split, label_names, read_labelled, stratified_split
from pretrain.finetune.sft import SftTask
from pretrain.finetune.tuning import run_summary
from pretrain.runtime import autocast_dtype, pick_device
from pretrain.sources.records import Skipped
from pretrain.train.loop import train

KEY = "finetune.path"


class ClassifyTask:
    """``task: classify``: labelled records (``text_field``, ``label_field``), split by class
    (pretrain.finetune.labels), a sequence classifier per backbone (pretrain.finetune.classify),
    scored on the validation and test splits; the transfer gain is the final backbone's test
    accuracy and macro F1 minus each compared backbone's."""

    def __init__(self, cfg: FinetuneConfig):
        self.cfg, self.skipped = cfg, Skipped()
        examples = read_labelled(cfg.source, cfg.path, cfg.text_field, cfg.label_field, self.skipped,
                                 KEY, hf_split=cfg.hf_split, split_field=cfg.split_field)
        names = label_names(examples, cfg.labels, "finetune", where=cfg.path)
        splits = (data_split(examples, cfg.val_fraction, cfg.split_salt) if cfg.split_field else
                  stratified_split(examples, cfg.val_fraction, cfg.test_fraction, cfg.split_salt))
        self.data = LabelledData(splits, names)

    def describe(self) -> dict[str, Any]:
        return {"labels": self.data.names,
                "examples": {split: len(self.data.splits[split]) for split in SPLITS},
                "split_hashes": self.data.hashes(), "skipped": self.skipped.report()}

    def run(self, tcfg: TrainConfig, backbone: Path, out_dir: Path, live_dir: Path,
            checkpoint_dir: Optional[Path]) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(str(backbone))
        objective = Classification(self.cfg, self.data, tokenizer)
        report = train(tcfg, backbone, None, out_dir, live_dir, checkpoint_dir, objective)
        model = AutoModelForSequenceClassification.from_pretrained(str(out_dir), dtype=torch.float32)
        device = pick_device()
        scores = test_scores(model, objective, device, autocast_dtype(tcfg.precision, device),
                             tcfg.micro_batch_size)
        return {**run_summary(report), **scores}

    def compare(self, backbones: dict[str, dict[str, Any]]) -> dict[str, Any]:
        names = list(backbones)
        first = backbones[names[0]].get("test")
        if not first or len(names) < 2:
            return {}
        return {"transfer_gain": {other: {metric: round(first[metric] - backbones[other]["test"][metric], 4)
                                          for metric in ("accuracy", "f1_macro")}
                                  for other in names[1:]}}


TASKS: dict[str, Callable[[FinetuneConfig], Any]] = {
    "classify": ClassifyTask,
    "sft": SftTask,
}
"""The tasks by ``finetune.task`` name (``none`` is the runner's pass-through)."""
