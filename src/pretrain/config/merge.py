"""The ``merge`` and ``export`` sections of params.yaml: after training, merge the trained model
back with the model it started from (or another), and write the final model as GGUF files."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

from pretrain.config import fraction, one_of, positive

METHODS = ("none", "linear", "slerp", "task_arithmetic", "ties")
"""Merge methods by their mergekit names; ``none`` passes the trained model through."""

GGUF_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q5_0", "Q4_0")
"""GGUF file types the export stage writes (ggml's type names, as llama.cpp's converter and
llama-quantize name them)."""

EXPORTED_MODEL_TYPE = "llama"
"""The architecture the export stage's GGUF writer stores (llama.cpp's Llama conversion)."""


def tokenizer_problem(state: dict[str, Any]) -> Optional[str]:
    """Why the GGUF writer cannot store the tokenizer serialized as ``state`` (tokenizer.json's
    mapping), or None: it stores byte-level BPE with GPT-2's pre-tokenizer (the ``gpt2`` model
    and ``gpt-2`` pre-tokenizer of llama.cpp's ``_set_vocab_gpt2``), which the tokenizer stage
    trains. Shared by the params check and pretrain.export.gguf.check_exportable."""
    model = state.get("model") or {}
    pre = state.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        return f"{model.get('type')} with pre-tokenizer {pre.get('type')!r}"
    return None


@dataclasses.dataclass(frozen=True)
class MergeConfig:
    method: str = "none"
    """none (the trained model is final) | linear | slerp | task_arithmetic | ties (mergekit)."""
    other: str = "init"
    """The other model: ``init`` (the model training started from: the base itself in continued
    pretraining, the cut or grown base for downscale / upscale) or a Hugging Face model folder in
    models/bases (another experiment's model, same architecture, shapes, tokenizer and config but
    for keys that do not change the computation: pretrain.merge.runner.MERGE_FREE_KEYS)."""
    weights: list[float] = dataclasses.field(default_factory=lambda: [0.5])
    """Weight of the trained model, one merged model per value (several: the forgetting curve).
    linear: w * trained + (1 - w) * other; slerp: t = w from other (0) to trained (1);
    task_arithmetic / ties: init + w * (trained - init) [+ (1 - w) * (other - init)]."""
    select: Optional[float] = None
    """The weight whose merged model is the pipeline's final model (exported); null: the first."""
    density: float = 0.5
    """ties: the fraction of each task vector's entries kept (largest magnitudes)."""

    def __post_init__(self) -> None:
        one_of("method", self.method, METHODS)
        if not self.weights:
            raise ValueError("weights: expected at least one weight")
        if len(set(self.weights)) < len(self.weights):
            raise ValueError(f"weights: each weight once, got {self.weights}")
        if self.method == "slerp":
            for w in self.weights:
                fraction("weights", w)
        if self.select is not None and self.select not in self.weights:
            raise ValueError(f"select: expected one of weights {self.weights}, got {self.select!r}")
        fraction("density", self.density)
        if self.density == 0:
            raise ValueError("density: expected a value in (0, 1], got 0")
        if not self.other:
            raise ValueError("other: expected 'init' or a model folder in models/bases")

    @property
    def final_weight(self) -> float:
        """The weight of the merged model that is final (``select``, else the first)."""
        return self.weights[0] if self.select is None else self.select


MIN_TOP1_AGREEMENT = {"F32": 0.999, "F16": 0.995, "BF16": 0.98, "Q8_0": 0.95, "Q5_0": 0.88, "Q4_0": 0.80}
"""Default ``export.min_top1_agreement`` per type: the measurements behind them are in docs/export.md."""

MAX_PERPLEXITY_GAP_PERCENT = {"F32": 0.01, "F16": 0.1, "BF16": 1.0, "Q8_0": 2.0, "Q5_0": 5.0, "Q4_0": 15.0}
"""Default ``export.max_perplexity_gap_percent`` per type (docs/export.md)."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    types: list[str] = dataclasses.field(default_factory=list)
    """GGUF files to write from the final model, e.g. [F16, Q8_0, Q4_0]; [] writes none."""
    min_top1_agreement: dict[str, float] = dataclasses.field(default_factory=lambda: dict(MIN_TOP1_AGREEMENT))
    """Per type: the least fraction of validation positions where the file's argmax next token is
    the model's (teacher-forced; llama-perplexity's "Same top p"), or the stage fails."""
    max_perplexity_gap_percent: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict(MAX_PERPLEXITY_GAP_PERCENT))
    """Per type: the most the file's validation perplexity may exceed the model's, in percent
    (100 * (PPL(file) / PPL(model) - 1)), or the stage fails."""
    greedy_tokens: int = 16
    """Greedy tokens per prompt (evaluate.prompts) decoded from each file: reported, not required."""
    check_batches: int = 4
    """Validation batches (8 rows each) over which each file is compared with the model."""
    model: str = "final"
    """The model exported: final (trained, or the selected merged one) or finetuned (the sft
    model of the finetune stage, with its chat template)."""

    def __post_init__(self) -> None:
        one_of("model", self.model, ("final", "finetuned"))
        for i, kind in enumerate(self.types):
            one_of(f"types[{i}]", kind, GGUF_TYPES)
        if len(set(self.types)) < len(self.types):
            raise ValueError(f"types: each type once, got {self.types}")
        for name, bounds, check in (("min_top1_agreement", self.min_top1_agreement, fraction),
                                    ("max_perplexity_gap_percent", self.max_perplexity_gap_percent,
                                     functools.partial(positive, zero=True))):
            for kind, value in bounds.items():
                one_of(name, kind, GGUF_TYPES)
                check(f"{name}.{kind}", value)
            missing = [kind for kind in self.types if kind not in bounds]
            if missing:
                raise ValueError(f"{name}: no value for {missing[0]} (export.types lists it)")
        if self.greedy_tokens < 1 or self.check_batches < 1:
            raise ValueError("greedy_tokens, check_batches: expected values >= 1")
