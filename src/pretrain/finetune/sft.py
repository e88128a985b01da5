"""``finetune.task: sft``: instruction tuning of the causal LM on chat data, loss on the
assistant's tokens only, trained by the project's loop (pretrain.train.loop) as an objective.

One conversation per row, right-padded (pretrain.finetune.chat.sft_rows): rows are not packed
together, so no conversation attends to another. A tokenizer without a chat template gets
ChatML, its two tokens added and the embedding grown as TRL's ``clone_chat_template`` does
(pretrain.finetune.chat). The saved tokenizer maps the literal text of its special tokens to
their ids (``split_special_tokens: false``, transformers' default), as every chat model's does:
``apply_chat_template`` output, which is text with ``<|im_start|>`` in it, must tokenize to the
template's ids, in ``pipeline("text-generation")`` and anywhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.train import TrainConfig
from pretrain.finetune.chat import IGNORE_INDEX, end_of_turn_token, prepare_tokenizer, resize_for_template, sft_rows
from pretrain.finetune.chat_data import read_conversations
from pretrain.finetune.labels import Example, split_hash, stratified_split
from pretrain.finetune.tuning import Tuning, add_lora, run_summary
from pretrain.runtime import autocast, autocast_dtype, pick_device
from pretrain.sources.records import Skipped
from pretrain.train.loop import train

HEAD = "lm_head"
KEY = "finetune.path"


class InstructionTuning(Tuning):
    """The sft objective: rows (N, 2, max_length) int64 (ids; labels, -100 off the assistant's
    tokens); transformers' causal-LM loss (mean over the assistant tokens of the micro-batch);
    validation loss over every held-out conversation's assistant tokens."""

    name = "sft"

    def __init__(self, cfg: FinetuneConfig, splits: dict[str, list], tokenizer: Any, skipped: Skipped):
        super().__init__(cfg)
        self.tokenizer = tokenizer
        self.added = prepare_tokenizer(tokenizer, cfg.template, key="finetune.template")
        self.counts: dict[str, Counter] = {}
        self.rows: dict[str, np.ndarray] = {}
        for split in ("train", "validation"):
            self.counts[split] = Counter()
            if splits[split]:
                self.rows[split] = sft_rows(tokenizer, splits[split], cfg.max_length, skipped, self.counts[split])
        self.seq_len = cfg.max_length

    def load_data(self, cfg: TrainConfig) -> np.ndarray:
        self.check_rows(len(self.rows["train"]), len(self.rows.get("validation", ())), cfg.micro_batch_size)
        return self.rows["train"]

    def data_key(self) -> Any:
        digest = hashlib.sha256(b"".join(self.rows[s].tobytes() for s in sorted(self.rows))).hexdigest()[:16]
        settings = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in ("compare", "model", "prompts")}
        return {"task": self.name, "rows": digest, "added_tokens": self.added, "finetune": settings}

    def load_model(self, cfg: TrainConfig, model_dir: Path) -> torch.nn.Module:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
        resize_for_template(model, self.tokenizer, end_of_turn_token(self.tokenizer))
        model.config.use_cache = False
        if self.cfg.lora_r:
            model = add_lora(model, self.cfg, "CAUSAL_LM", [], self.tokenizer.convert_tokens_to_ids(self.added))
        self.prepare_weights(model, {HEAD}, cfg.gradient_checkpointing)
        model.train()
        return model

    def loss(self, call: Callable[..., Any], batch: torch.Tensor) -> torch.Tensor:
        return call(input_ids=batch[:, 0], labels=batch[:, 1]).loss

    @torch.no_grad()
    def validate(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 dtype: Optional[torch.dtype]) -> dict[str, float]:
        rows = self.rows.get("validation")
        if rows is None:
            return {}
        total, count = 0.0, 0
        for start in range(0, len(rows), cfg.micro_batch_size):
            batch = torch.from_numpy(rows[start:start + cfg.micro_batch_size]).to(device)
            with autocast(device, dtype):
                logits = model(input_ids=batch[:, 0]).logits
            labels = batch[:, 1, 1:]
            total += torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((labels != IGNORE_INDEX).sum())
        return {"val/loss": total / count} if count else {}

    def save(self, model: torch.nn.Module, model_dir: Path, out_dir: Path,
             weights: Optional[dict[str, torch.Tensor]]) -> None:
        self.tokenizer.split_special_tokens = False  # chat text maps <|im_start|> to its id
        super().save(model, model_dir, out_dir, weights)

    def report(self) -> dict[str, Any]:
        counts = {split: dict(sorted(c.items())) for split, c in self.counts.items()}
        return {**super().report(), "added_tokens": self.added, "rows": counts}


@torch.no_grad()
def answers(model_dir: Path, prompts: list[str], max_new_tokens: int) -> list[dict[str, str]]:
    """Greedy answers of the chat model in ``model_dir`` to each prompt as a user message,
    rendered by its chat template with the generation prompt."""
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    device = pick_device()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
    found = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_dict=True, return_tensors="pt")["input_ids"].to(device)
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        found.append({"prompt": prompt, "answer": tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)})
    return found


def unique(conversations: list[tuple[str, list]]) -> tuple[list[tuple[str, list]], int]:
    """The conversations with an id an earlier one has renamed ``<id>#2``, ``<id>#3``, ... (as
    the readers make file ids unique), and how many were renamed."""
    seen: set[str] = set()
    found, renamed = [], 0
    for conv_id, messages in conversations:
        new, n = conv_id, 1
        while new in seen:
            n += 1
            new = f"{conv_id}#{n}"
        renamed += new != conv_id
        seen.add(new)
        found.append((new, messages))
    return found, renamed


class SftTask:
    """``task: sft``: chat records (pretrain.finetune.chat_data), a held-out share of the
    conversations (a salted hash of their ids), the instruction-tuned model per backbone,
    its validation loss and greedy answers to ``prompts``; the gain is each compared backbone's
    validation loss minus the first's (nats per assistant token)."""

    def __init__(self, cfg: FinetuneConfig):
        self.cfg, self.skipped = cfg, Skipped()
        conversations, self.made_unique = unique(read_conversations(cfg.path, cfg.format, self.skipped, KEY))
        by_id = dict(conversations)
        split = stratified_split([Example(i, "", "") for i in by_id], cfg.val_fraction, 0.0, cfg.split_salt)
        self.splits = {name: [(ex.id, by_id[ex.id]) for ex in split[name]] for name in ("train", "validation")}
        self.hashes = {name: split_hash(split[name]) for name in ("train", "validation")}

    def describe(self) -> dict[str, Any]:
        return {"examples": {name: len(rows) for name, rows in self.splits.items()},
                "split_hashes": self.hashes, "ids_made_unique": self.made_unique,
                "skipped": self.skipped.report()}

    def run(self, tcfg: TrainConfig, backbone: Path, out_dir: Path, live_dir: Path,
            checkpoint_dir: Optional[Path]) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(str(backbone))
        skipped = Skipped()  # by the template, which is the backbone tokenizer's
        objective = InstructionTuning(self.cfg, self.splits, tokenizer, skipped)
        report = train(tcfg, backbone, None, out_dir, live_dir, checkpoint_dir, objective)
        found = {**run_summary(report), "rows": report["rows"],
                 "skipped": skipped.report()}
        device = pick_device()
        model = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32).to(device).eval()
        scores = objective.validate(model, tcfg, device, autocast_dtype(tcfg.precision, device))
        if scores:
            found["val_loss"] = scores["val/loss"]  # of the saved model (the best step's with early stopping)
        if self.cfg.prompts:
            found["answers"] = answers(out_dir, self.cfg.prompts, self.cfg.max_new_tokens)
        return found

    def compare(self, backbones: dict[str, dict[str, Any]]) -> dict[str, Any]:
        names = list(backbones)
        first = backbones[names[0]].get("val_loss")
        if first is None or len(names) < 2:
            return {}
        return {"transfer_gain": {other: {"val_loss": round(backbones[other]["val_loss"] - first, 4)}
                                  for other in names[1:]}}
