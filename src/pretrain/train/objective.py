"""What the training loop optimizes: its data, model, loss and validation, one object per
objective. The loop (pretrain.train.loop.Run) owns the steps, schedule, precision, backends,
logging and checkpoints; an objective supplies the rest, so the causal-LM pretraining run and
the fine-tunes (pretrain.finetune: a classifier, instruction tuning) share one loop, with its
bit-exact resume, per-step curves and atomic outputs.

=================  ===============================================  ==========================
objective          rows (int64)                                     loss
=================  ===============================================  ==========================
LanguageModeling   (rows, seq_len) token ids, lazily from the store  next-token cross-entropy
Classification     (rows, max_length + 1): ids, then the label      cross-entropy / focal
                   (pretrain.finetune.classify)
InstructionTuning  (rows, 2, max_length): ids, labels (-100: no     cross-entropy on assistant
                   loss) (pretrain.finetune.sft)                    tokens
=================  ===============================================  ==========================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.config.train import TrainConfig
from pretrain.io import atomic_path
from pretrain.runtime import (
    check_batch,
    check_context,
    enable_activation_checkpointing,
    load_rows,
    validation_loss,
)
from pretrain.token_store import PackedRows, has_split, read_manifest


class Objective:
    """The base: no extra state, no early stop, default parameter groups. Subclasses set
    ``name`` and ``seq_len`` (tokens per row) and implement ``load_data``, ``data_key``,
    ``load_model``, ``loss``, ``validate`` and ``save``."""

    name = "objective"
    seq_len = 0
    section = "train"  # the params section whose keys the loop's messages name

    def begin(self, step: int) -> None:
        """Told, before ``load_model``, the optimizer step the run starts at (0, or the step of
        the checkpoint it resumes from)."""

    def load_data(self, cfg: TrainConfig) -> Any:
        """The training rows (an int64 array or ``PackedRows``; indexable by an index array);
        sets ``seq_len`` and keeps what ``validate`` needs."""
        raise NotImplementedError

    def data_key(self) -> Any:
        """JSON-able description of the data and the objective's own settings, hashed into
        the run key (pretrain.train.checkpoint.run_key): a checkpoint resumes only its run."""
        raise NotImplementedError

    def load_model(self, cfg: TrainConfig, model_dir: Path) -> torch.nn.Module:
        """The model to train, fp32, in training mode, on the CPU."""
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> Optional[list[dict]]:
        """Optimizer parameter groups of ``model`` as the backend has placed it (called by the
        backend: FSDP replaces the parameters when it shards); a group's ``lr_scale``
        multiplies the scheduled learning rate. None: the loop's default
        (pretrain.train.optim.param_groups)."""
        return None

    def before_step(self, step: int, model: torch.nn.Module) -> None:
        """Called before optimizer step ``step`` (0-based), e.g. to unfreeze layers."""

    def loss(self, call: Callable[..., Any], batch: torch.Tensor) -> torch.Tensor:
        """The mean loss of one micro-batch (a 0-dim tensor); ``call`` is the (wrapped,
        compiled) model."""
        raise NotImplementedError

    def validate(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 dtype: Optional[torch.dtype]) -> dict[str, float]:
        """Validation metrics named ``val/<name>`` ({} without validation data)."""
        raise NotImplementedError

    def after_validation(self, step: int, metrics: dict[str, float], model: torch.nn.Module) -> bool:
        """Told each validation's metrics (main process); True stops the run early."""
        return False

    def state(self) -> dict[str, Any]:
        """JSON-able state a checkpoint keeps (restored by ``load_state``)."""
        return {}

    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """Tensors a checkpoint keeps beside the model: ``{file stem: tensors}``."""
        return {}

    def load_state(self, state: dict[str, Any], folder: Path) -> None:
        """Restore ``state`` and the tensors saved in the checkpoint ``folder``."""

    def save(self, model: torch.nn.Module, model_dir: Path, out_dir: Path,
             weights: Optional[dict[str, torch.Tensor]]) -> None:
        """Write the trained model to ``out_dir`` (atomically)."""
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """What the objective adds to the run's report."""
        return {}


class LanguageModeling(Objective):
    """Causal-LM pretraining on the packed rows of the token store in ``data_dir``
    (pretrain.token_store): (rows, seq_len) int64 token ids, next-token cross-entropy."""

    name = "causal_lm"

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def load_data(self, cfg: TrainConfig) -> PackedRows:
        rows, self.val_rows = load_data(cfg, self.data_dir)
        self.seq_len = rows.shape[1]
        return rows

    def data_key(self) -> Any:
        return read_manifest(self.data_dir)["splits"]["train"]["shards"]

    def load_model(self, cfg: TrainConfig, model_dir: Path) -> torch.nn.Module:
        model = load_model(cfg, model_dir)
        check_context(model.config, self.seq_len, str(model_dir))
        return model

    def loss(self, call: Callable[..., Any], batch: torch.Tensor) -> torch.Tensor:
        return call(input_ids=batch, labels=batch).loss

    def validate(self, model: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                 dtype: Optional[torch.dtype]) -> dict[str, float]:
        if self.val_rows is None or not len(self.val_rows):
            return {}
        return {"val/loss": validation_loss(model, self.val_rows, cfg.micro_batch_size, None,
                                            device, dtype)["loss"]}

    def save(self, model: torch.nn.Module, model_dir: Path, out_dir: Path,
             weights: Optional[dict[str, torch.Tensor]]) -> None:
        save_trained(model, model_dir, out_dir, weights)


def load_data(cfg: TrainConfig, data_dir: Path) -> tuple[PackedRows, Optional[np.ndarray]]:
    """The packed training rows, read lazily from the token store (pretrain.token_store), and
    the first ``eval_batches`` micro-batches of validation rows in memory as a (rows, seq_len)
    int64 array (None when the store has no validation rows)."""
    rows = PackedRows(data_dir, "train")
    check_batch(len(rows), cfg.micro_batch_size)
    return rows, (load_rows(data_dir, "val", limit=cfg.eval_batches * cfg.micro_batch_size)
                  if has_split(data_dir, "val") else None)


def load_model(cfg: TrainConfig, model_dir: Path) -> torch.nn.Module:
    """The initial model in fp32 (autocast supplies bf16 / fp16), in training mode, on the CPU:
    single-device code that the backend places, shards or wraps."""
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 use_safetensors=True)  # never a pickle
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    model.train()
    return model


def save_trained(model: torch.nn.Module, model_dir: Path, out_dir: Path,
                 weights: Optional[dict[str, torch.Tensor]] = None) -> None:
    """Save weights (safetensors; ``weights`` if given, as gathered from a sharded model) and
    the tokenizer that came with the initial model."""
    model.config.use_cache = True
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(str(tmp), state_dict=weights, safe_serialization=True)
        AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(tmp))
