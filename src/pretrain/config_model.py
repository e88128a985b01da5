"""The `tokenizer`, `pack`, `model`, `train` and `evaluate` sections of params.yaml."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from pretrain.checks import fraction, one_of, positive


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    path: Optional[str] = None
    """Use this existing tokenizer (local folder, GGUF file or hub id) instead of training one."""
    vocab_size: int = 8192
    """Vocabulary size of the trained byte-level BPE tokenizer, special tokens included."""
    min_frequency: int = 2
    """A pair must occur this often to be merged."""
    bos_token: str = "<s>"
    """Beginning-of-document token."""
    eos_token: str = "</s>"
    """End-of-document token."""
    pad_token: str = "<pad>"
    """Padding token (used only for batched evaluation and generation)."""

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ValueError("vocab_size: must be at least 300 (256 bytes + special tokens + merges)")
        positive("min_frequency", self.min_frequency)
        if len({self.bos_token, self.eos_token, self.pad_token}) != 3:
            raise ValueError("bos_token, eos_token and pad_token must differ")


@dataclasses.dataclass(frozen=True)
class PackConfig:
    seq_len: int = 256
    """Tokens per packed row (the course uses 32)."""
    val_fraction: float = 0.05
    """Fraction of documents held out for validation (chosen by a hash of the document id)."""
    split_salt: str = "pretrain"
    """Salt of the document hash, to draw a different validation set."""
    batch_documents: int = 512
    """Documents tokenized per batch (bounds memory)."""

    def __post_init__(self) -> None:
        positive("seq_len", self.seq_len)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction}")
        positive("batch_documents", self.batch_documents)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    init: str = "random"
    """How to start: random (from the preset), pretrained, downscale or upscale (from base)."""
    base: Optional[str] = None
    """pretrained/downscale/upscale: a local Hugging Face model folder or GGUF file (or a hub id)."""
    preset: str = "small"
    """random: named size from pretrain.presets.PRESETS; the fields below override it when set."""
    num_layers: Optional[int] = None
    """Number of transformer blocks (downscale/upscale: the target depth). Null for an n-layer base:
    the course's proportions (pretrain.surgery.default_target), n - max(1, n // 6) for downscale and
    2 * (n - max(1, n // 3)) for upscale (12 -> 10 / 16, 30 -> 25 / 40); downscale takes 1 .. n-1,
    upscale an even value between n and 2n (both copies drop the same number of layers)."""
    hidden_size: Optional[int] = None
    """Width of the residual stream."""
    num_heads: Optional[int] = None
    """Attention heads."""
    num_kv_heads: Optional[int] = None
    """Key/value heads (grouped-query attention); must divide num_heads."""
    intermediate_size: Optional[int] = None
    """Width of the SwiGLU feed-forward layer."""
    max_position_embeddings: Optional[int] = None
    """Longest context the model supports."""
    rope_theta: Optional[float] = None
    """RoPE base frequency."""
    tie_word_embeddings: Optional[bool] = None
    """Share the input embedding and output head."""
    init_std: float = 0.02
    """Standard deviation of the normal weight initialisation."""
    seed: int = 42
    """Seed of the weight initialisation."""

    def __post_init__(self) -> None:
        # The preset name and the sizes' consistency are checked by pretrain.presets.resolve_sizes,
        # which pretrain.stage runs before any work (config imports nothing above it).
        one_of("init", self.init, ("random", "pretrained", "downscale", "upscale"))
        if self.init != "random":
            if not self.base:
                raise ValueError(f"base: required when model.init is {self.init!r}")
            allowed = {"num_layers"} if self.init in ("downscale", "upscale") else set()
            for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                         "max_position_embeddings", "rope_theta", "tie_word_embeddings"):
                if getattr(self, name) is not None and name not in allowed:
                    raise ValueError(f"{name}: cannot be set when model.init is {self.init!r} "
                                     "(the base model fixes it)")
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                     "max_position_embeddings"):
            positive(name, getattr(self, name), allow_none=True)
        positive("rope_theta", self.rope_theta, allow_none=True)
        positive("init_std", self.init_std)


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
    """Peak TFLOP/s that MFU is relative to (None: a bf16/fp32 matmul measured at start-up)."""
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


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 16
    """Sequences per evaluation batch."""
    max_batches: Optional[int] = None
    """Evaluate at most this many validation batches (None: the whole split)."""
    lm_eval_tasks: list[str] = dataclasses.field(
        default_factory=lambda: ["pretrain_heldout_ppl", "pretrain_heldout_mc"])
    """lm-eval harness tasks to run: tasks in src/pretrain/lm_eval_tasks run offline."""
    lm_eval_limit: Optional[int] = 32
    """Documents per lm-eval task (None: all)."""
    lm_eval_num_fewshot: Optional[int] = None
    """Few-shot examples per lm-eval prompt (None: each task's own default)."""
    general_text: Optional[str] = None
    """Local general text (JSONL / .txt / Parquet file or folder) scored beside the held-out split,
    so continued pretraining shows forgetting next to the domain gain."""
    prompts: list[str] = dataclasses.field(
        default_factory=lambda: ["def find_max(numbers):", "The Python language is", "import os\n"]
    )
    """Prompts for the greedy generations written beside the metrics."""
    max_new_tokens: int = 48
    """Tokens generated per prompt."""

    def __post_init__(self) -> None:
        positive("batch_size", self.batch_size)
        positive("max_batches", self.max_batches, allow_none=True)
        positive("lm_eval_limit", self.lm_eval_limit, allow_none=True)
        positive("lm_eval_num_fewshot", self.lm_eval_num_fewshot, allow_none=True, zero=True)
        positive("max_new_tokens", self.max_new_tokens)
