"""The accounting of a training run: parameter counts, memory. FLOPs per token and the measured
matmul peak, which training needs for MFU, are pretrain.train.flops; the GPU datasheet peaks are
pretrain.train.peaks.

Memory per parameter follows the Transformers guide "Model training anatomy"
(https://huggingface.co/docs/transformers/model_memory_anatomy): fp32 weights 4 bytes, fp32
gradients 4, AdamW's two fp32 moments 8; with bf16 autocast (what the train loop and the HF Trainer's
``bf16=True`` do) the master weights stay fp32 and autocast adds a bf16 copy of each matmul
weight (2 bytes), cached for the backward pass. Activations are the tensors autograd saves for
the backward pass of a Hugging Face Llama layer (SDPA attention), counted term by term below and
checked against what autograd actually saves (tests/cost/test_estimate.py); the per-layer structure
is that of Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
Models", section 4) without dropout and with SwiGLU.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PretrainedConfig

from pretrain.train.flops import attention_shape, matmul_parameters, meta_model
from pretrain.train.peaks import GPUS, Gpu, gpu  # noqa: F401 (the GPU table lives with MFU's peaks)

ASSUMED_GPU_MFU = 0.4
"""MFU assumed for a GPU projection: PaLM reports 46.2% on TPU v4 and 21-30% for GPT-3 and
Megatron-Turing NLG (Chowdhery et al. 2022, table 3); 40% is what a tuned single-GPU run reaches."""

CHINCHILLA_TOKENS_PER_PARAMETER = 20
"""Compute-optimal training tokens per parameter (Hoffmann et al. 2022, table 3: ~20)."""

REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    # HuggingFaceTB/SmolLM-135M's config.json: a ~125M-class Llama.
    "smollm-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True),
    # TinyLlama/TinyLlama-1.1B's config.json: a ~1B Llama (1,100,048,384 parameters).
    "tinyllama-1.1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                           num_attention_heads=32, num_key_value_heads=4, head_dim=64,
                           tie_word_embeddings=False),
}
"""LlamaConfig arguments of published models, to show where the "20x" memory rule holds."""

PRECISION_BYTES: dict[str, dict[str, int]] = {
    "fp32": {"weights": 4, "grads": 4, "matmul_copy": 0, "activation": 4},
    "bf16": {"weights": 4, "grads": 4, "matmul_copy": 2, "activation": 2},
    "fp16": {"weights": 4, "grads": 4, "matmul_copy": 2, "activation": 2},
}
"""Bytes per parameter (fp32 master weights and gradients), per matmul weight (autocast's 16-bit
copy) and per matmul activation, for each training precision (bf16/fp16: autocast over fp32)."""

OPTIMIZER_BYTES: dict[str, int] = {"adamw": 8, "lion": 4}
"""Optimizer state in bytes per parameter: AdamW keeps two fp32 moments, Lion one."""

LLAMA_LAYER_TYPES = ("llama", "mistral", "qwen2")
"""Model types whose decoder layer the activation count below describes (RMSNorm, SwiGLU)."""


# ---------------------------------------------------------------------------------------------
# Parameters and FLOPs
# ---------------------------------------------------------------------------------------------


def parameter_counts(config: PretrainedConfig) -> dict[str, int]:
    """Total, matmul and embedding parameter counts of ``config`` (tied weights counted once)."""
    model = meta_model(config)
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
    return {"parameters": total, "matmul_parameters": matmul_parameters(model),
            "embedding_parameters": embeddings}


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def layer_activation_bytes(config: PretrainedConfig, precision: str) -> int:
    """Bytes autograd saves per token in one Llama decoder layer (Hugging Face, SDPA attention).

    Each RMSNorm computes in fp32 and saves its input, its normalised output (4 bytes each) and
    1/rms (4). Under fp32 the norm's output feeds its linears directly (one more fp32 copy);
    under autocast each of q, k, v, gate and up casts that output to bf16 separately (5 copies).
    Attention saves q, k, v after RoPE, its output (also the o_proj input) and the fp32
    log-sum-exp per head; the SwiGLU MLP saves gate, up, silu(gate) and their product.
    """
    if precision not in PRECISION_BYTES:
        raise ValueError(f"precision: expected one of {sorted(PRECISION_BYTES)}, got {precision!r}")
    h, inter = config.hidden_size, config.intermediate_size
    _, heads, head_dim = attention_shape(config)
    q, kv = heads * head_dim, config.num_key_value_heads * head_dim
    a = PRECISION_BYTES[precision]["activation"]
    norms = 2 * (4 * h + 4 * h + 4)
    linear_inputs = 2 * 4 * h if precision == "fp32" else 5 * 2 * h
    attention = a * (q + 2 * kv) + a * q + 4 * heads
    mlp = 4 * a * inter
    return norms + linear_inputs + attention + mlp


def head_activation_bytes(config: PretrainedConfig, precision: str) -> int:
    """Bytes saved per token outside the layers: final norm, output-head input, the fp32
    log-softmax of the logits (the loss upcasts them), and the int64 input ids and labels."""
    h = config.hidden_size
    head_input = PRECISION_BYTES[precision]["activation"] * h
    return (4 * h + 4 * h + 4) + head_input + 4 * config.vocab_size + 8 + 8


def activation_bytes(config: PretrainedConfig, tokens: int, precision: str,
                     checkpointing: bool = False) -> int | None:
    """Bytes saved for the backward pass of a micro-batch of ``tokens`` tokens (None for a model
    type whose layer this count does not describe). With per-layer gradient checkpointing
    (HF ``gradient_checkpointing_enable``) only each layer's fp32 input is kept, and one layer's
    activations are recomputed at a time during the backward pass."""
    if config.model_type not in LLAMA_LAYER_TYPES:
        return None
    layer = layer_activation_bytes(config, precision)
    if checkpointing:
        per_token = config.num_hidden_layers * 4 * config.hidden_size + layer
    else:
        per_token = config.num_hidden_layers * layer
    return tokens * (per_token + head_activation_bytes(config, precision))


def memory_breakdown(config: PretrainedConfig, seq_len: int, micro_batch: int, precision: str,
                     checkpointing: bool = False, optimizer: str = "adamw") -> dict[str, Any]:
    """Training memory in bytes: fp32 weights (with autocast's 16-bit copies of the matmul
    weights), gradients, optimizer states and the saved activations of one micro-batch;
    transient buffers (such as the logits' gradient) come on top. ``per_parameter`` is the
    total in bytes per parameter (the "20x" rule)."""
    counts = parameter_counts(config)
    per = PRECISION_BYTES[precision]
    n = counts["parameters"]
    parts = {"weights": per["weights"] * n + per["matmul_copy"] * counts["matmul_parameters"],
             "grads": per["grads"] * n, "optimizer": OPTIMIZER_BYTES[optimizer] * n,
             "activations": activation_bytes(config, seq_len * micro_batch, precision, checkpointing)}
    total = sum(v for v in parts.values() if v is not None)
    return {**parts, "total": total, "per_parameter": total / n, "parameters": n,
            "precision": precision, "checkpointing": checkpointing}
