"""The `model` section of params.yaml: how the model training starts from is made."""

from __future__ import annotations

import dataclasses
from typing import Optional

from pretrain.config import one_of, positive


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    init: str = "random"
    """How to start: random (from the preset), pretrained, downscale or upscale (from base)."""
    base: Optional[str] = None
    """pretrained/downscale/upscale: a local Hugging Face model folder or GGUF file (or a hub id)."""
    preset: str = "small"
    """random: named size from pretrain.config.shape.PRESETS; the fields below override it when set."""
    num_layers: Optional[int] = None
    """Number of transformer blocks (downscale/upscale: the target depth). Null for an n-layer base:
    the course's proportions (pretrain.config.shape.default_target), n - max(1, n // 6) for downscale and
    2 * (n - max(1, n // 3)) for upscale (12 -> 10 / 16, 30 -> 25 / 40); downscale takes 1 .. n-1,
    upscale an even value between n and 2n (both copies drop the same number of layers)."""
    hidden_size: Optional[int] = None
    """Width of the residual stream."""
    num_heads: Optional[int] = None
    """Attention heads; hidden_size / num_heads (the head dimension) must be a whole, even number (RoPE)."""
    num_kv_heads: Optional[int] = None
    """Key/value heads (grouped-query attention); must divide num_heads."""
    intermediate_size: Optional[int] = None
    """Width of the SwiGLU feed-forward layer."""
    max_position_embeddings: Optional[int] = None
    """Longest context the model supports (pack.seq_len must fit in it)."""
    rope_theta: Optional[float] = None
    """RoPE base frequency."""
    tie_word_embeddings: Optional[bool] = None
    """Share the input embedding and output head."""
    init_std: float = 0.02
    """Standard deviation of the normal weight initialisation."""
    seed: int = 42
    """Seed of the weight initialisation."""

    def __post_init__(self) -> None:
        # The preset name, the sizes' consistency and how they fit the other sections (and a local
        # base's config) are checked by pretrain.config.checks, which load_all runs.
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
