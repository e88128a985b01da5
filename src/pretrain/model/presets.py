"""Named model sizes and their consistency checks.

Kept apart from pretrain.model (which imports torch and transformers, seconds to load) so that
every stage can check ``model`` sizes before any work, in a fraction of a second.
"""

from __future__ import annotations

from typing import Any

from pretrain.config.model import ModelConfig
from pretrain.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    # A few seconds per step on a laptop CPU: for tests and the debug profile.
    "debug": dict(num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, intermediate_size=176,
                  max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False),
    # The default: ~8.5M parameters with an 8,192 vocabulary, trains in minutes on 2 CPU cores.
    "small": dict(num_layers=6, hidden_size=256, num_heads=8, num_kv_heads=4, intermediate_size=688,
                  max_position_embeddings=1024, rope_theta=10000.0, tie_word_embeddings=False),
    # GPT-2 small's shape (nanoGPT's 124M: 12 layers, width 768, 12 heads, context 1024) in the
    # Llama family: full multi-head attention, a SwiGLU MLP of 2048 (3 x 768 x 2048 weights, as
    # GPT-2's 4x GELU MLP), tied embeddings. 123,587,328 parameters with GPT-2's padded 50,304
    # vocabulary (nanoGPT's), 109,529,856 with 32,000; the GPU benchmark's model
    # (benchmarks/gpu_train.py).
    "gpt2-small-ish": dict(num_layers=12, hidden_size=768, num_heads=12, num_kv_heads=12,
                           intermediate_size=2048, max_position_embeddings=1024, rope_theta=10000.0,
                           tie_word_embeddings=True),
    # The course's upstage/TinySolar-248m-4k: 248,013,824 parameters with a 32,000 vocabulary.
    "tinysolar-248m": dict(num_layers=12, hidden_size=1024, num_heads=32, num_kv_heads=8,
                           intermediate_size=4096, max_position_embeddings=4096, rope_theta=10000.0,
                           tie_word_embeddings=False),
}


def resolve_sizes(cfg: ModelConfig, where: str = "params.yaml") -> dict[str, Any]:
    """The preset's sizes with the config's overrides applied, checked for consistency
    (``where``: the params file, for the error message)."""
    if cfg.preset not in PRESETS:
        raise ConfigError(f"{where}: model.preset: unknown preset {cfg.preset!r} "
                          f"(expected one of {sorted(PRESETS)})")
    sizes = dict(PRESETS[cfg.preset])
    for key in sizes:
        if getattr(cfg, key) is not None:
            sizes[key] = getattr(cfg, key)
    heads, kv_heads = sizes["num_heads"], sizes["num_kv_heads"]
    if sizes["hidden_size"] % heads:
        raise ConfigError(f"{where}: model.num_heads: expected a divisor of hidden_size "
                          f"{sizes['hidden_size']}, got {heads}")
    if kv_heads > heads or heads % kv_heads:
        raise ConfigError(f"{where}: model.num_kv_heads: expected a divisor of num_heads {heads} "
                          f"(at most {heads} key/value heads), got {kv_heads}")
    return sizes


def check_params(cfg: ModelConfig, where: str = "params.yaml") -> None:
    """Check a random init's sizes against its preset (a base model brings its own sizes)."""
    if cfg.init == "random":
        resolve_sizes(cfg, where)
