"""The ``train`` section of params.yaml: optimizer, schedule, batch, precision, processes."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
from typing import Any, Optional

from pretrain.config import fraction, one_of, positive


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adamw"
    """adamw, or lion (use a 3-10x lower learning rate and higher weight decay, per the paper)."""
    learning_rate: float = 1e-3
    """Peak learning rate."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine, linear or constant."""
    warmup_steps: int = 20
    """Optimizer steps of linear warm-up from 0 to the peak; fewer than the run's steps."""
    min_lr_ratio: float = 0.1
    """Floor of the decay as a fraction of the peak."""
    max_steps: Optional[int] = 300
    """Optimizer steps to train for (set this or max_tokens, not both)."""
    max_tokens: Optional[int] = None
    """Token budget: train for ceil(max_tokens / tokens per step) optimizer steps."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass, summed over all processes (split evenly among them:
    a multiple of the process count)."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    weight_decay: float = 0.1
    """Decoupled weight decay (not applied to norms and biases)."""
    beta1: float = 0.9
    """AdamW / Lion beta1."""
    beta2: float = 0.95
    """AdamW / Lion beta2 (the Lion paper uses 0.99)."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    precision: str = "auto"
    """fp32, bf16 or fp16 autocast, or auto (bf16 where supported, else fp16 on GPU / fp32 on CPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about a third more compute."""
    compile: bool = False
    """Compile the model with torch.compile (pays a compile time up front)."""
    num_workers: int = 0
    """Data-loader worker processes preparing batches (0: in the training process)."""
    log_every: int = 10
    """Log to DVCLive (and report_to) every this many optimizer steps."""
    eval_every: int = 0
    """Compute the validation loss every this many optimizer steps (0: only at the end)."""
    eval_batches: int = 8
    """Validation micro-batches per evaluation (the same rows every time)."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every this many optimizer steps (0: never)."""
    report_to: list[str] = dataclasses.field(default_factory=list)
    """Extra loggers besides DVCLive: tensorboard, wandb (API key from the environment)."""
    peak_tflops: Optional[float] = None
    """Peak TFLOP/s per device that MFU is relative to (None: the nominal peak, from the GPU's
    datasheet or the CPU's cores x clock x FMA width; pretrain.train.peaks)."""
    launcher: str = "python"
    """Command that runs stages/train.py, e.g. "accelerate launch --multi_gpu --num_processes 8"."""
    sharding: str = "none"
    """With several processes: none (DDP, each holds the whole model and optimizer state),
    full_shard (FSDP: parameters, gradients and optimizer state split among them, ZeRO-3) or
    shard_grad_op (gathered parameters kept from forward to backward, ZeRO-2)."""
    deepspeed: Optional[dict[str, Any]] = None
    """With several processes: a DeepSpeed config (as in ds_config.json) to train with ZeRO
    instead of DDP or FSDP, e.g. {zero_optimization: {stage: 2}}; batch sizes, clipping,
    optimizer and precision come from the train params."""
    seed: int = 0
    """Seed of data order and dropout."""

    def __post_init__(self) -> None:
        one_of("optimizer", self.optimizer, ("adamw", "lion"))
        positive("learning_rate", self.learning_rate)
        one_of("schedule", self.schedule, ("cosine", "linear", "constant"))
        positive("warmup_steps", self.warmup_steps, zero=True)
        fraction("min_lr_ratio", self.min_lr_ratio)
        if (self.max_steps is None) == (self.max_tokens is None):
            raise ValueError("max_steps: set exactly one of max_steps and max_tokens (the other null)")
        positive("max_steps", self.max_steps, allow_none=True)
        positive("max_tokens", self.max_tokens, allow_none=True)
        for name in ("micro_batch_size", "grad_accum_steps", "log_every", "eval_batches"):
            positive(name, getattr(self, name))
        for name in ("num_workers", "eval_every", "checkpoint_every"):
            positive(name, getattr(self, name), zero=True)
        positive("weight_decay", self.weight_decay, zero=True)
        fraction("beta1", self.beta1)
        fraction("beta2", self.beta2)
        positive("eps", self.eps)
        positive("grad_clip", self.grad_clip, zero=True)
        one_of("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        one_of("sharding", self.sharding, ("none", "full_shard", "shard_grad_op"))
        if self.deepspeed is not None and self.sharding != "none":
            raise ValueError(f"sharding: {self.sharding} (FSDP) and deepspeed (ZeRO) both shard the "
                             "model; set one of them")
        for name in self.report_to:
            one_of("report_to", name, ("tensorboard", "wandb"))
        positive("peak_tflops", self.peak_tflops, allow_none=True)
        if not self.launcher.split():
            raise ValueError("launcher: expected a command such as python or accelerate launch")

    @property
    def processes(self) -> Optional[int]:
        """The processes ``launcher`` starts, where it says (launcher_processes)."""
        return launcher_processes(self.launcher)


def launcher_processes(launcher: str) -> Optional[int]:
    """How many training processes ``train.launcher`` starts: ``--num_processes N`` of
    accelerate launch (also ``--num-processes``, ``=N``; the total over machines),
    ``--nproc_per_node N`` of torchrun (also ``--nproc-per-node``) times ``--nnodes M``, 1 for
    ``python`` (with any options but ``-m``); None where the command does not say (an
    accelerate config file, all visible GPUs, an elastic ``--nnodes 1:4``)."""
    try:
        words = shlex.split(launcher)
    except ValueError:  # unbalanced quotes: the shell DVC runs it in would fail first
        words = launcher.split()
    flags: dict[str, str] = {}
    for i, word in enumerate(words):
        name, eq, value = word.partition("=")
        if name.startswith("--"):
            flags[name[2:].replace("-", "_")] = value if eq else (words[i + 1] if i + 1 < len(words) else "")
    if "num_processes" in flags:
        count = flags["num_processes"]
    elif "nproc_per_node" in flags:
        per_node, nodes = flags["nproc_per_node"], flags.get("nnodes", "1")
        count = str(int(per_node) * int(nodes)) if per_node.isdigit() and nodes.isdigit() else ""
    else:  # python itself, not a launcher module run by it (python -m torch.distributed.run)
        count = "1" if re.fullmatch(r"python[0-9.]*", os.path.basename(words[0])) and "-m" not in words else ""
    return int(count) if count.isdigit() else None


def total_steps(cfg: TrainConfig, seq_len: int) -> int:
    """Optimizer steps of the run: ``max_steps``, or enough steps to reach ``max_tokens`` with
    ``micro_batch_size * grad_accum_steps`` rows of ``seq_len`` tokens a step."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return math.ceil(cfg.max_tokens / (cfg.micro_batch_size * cfg.grad_accum_steps * seq_len))


def warmup_problem(cfg: TrainConfig, seq_len: int) -> Optional[str]:
    """Why the warm-up of ``cfg`` does not end before its last step (rows of ``seq_len``
    tokens, which set the steps of a ``max_tokens`` budget), or None. The rate climbs
    linearly for ``warmup_steps`` steps (pretrain.train.optim.lr_at): at or past the last step
    the peak ``learning_rate`` is reached at most at that step and never decayed from."""
    steps = total_steps(cfg, seq_len)
    if cfg.warmup_steps < steps:
        return None
    if cfg.max_steps is not None:
        what = f"train.max_steps {steps}"
    else:
        what = (f"the {steps} optimizer steps of train.max_tokens {cfg.max_tokens} (ceil({cfg.max_tokens} / "
                f"({cfg.micro_batch_size} rows x {cfg.grad_accum_steps} micro-batches x pack.seq_len {seq_len})))")
    reached = "only at the last step, never decaying" if cfg.warmup_steps == steps else \
        f"never: {steps / cfg.warmup_steps:.0%} of it at the last step"
    return (f"train.warmup_steps {cfg.warmup_steps} is not below {what}: the learning rate would reach "
            f"its peak train.learning_rate {cfg.learning_rate:g} {reached}; lower warmup_steps "
            "(1-10% of the steps is usual)")


REFUSED = {"optimizer": "the optimizer comes from train.optimizer, train.learning_rate and "
                        "the other train params",
           "scheduler": "the schedule comes from train.schedule, warmup_steps and min_lr_ratio",
           "fp16": "precision comes from train.precision (autocast over fp32 weights)",
           "bf16": "precision comes from train.precision (autocast over fp32 weights)",
           "amp": "precision comes from train.precision (autocast over fp32 weights)",
           "torch_autocast": "precision comes from train.precision (autocast over fp32 weights)"}
"""Sections of a DeepSpeed config that the train params set: the optimizer and its schedule
and the precision (as autocast), with why."""


def zero_section(cfg: TrainConfig) -> dict[str, Any]:
    """``train.deepspeed.zero_optimization`` ({} when unset or not a mapping)."""
    section = (cfg.deepspeed or {}).get("zero_optimization")
    return section if isinstance(section, dict) else {}


def zero_stage(cfg: TrainConfig) -> Optional[int]:
    """The ZeRO stage of ``train.deepspeed`` (None without DeepSpeed or without a stage)."""
    return zero_section(cfg).get("stage")


def deepspeed_owned(cfg: TrainConfig, processes: Optional[int]) -> dict[str, Any]:
    """The DeepSpeed config keys the train params set, with their values for ``processes``
    processes (the per-GPU micro-batch only where that is known)."""
    owned = {"train_batch_size": cfg.micro_batch_size * cfg.grad_accum_steps,
             "train_micro_batch_size_per_gpu": cfg.micro_batch_size // processes if processes else None,
             "gradient_accumulation_steps": cfg.grad_accum_steps,
             "gradient_clipping": cfg.grad_clip}
    return {key: value for key, value in owned.items() if value is not None}


def deepspeed_problem(cfg: TrainConfig, processes: Optional[int]) -> Optional[str]:
    """What in ``train.deepspeed`` contradicts the train params on ``processes`` processes
    (None: not known), in one line naming the key, or None: a section they set (REFUSED), a
    ZeRO stage other than 1-3, a batch size, accumulation or clipping of another value ("auto"
    is filled in)."""
    if cfg.deepspeed is None:
        return None
    for key, why in REFUSED.items():
        if key in cfg.deepspeed:
            return f"train.deepspeed.{key}: {why}; remove it"
    if zero_stage(cfg) not in (1, 2, 3):
        return (f"train.deepspeed.zero_optimization.stage: expected 1, 2 or 3, got {zero_stage(cfg)!r} "
                "(stage 0 is plain data parallelism: leave train.deepspeed null)")
    for key, value in deepspeed_owned(cfg, processes).items():
        if cfg.deepspeed.get(key, "auto") not in ("auto", value):
            where = f" for {processes} processes" if processes else ""
            return (f"train.deepspeed.{key}: {cfg.deepspeed[key]!r} contradicts the train params "
                    f"({value!r}{where}); leave it out or set it to auto")
    return None
