"""Cross-key checks: settings that each pass their own section's validation but not together,
and would otherwise fail, or silently go wrong, in a later stage (an odd head dimension at
init-model, rows longer than the model's context through training and export, a warm-up that
outlasts the run). ``pretrain.config.load_all`` runs ``CHECKS`` after every section is built,
so every stage refuses such params at its start, in one line naming the keys and values.

The model's sizes come from ``pretrain.config.shape``: the preset and overrides for a random
init, a local base's config.json or GGUF metadata otherwise. A hub id cannot be read before
the init-model stage fetches it, which runs the checks again on the loaded config
(``pretrain.config.shape_checks.check_loaded``: the checks of the model's shape live there,
apart from the train section's, so that init-model does not depend on training's rules). What
is not checked here: anything that depends on the data (rows per
micro-batch, validation batches) or on a process count ``train.launcher`` does not state
(``launcher_processes``: an accelerate config file, all visible GPUs); those are refused by
the train stage when it starts (pretrain.runtime, pretrain.train.backends).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Optional

from pretrain.config.shape import ModelShape, model_shape
from pretrain.config.shape_checks import SHAPE_CHECKS, Check, run_checks
from pretrain.config.train import deepspeed_problem, warmup_problem


def warmup(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """train.warmup_steps ends before the last step (of max_steps, or of the steps max_tokens
    makes with pack.seq_len)."""
    return warmup_problem(configs["train"], configs["pack"].seq_len)


def batch_split(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """train.micro_batch_size splits evenly among the processes train.launcher starts."""
    train = configs["train"]
    processes = train.processes
    if not processes or train.micro_batch_size % processes == 0:
        return None
    return (f"train.micro_batch_size {train.micro_batch_size} cannot be split evenly among the {processes} "
            f"processes of train.launcher {train.launcher!r} (each takes micro_batch_size / processes "
            f"rows); make it a multiple of {processes}")


def deepspeed(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """train.deepspeed agrees with the train params it cannot override."""
    return deepspeed_problem(configs["train"], configs["train"].processes)


def fp16_sharded(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """fp16 needs loss scaling, which the sharded backends do not do (pretrain.train.backends)."""
    train = configs["train"]
    sharded = ("train.deepspeed" if train.deepspeed is not None else
               f"train.sharding {train.sharding}" if train.sharding != "none" else None)
    if train.precision != "fp16" or sharded is None or train.processes == 1:
        return None
    return (f"train.precision fp16 with {sharded}: fp16 loss scaling is not supported when the "
            "processes shard the model; use bf16 or fp32")


def packages(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """The optional packages that the train params name are installed (else the train stage
    would stop after the data stages)."""
    train = configs["train"]
    needed = [(f"train.report_to: {name}", name, name) for name in train.report_to]
    if train.deepspeed is not None:
        needed.append(("train.deepspeed", "DeepSpeed", "deepspeed"))
    for key, name, module in needed:
        if importlib.util.find_spec(module) is None:
            return f"{key} needs {name} installed (pip install 'pretrain[{module}]')"
    return None


def exported_model(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """export.model: finetuned names the finetune stage's chat model (finetune.task: sft)."""
    export, task = configs["export"], configs["finetune"].task
    if export.model == "finetuned" and task != "sft":
        return (f"export.model: finetuned exports the sft model, but finetune.task is {task} "
                "(a classifier is not a language model llama.cpp runs); set export.model: final")
    return None


CHECKS: dict[str, Check] = {
    **SHAPE_CHECKS,
    "warm-up": warmup,
    "batch split": batch_split,
    "deepspeed": deepspeed,
    "fp16 sharded": fp16_sharded,
    "packages": packages,
    "exported model": exported_model,
}
"""Every cross-key check by name, run in this order; the first problem stops."""


def check_all(configs: dict[str, Any], where: str = "params.yaml") -> None:
    """Run ``CHECKS`` on the loaded params with the model's shape as known before any stage:
    ConfigError, one line, for the first problem (or an unknown preset)."""
    run_checks(CHECKS, configs, model_shape(configs["model"], where), where)
