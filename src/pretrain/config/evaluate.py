"""The ``evaluate`` section of params.yaml: held-out scoring, lm-eval tasks, generations."""

from __future__ import annotations

import dataclasses
from typing import Optional

from pretrain.config import positive


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
    """Local general text (a file, folder or glob, read as download.path is; no HTML) scored beside
    the held-out split, so continued pretraining shows forgetting next to the domain gain."""
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
