"""The ``finetune`` section of params.yaml: after pretraining (and merge), fine-tune the final
model into a classifier (``task: classify``) or a chat model (``task: sft``) on the project's
own training loop, and the same fine-tune from other backbones for comparison."""

from __future__ import annotations

import dataclasses
from typing import Optional

from pretrain.config import fraction, one_of, positive

TASKS = ("none", "classify", "sft")
"""none: a pass-through (a second); classify: sequence classification; sft: instruction tuning."""

FREEZE = ("none", "all_but_head", "last_k")
"""Which weights train from the start: all, the new head only, the head and the last k blocks."""

LOSSES = ("cross_entropy", "weighted_cross_entropy", "focal")
"""classify's losses by name (pretrain.finetune.metrics.LOSSES)."""

FORMATS = ("auto", "messages", "sharegpt", "alpaca")
"""sft's record formats (pretrain.finetune.chat.FORMATS); auto: told from each record's fields."""

STOP_METRICS = {"classify": ("loss", "accuracy", "f1_macro"), "sft": ("loss",)}
"""Validation metrics early stopping may watch, by task (loss falls, the others rise)."""


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    task: str = "none"
    """none (the default: nothing is fine-tuned) | classify | sft."""
    model: str = "final"
    """The backbone: final (the pipeline's final model: merged if merge ran, else trained) or a
    Hugging Face model folder in models/bases."""
    compare: list[str] = dataclasses.field(default_factory=lambda: ["init"])
    """Other backbones fine-tuned the same way, scored side by side (the transfer gain): init
    (the model pretraining started from: the random init, or the base in continued
    pretraining) or model folders in models/bases; [] for none."""
    source: str = "files"
    """Where the labelled / chat data is: files (in data/finetune) | hf (a dataset folder, or id online)."""
    path: Optional[str] = None
    """The data: a file, folder or glob in data/finetune, or a dataset folder / hub id."""
    hf_split: str = "train"
    """hf: the split read."""
    text_field: str = "text"
    """classify: the field holding the text."""
    label_field: str = "label"
    """classify: the field holding the class."""
    split_field: Optional[str] = None
    """classify: the field holding each record's own split (train / validation / test; also
    valid, val, dev) where the data has splits; null: split by class (val_fraction, test_fraction)."""
    labels: Optional[list[str]] = None
    """classify: the class names in order (null: the sorted distinct labels of the data)."""
    format: str = "auto"
    """sft: messages (OpenAI / HF) | sharegpt (conversations) | alpaca | auto."""
    template: Optional[str] = None
    """sft: chat template: null = the tokenizer's own, or ChatML where it has none; chatml."""
    val_fraction: float = 0.1
    """Share of each class (sft: of the conversations) held out for validation."""
    test_fraction: float = 0.1
    """classify: share of each class held out for the final test scores."""
    split_salt: str = "finetune"
    """Salt of the hash that orders examples into the splits."""
    max_length: int = 128
    """Tokens per example (longer ones are cut, and counted)."""
    freeze: str = "none"
    """classify: none | all_but_head | last_k (the head and the last unfreeze_last_k blocks)."""
    unfreeze_last_k: int = 1
    """freeze last_k: transformer blocks trained with the head."""
    gradual_unfreeze_every: int = 0
    """Unfreeze one more block from the top every this many steps (ULMFiT; 0: never)."""
    learning_rate: float = 1e-3
    """Peak learning rate of the body (the pretrained weights): 1e-3 measured best of 1e-4,
    3e-4 and 1e-3 for the default pipeline's 8.5M-parameter model (docs/finetune.md); a large
    pretrained base wants 1e-5 to 1e-4."""
    head_learning_rate: Optional[float] = None
    """classify: peak learning rate of the new head (null: learning_rate)."""
    layer_lr_decay: float = 1.0
    """Discriminative fine-tuning: each block's rate is the one above it times this (ULMFiT
    uses 1/2.6 = 0.38; 1: one rate for the body)."""
    loss: str = "cross_entropy"
    """classify: cross_entropy | weighted_cross_entropy (class weights) | focal."""
    focal_gamma: float = 2.0
    """loss focal: the focusing exponent (Lin et al. 2017 use 2)."""
    early_stopping_metric: Optional[str] = None
    """Validation metric whose best step's weights are kept (classify: loss, accuracy,
    f1_macro; sft: loss); null: the last step's."""
    early_stopping_patience: int = 3
    """Validations without improvement before the run stops."""
    lora_r: int = 0
    """LoRA rank (peft; 0: full fine-tuning). The saved model has the adapters merged in."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale alpha / r)."""
    lora_dropout: float = 0.0
    """LoRA dropout."""
    schedule: str = "linear"
    """Decay after warm-up: linear | cosine | constant."""
    warmup_steps: int = 10
    """Steps of linear warm-up."""
    max_steps: int = 100
    """Optimizer steps per backbone (fewer with early stopping)."""
    micro_batch_size: int = 16
    """Examples per forward pass."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    weight_decay: float = 0.01
    """Decoupled weight decay of matrices."""
    eval_every: int = 20
    """Validate every this many steps (and at the end)."""
    checkpoint_every: int = 50
    """Resumable checkpoint every this many steps (0: none)."""
    prompts: list[str] = dataclasses.field(default_factory=list)
    """sft: user messages answered greedily by the tuned model, in metrics/finetune.json."""
    max_new_tokens: int = 48
    """sft: tokens of each greedy answer."""
    seed: int = 0
    """Seed of the head's initialisation, data order and dropout."""

    def __post_init__(self) -> None:
        one_of("task", self.task, TASKS)
        one_of("source", self.source, ("files", "hf"))
        one_of("format", self.format, FORMATS)
        one_of("freeze", self.freeze, FREEZE)
        one_of("loss", self.loss, LOSSES)
        one_of("schedule", self.schedule, ("linear", "cosine", "constant"))
        if self.template is not None:
            one_of("template", self.template, ("chatml",))
        if self.task != "none" and not self.path:
            raise ValueError(f"path: task {self.task} needs its data (a file, folder or glob in "
                             "data/finetune, or a dataset folder)")
        if not self.model:
            raise ValueError("model: expected 'final' or a model folder in models/bases")
        for name in ("val_fraction", "test_fraction", "lora_dropout"):
            fraction(name, getattr(self, name))
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction: must leave examples to train on")
        for name in ("max_length", "unfreeze_last_k", "early_stopping_patience", "lora_alpha",
                     "max_steps", "micro_batch_size", "grad_accum_steps", "max_new_tokens"):
            positive(name, getattr(self, name))
        for name in ("gradual_unfreeze_every", "lora_r", "warmup_steps", "eval_every",
                     "checkpoint_every"):
            positive(name, getattr(self, name), zero=True)
        positive("learning_rate", self.learning_rate)
        positive("head_learning_rate", self.head_learning_rate, allow_none=True)
        positive("weight_decay", self.weight_decay, zero=True)
        positive("focal_gamma", self.focal_gamma, zero=True)
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError(f"layer_lr_decay: expected a value in (0, 1], got {self.layer_lr_decay}")
        if self.warmup_steps >= self.max_steps:
            raise ValueError(f"warmup_steps: {self.warmup_steps} is not below max_steps {self.max_steps}")
        self._check_task_keys()

    def _check_task_keys(self) -> None:
        """Keys that only one task (or setting) reads, set where nothing reads them, are refused
        rather than ignored; two backbones of one name are refused."""
        if self.task == "sft":
            for name, default in (("freeze", "none"), ("loss", "cross_entropy"), ("head_learning_rate", None),
                                  ("labels", None), ("split_field", None), ("text_field", "text"),
                                  ("label_field", "label"), ("test_fraction", 0.1), ("source", "files"),
                                  ("hf_split", "train")):
                if getattr(self, name) != default:
                    raise ValueError(f"{name}: not read by task sft; leave it at {default!r}")
        if self.task == "classify":
            for name, default in (("prompts", []), ("format", "auto"), ("template", None), ("max_new_tokens", 48)):
                if getattr(self, name) != default:
                    raise ValueError(f"{name}: sft only (task is classify); leave it at {default!r}")
        if self.lora_r and self.freeze != "none":
            raise ValueError(f"freeze: {self.freeze} with lora_r {self.lora_r}: LoRA already trains the adapters "
                             "and the head only; set freeze none")
        if self.unfreeze_last_k != 1 and self.freeze != "last_k":
            raise ValueError(f"unfreeze_last_k: read by freeze last_k only (freeze is {self.freeze})")
        if self.split_field and self.test_fraction != 0.1:
            raise ValueError("test_fraction: not read with split_field (the data's own test split is used)")
        names = ["final" if self.model == "final" else self.model.rstrip("/").rsplit("/", 1)[-1]]
        names += ["init" if c == "init" else c.rstrip("/").rsplit("/", 1)[-1] for c in self.compare]
        if len(set(names)) < len(names):
            raise ValueError(f"compare: two backbones of one name ({', '.join(names)}): each is scored under "
                             "its name (init, final, or its folder's)")
        if self.loss != "focal" and self.focal_gamma != 2.0:
            raise ValueError(f"focal_gamma: read by loss focal only (loss is {self.loss})")
        if self.early_stopping_metric is not None and self.task != "none":
            one_of("early_stopping_metric", self.early_stopping_metric, STOP_METRICS[self.task])
        if self.gradual_unfreeze_every and self.freeze == "none":
            raise ValueError("gradual_unfreeze_every: needs freeze all_but_head or last_k (nothing is frozen)")
        if self.gradual_unfreeze_every and self.lora_r:
            raise ValueError("gradual_unfreeze_every: not with LoRA (lora_r > 0 trains adapters only)")
