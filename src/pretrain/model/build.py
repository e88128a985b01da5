"""Llama-family models (RoPE, grouped-query attention, SwiGLU, RMSNorm) from named presets.

Every size is passed to the LlamaConfig constructor: with newer transformers, changing
``hidden_size`` on a built config leaves ``head_dim`` at its default of 128 (the course's code
then counts 342,385,664 parameters for TinySolar-248m instead of 248,013,824).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from pretrain.bases import load_base
from pretrain.config.model import ModelConfig
from pretrain.config.shape import resolve_sizes
from pretrain.io import atomic_path
from pretrain.model.surgery import depth_surgery, describe_plan

RMS_NORM_EPS = 1e-6


def llama_config(cfg: ModelConfig, vocab_size: int, bos_token_id: int | None = None,
                 eos_token_id: int | None = None, pad_token_id: int | None = None) -> LlamaConfig:
    """The LlamaConfig for ``cfg`` with every size passed to the constructor."""
    s = resolve_sizes(cfg)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=s["hidden_size"],
        intermediate_size=s["intermediate_size"],
        num_hidden_layers=s["num_layers"],
        num_attention_heads=s["num_heads"],
        num_key_value_heads=s["num_kv_heads"],
        head_dim=s["hidden_size"] // s["num_heads"],
        max_position_embeddings=s["max_position_embeddings"],
        rope_theta=float(s["rope_theta"]),
        rms_norm_eps=RMS_NORM_EPS,
        hidden_act="silu",
        tie_word_embeddings=s["tie_word_embeddings"],
        initializer_range=cfg.init_std,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def build_model(config: LlamaConfig, seed: int, device: str = "cpu") -> LlamaForCausalLM:
    """A randomly initialised model; the same seed gives the same weights."""
    torch.manual_seed(seed)
    with torch.device(device):
        return LlamaForCausalLM(config)


def init_model(cfg: ModelConfig, tokenizer, out_dir: Path,
               check: Optional[Callable[[dict[str, Any]], None]] = None) -> dict[str, Any]:
    """Build or load the initial model and save it with the tokenizer and its lineage.

    ``check``: called with a base's config (``to_dict()``, after any surgery) before anything
    is saved; the stage runs the params' cross-key checks there
    (pretrain.config.shape_checks.check_loaded), as a hub id's sizes are known only once loaded.
    ConfigError for sizes that make no Llama model (a random init) or a base that cannot be
    loaded or cut."""
    if cfg.init == "random":
        config = llama_config(cfg, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                              tokenizer.pad_token_id)
        model = build_model(config, cfg.seed)
        lineage = {"init": "random", "base": None, "preset": cfg.preset, "seed": cfg.seed}
        sizes = {"preset": cfg.preset, **resolve_sizes(cfg)}
    else:
        model = load_base(cfg.base)
        # The config's depth, not surgery's layer list: continued pretraining takes any
        # architecture transformers loads (get_text_config: the decoder of a multimodal config).
        base_layers = model.config.get_text_config().num_hidden_layers
        base_parameters = count_parameters(model)
        plan = list(range(base_layers))
        if cfg.init in ("downscale", "upscale"):
            plan = depth_surgery(model, cfg.init, cfg.num_layers)
        mapping = describe_plan(cfg.init, base_layers, plan)
        if check is not None:
            check(model.config.to_dict())
        lineage = {"init": cfg.init, "base": cfg.base, "base_layers": base_layers,
                   "base_parameters": base_parameters, "mapping": mapping,
                   "layers": [{"layer": i, "source_layer": s} for i, s in enumerate(plan)]}
        sizes = {"model_type": model.config.model_type, "num_layers": len(plan),
                 "base_layers": base_layers, "mapping": mapping}
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "lineage.json").write_text(json.dumps(lineage, indent=2) + "\n", encoding="utf-8")
    embeddings = model.get_input_embeddings().weight.numel()
    return {"init": cfg.init, "parameters": count_parameters(model),
            "non_embedding_parameters": count_parameters(model) - embeddings,
            **sizes, "vocab_size": model.config.vocab_size}
