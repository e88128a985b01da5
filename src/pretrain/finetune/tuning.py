"""What both fine-tunes share on top of the training loop's objective interface
(pretrain.train.objective): which weights train (freezing, gradual unfreezing, LoRA), at which
rate (a head rate, discriminative per-block rates) and which step's weights are kept (early
stopping on a validation metric).

- Freezing and gradual unfreezing follow ULMFiT (Howard and Ruder 2018, "Universal Language
  Model Fine-tuning for Text Classification", section 3.2-3.3): the new head first, then one more
  block from the top every ``gradual_unfreeze_every`` steps; discriminative rates multiply each
  block's rate by ``layer_lr_decay`` per block down from the top (ULMFiT: 1/2.6).
- LoRA (Hu et al. 2021) through peft: low-rank adapters on every linear layer of the body, the
  head trained whole; the saved model has the adapters merged in, so it loads without peft.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file

from pretrain.config.finetune import FinetuneConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import atomic_path
from pretrain.runtime import enable_activation_checkpointing
from pretrain.train.objective import Objective

BLOCK = re.compile(r"(?:^|\.)layers\.(\d+)\.")
"""A transformer block's parameters: ``model.layers.<i>.`` (Llama and most decoder models)."""

BEST = "best"
"""The file stem of the best weights in a checkpoint (``best.safetensors``)."""


def block_of(name: str) -> Optional[int]:
    """The transformer block index of parameter ``name``, or None outside the blocks."""
    found = BLOCK.search(name)
    return int(found.group(1)) if found else None


def in_head(name: str, head: set[str]) -> bool:
    """Whether parameter ``name`` belongs to one of the ``head`` modules (their attribute names,
    e.g. ``score``, ``lm_head``; also under peft's wrappers)."""
    return not head.isdisjoint(name.split("."))


def depth_from_top(name: str, blocks: int, head: set[str]) -> int:
    """How far below the head parameter ``name`` sits: 0 for the head, ``blocks - i`` for
    block ``i`` (the top block is 1; the final norm goes with it), ``blocks + 1`` for the
    embeddings."""
    if in_head(name, head):
        return 0
    block = block_of(name)
    if block is not None:
        return blocks - block
    return blocks + 1 if "embed" in name else 1


def count_blocks(model: torch.nn.Module) -> int:
    """The number of transformer blocks (``layers.<i>.`` parameters)."""
    found = [block_of(name) for name, _ in model.named_parameters()]
    return max((b for b in found if b is not None), default=-1) + 1


def trainable_depth(cfg: FinetuneConfig, step: int) -> Optional[int]:
    """How deep from the top the weights train at optimizer step ``step`` (0-based): None for
    all (freeze none), 0 for the head only (all_but_head), k for the last k blocks and the
    final norm, one more every ``gradual_unfreeze_every`` steps. A pure function of the step, so a
    resumed run unfreezes at the same steps."""
    if cfg.freeze == "none":
        return None
    depth = 0 if cfg.freeze == "all_but_head" else cfg.unfreeze_last_k
    if cfg.gradual_unfreeze_every:
        depth += step // cfg.gradual_unfreeze_every
    return depth


def apply_depth(model: torch.nn.Module, depth: Optional[int], head: set[str], blocks: int) -> None:
    """Set ``requires_grad`` for ``trainable_depth``'s ``depth`` (None: every weight)."""
    for name, param in model.named_parameters():
        param.requires_grad_(depth is None or depth_from_top(name, blocks, head) <= depth)


def lr_groups(model: torch.nn.Module, cfg: FinetuneConfig, head: set[str], weight_decay: float,
              include: Optional[set[str]] = None) -> list[dict[str, Any]]:
    """Parameter groups by (rate scale, decayed or not): the head at ``head_learning_rate /
    learning_rate``, each body parameter at ``layer_lr_decay ** (depth - 1)`` of the rate (the
    top block at the full rate), matrices decayed, norms and biases not. ``include``: the names
    that may ever train (None: all, frozen ones too, which the optimizer skips while they
    have no gradient). Groups in a fixed order (by scale, then decay)."""
    blocks = count_blocks(model)
    head_scale = (cfg.head_learning_rate or cfg.learning_rate) / cfg.learning_rate
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if include is not None and name not in include:
            continue
        depth = depth_from_top(name, blocks, head)
        scale = head_scale if in_head(name, head) else cfg.layer_lr_decay ** max(0, depth - 1)
        groups.setdefault((scale, param.dim() >= 2), []).append(param)
    return [{"params": params, "lr_scale": scale, "weight_decay": weight_decay if decayed else 0.0}
            for (scale, decayed), params in sorted(groups.items(), key=lambda kv: (-kv[0][0], not kv[0][1]))]


def add_lora(model: torch.nn.Module, cfg: FinetuneConfig, task_type: str,
             head_modules: list[str], new_tokens: Optional[list[int]] = None) -> torch.nn.Module:
    """``model`` with LoRA adapters (rank ``lora_r``) on every linear layer but the head, which
    trains whole (peft ``modules_to_save``); ``task_type``: peft's SEQ_CLS or CAUSAL_LM.
    ``new_tokens``: ids of tokens added for a chat template, whose embedding (and output) rows
    train too (``token_rows``; they were only initialised)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules="all-linear", task_type=task_type,
                        modules_to_save=head_modules or None, trainable_token_indices=token_rows(model, new_tokens))
    return get_peft_model(model, config)


def token_rows(model: torch.nn.Module, new_tokens: Optional[list[int]]) -> Optional[dict[str, list[int]]]:
    """peft's ``trainable_token_indices``: the added tokens' rows of the input embedding and,
    when not tied to it, of the output layer (the end-of-turn token must be predicted)."""
    if not new_tokens:
        return None
    rows = {"embed_tokens": list(new_tokens)}
    if not getattr(model.config, "tie_word_embeddings", False):
        rows["lm_head"] = list(new_tokens)
    return rows


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model with LoRA adapters merged in (the model itself without them)."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


class Tuning(Objective):
    """An objective that freezes and unfreezes by ``cfg`` and keeps the weights of the best
    validation step when ``cfg.early_stopping_metric`` is set (its state and those weights go
    into the loop's checkpoints, so a resumed run stops and keeps exactly as an unbroken one).
    Subclasses call ``prepare_weights`` in ``load_model`` with the head's module names."""

    section = "finetune"

    def __init__(self, cfg: FinetuneConfig):
        self.cfg = cfg
        self.head: set[str] = set()
        self.blocks = 0
        self.start = 0  # the step the run starts at (a resumed run's checkpoint step)
        self.depth: Optional[int] = None
        self.best: Optional[dict[str, torch.Tensor]] = None
        self.best_value: Optional[float] = None
        self.best_step: Optional[int] = None
        self.since_best = 0

    def begin(self, step: int) -> None:
        self.start = step

    def prepare_weights(self, model: torch.nn.Module, head: set[str], checkpointing: bool = False) -> None:
        """Note the head (module names, e.g. ``{"score"}``) and the depth of ``model``, and
        freeze as at the step the run starts at (before the backend restores a checkpoint's
        optimizer state, which it restores for the weights that train only). ConfigError when
        freezing by blocks or per-block rates are asked of a model whose blocks are not
        ``layers.<i>.`` (pretrain.finetune.tuning.BLOCK). ``checkpointing``: recompute
        activations in the backward pass (train.gradient_checkpointing)."""
        self.head, self.blocks = head, count_blocks(model)
        cfg = self.cfg
        if not self.blocks and (cfg.freeze == "last_k" or cfg.gradual_unfreeze_every or cfg.layer_lr_decay != 1):
            raise ConfigError(f"finetune: the model ({type(model).__name__}) has no layers.<i>. blocks to freeze "
                              "or rate by depth; use freeze none or all_but_head, gradual_unfreeze_every 0 "
                              "and layer_lr_decay 1")
        if checkpointing:
            enable_activation_checkpointing(model)
        if not cfg.lora_r:
            self.depth = trainable_depth(cfg, self.start)
            apply_depth(model, self.depth, head, self.blocks)

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> list[dict]:
        include = {n for n, p in model.named_parameters() if p.requires_grad} if self.cfg.lora_r else None
        return lr_groups(model, self.cfg, self.head, weight_decay, include)

    def before_step(self, step: int, model: torch.nn.Module) -> None:
        depth = trainable_depth(self.cfg, step)
        if self.cfg.gradual_unfreeze_every and not self.cfg.lora_r and depth != self.depth:
            self.depth = depth
            apply_depth(model, depth, self.head, self.blocks)

    def check_rows(self, train: int, validation: int, batch: int) -> None:
        """Fail at once, in one line naming the finetune keys, when the ``train`` examples do not
        fill a micro-batch of ``batch``, or early stopping has no ``validation`` example to watch."""
        if train < batch:
            raise DataError(f"finetune: only {train} training examples for a micro-batch of {batch}; "
                            "lower finetune.micro_batch_size or add data")
        if self.cfg.early_stopping_metric and not validation:
            raise ConfigError("finetune.early_stopping_metric: no validation example to watch (val_fraction 0, "
                              "or the data's validation split is empty); set it to null")

    def after_validation(self, step: int, metrics: dict[str, float], model: torch.nn.Module) -> bool:
        name = self.cfg.early_stopping_metric
        if name is None:
            return False
        value = metrics[f"val/{name}"]
        if self.best_value is None or (value < self.best_value if name == "loss" else value > self.best_value):
            self.best_value, self.best_step, self.since_best = value, step, 0
            self.best = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.since_best += 1
        return self.since_best >= self.cfg.early_stopping_patience

    def state(self) -> dict[str, Any]:
        return {"best_value": self.best_value, "best_step": self.best_step, "since_best": self.since_best}

    def state_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        return {BEST: self.best} if self.best is not None else {}

    def load_state(self, state: dict[str, Any], folder: Path) -> None:
        self.best_value, self.best_step = state.get("best_value"), state.get("best_step")
        self.since_best = state.get("since_best", 0)
        best = Path(folder) / f"{BEST}.safetensors"
        self.best = load_file(str(best)) if best.is_file() else None

    def save(self, model: torch.nn.Module, model_dir: Path, out_dir: Path,
             weights: Optional[dict[str, torch.Tensor]]) -> None:
        """The final model (``final_model``) and the tokenizer (``self.tokenizer``, as the
        objective prepared it) saved to ``out_dir`` atomically, loadable by transformers."""
        if weights is not None:
            model.load_state_dict(weights)
        model = self.final_model(model)
        model.config.use_cache = True
        with atomic_path(out_dir) as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)
            self.tokenizer.save_pretrained(str(tmp))

    def final_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model to save: the best step's weights (early stopping) or the last step's,
        LoRA adapters merged in."""
        if self.best is not None:
            model.load_state_dict(self.best)
        return merged(model)

    def report(self) -> dict[str, Any]:
        if self.cfg.early_stopping_metric is None:
            return {}
        return {"early_stopping": {"metric": f"val/{self.cfg.early_stopping_metric}",
                                   "best_step": self.best_step, "best_value": self.best_value}}


def run_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The parts of the loop's report a backbone's entry keeps; the last validation's loss as
    ``last_val_loss`` (with early stopping the saved model is the best step's, scored apart)."""
    keep = ("steps", "first_loss", "final_loss", "train_runtime_s", "precision",
            "stopped_early_at", "early_stopping", "truncated_examples", "added_tokens")
    found = {key: report[key] for key in keep if key in report}
    if "val_loss" in report:
        found["last_val_loss"] = report["val_loss"]
    return found
