"""The ``train`` section of params.yaml: optimizer, schedule, batch, precision, processes."""

from __future__ import annotations

import dataclasses
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
    """Optimizer steps of linear warm-up from 0 to the peak."""
    min_lr_ratio: float = 0.1
    """Floor of the decay as a fraction of the peak."""
    max_steps: Optional[int] = 300
    """Optimizer steps to train for (set this or max_tokens, not both)."""
    max_tokens: Optional[int] = None
    """Token budget: train for ceil(max_tokens / tokens per step) optimizer steps."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass, summed over all processes (split evenly among them)."""
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
