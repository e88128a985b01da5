"""``finetune.task: classify``: a sequence classifier on the pretrained model, trained by the
project's loop (pretrain.train.loop) as an objective.

The model is transformers' ``AutoModelForSequenceClassification`` on the backbone (for Llama:
``LlamaForSequenceClassification``, a linear ``score`` head over the hidden state of the last
token that is not padding, found from ``config.pad_token_id``), with the class names in
``config.id2label``, so ``pipeline("text-classification", model=...)`` names them. Rows are
right-padded (pretrain.finetune.labels.encode): under causal attention no token attends to the
padding after it, so no attention mask is needed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.train import TrainConfig
from pretrain.errors import DataError
from pretrain.finetune.labels import Encoded, Example, encode, split_hash
from pretrain.finetune.metrics import LOSSES, class_weights, classification_metrics
from pretrain.finetune.tuning import Tuning, add_lora
from pretrain.runtime import autocast

PAD = "<pad>"
"""The pad token given to a backbone's tokenizer that has none."""

HEAD = "score"
"""The head's module in transformers' decoder sequence classifiers (Llama, Mistral, Qwen2...)."""


@dataclasses.dataclass(frozen=True)
class LabelledData:
    """The examples of each split and the class names (index = label id)."""

    splits: dict[str, list[Example]]
    names: list[str]

    def hashes(self) -> dict[str, str]:
        """Each split's hash (pretrain.finetune.labels.split_hash)."""
        return {name: split_hash(examples) for name, examples in self.splits.items()}


def rows_digest(rows: dict[str, np.ndarray]) -> str:
    """sha256 (16 hex) of the encoded rows of every split, in split order."""
    digest = hashlib.sha256()
    for name in sorted(rows):
        digest.update(name.encode() + rows[name].tobytes())
    return digest.hexdigest()[:16]


class Classification(Tuning):
    """The classify objective: rows (N, max_length + 1) int64 of ids then the label id; the
    loss by name (``finetune.loss``: cross-entropy, class-weighted cross-entropy, focal);
    validation accuracy, macro F1 and loss; the head's rate, freezing, LoRA and early stopping
    from ``Tuning``."""

    name = "classify"

    def __init__(self, cfg: FinetuneConfig, data: LabelledData, tokenizer: Any):
        super().__init__(cfg)
        self.data, self.tokenizer = data, tokenizer
        # a backbone without a pad token (Llama's) gets one: padding is how the head finds the
        # last token, and the embedding grows by a row (load_model)
        self.added = [] if tokenizer.pad_token is not None else [PAD]
        if self.added:
            tokenizer.add_special_tokens({"pad_token": PAD})
        self.rows: dict[str, np.ndarray] = {}
        self.truncated = 0
        for split, examples in data.splits.items():
            encoded: Encoded = encode(tokenizer, examples, data.names, cfg.max_length)
            self.rows[split], self.truncated = encoded.rows, self.truncated + encoded.truncated
        self.seq_len = cfg.max_length
        train_labels = self.rows["train"][:, -1]
        # balanced class weights for weighted_cross_entropy; focal loss focuses by gamma alone
        self.weight = (class_weights(train_labels, len(data.names))
                       if cfg.loss == "weighted_cross_entropy" else None)

    def load_data(self, cfg: TrainConfig) -> np.ndarray:
        self.check_rows(len(self.rows["train"]), len(self.rows["validation"]), cfg.micro_batch_size)
        return self.rows["train"]

    def data_key(self) -> Any:
        settings = {k: v for k, v in dataclasses.asdict(self.cfg).items() if k not in ("compare", "model")}
        return {"task": self.name, "rows": rows_digest(self.rows), "names": self.data.names,
                "finetune": settings}

    def load_model(self, cfg: TrainConfig, model_dir: Path) -> torch.nn.Module:
        names = self.data.names
        model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), dtype=torch.float32, use_safetensors=True, num_labels=len(names),
            id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
            pad_token_id=self.tokenizer.pad_token_id)
        if len(self.tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(self.tokenizer), mean_resizing=True)
        model.config.use_cache = False
        if self.cfg.lora_r:
            model = add_lora(model, self.cfg, "SEQ_CLS", [HEAD])
        self.prepare_weights(model, {HEAD}, cfg.gradient_checkpointing)
        model.train()
        return model

    def loss(self, call: Callable[..., Any], batch: torch.Tensor) -> torch.Tensor:
        logits = call(input_ids=batch[:, :-1]).logits
        weight = None if self.weight is None else self.weight.to(logits.device)
        return LOSSES[self.cfg.loss](logits.float(), batch[:, -1], weight, self.cfg.focal_gamma)

    def validate(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 dtype: Optional[torch.dtype]) -> dict[str, float]:
        rows = self.rows["validation"]
        if not len(rows):
            return {}
        logits = predict(model, rows, cfg.micro_batch_size, device, dtype)
        labels = torch.from_numpy(rows[:, -1])
        scores = classification_metrics(rows[:, -1], logits.argmax(-1).numpy(), self.data.names)
        loss = LOSSES[self.cfg.loss](logits, labels, self.weight, self.cfg.focal_gamma).item()
        return {"val/loss": loss, "val/accuracy": scores["accuracy"], "val/f1_macro": scores["f1_macro"]}

    def report(self) -> dict[str, Any]:
        return {**super().report(), "truncated_examples": self.truncated, "added_tokens": self.added}


@torch.no_grad()
def predict(model: torch.nn.Module, rows: np.ndarray, batch_size: int, device: torch.device,
            dtype: Optional[torch.dtype]) -> torch.Tensor:
    """Class logits (N, classes) float32 on the CPU of rows (N, max_length + 1) int64."""
    out = []
    for start in range(0, len(rows), batch_size):
        ids = torch.from_numpy(rows[start:start + batch_size, :-1]).to(device)
        with autocast(device, dtype):
            out.append(model(input_ids=ids).logits.float().cpu())
    if not out:
        raise DataError("finetune: no rows to score")
    return torch.cat(out)


def test_scores(model: torch.nn.Module, objective: Classification, device: torch.device,
                dtype: Optional[torch.dtype], batch_size: int) -> dict[str, Any]:
    """The fine-tuned model's scores on the test split (and validation split), each
    pretrain.finetune.metrics.classification_metrics; {} for a split without examples."""
    model.eval()
    scores = {}
    for split in ("validation", "test"):
        rows = objective.rows[split]
        if len(rows):
            logits = predict(model, rows, batch_size, device, dtype)
            scores[split] = classification_metrics(rows[:, -1], logits.argmax(-1).numpy(),
                                                   objective.data.names)
    return scores
