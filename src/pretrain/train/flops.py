"""Model FLOPs and the machine's peak, for MFU (model FLOPs utilisation).

FLOPs per trained token follow PaLM (Chowdhery et al. 2022, appendix B): ``6N + 12·L·H·Q·T``,
where N counts the weights that take part in matrix multiplies (not the input embedding lookup,
but the output head, also when it is tied to the embedding), L layers, H query heads of size Q
and T the sequence length; nanoGPT's ``estimate_mfu`` uses the same count. The attention term
counts the full T×T score matrix although causal attention needs half of it, as PaLM does, so
MFU figures stay comparable with published ones.
"""

from __future__ import annotations

import time

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig

from pretrain.runtime import synchronize


def meta_model(config: PretrainedConfig) -> torch.nn.Module:
    """The causal LM of ``config`` on the meta device: exact shapes, no memory, no init cost."""
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def matmul_parameters(model: torch.nn.Module) -> int:
    """Weights used in matrix multiplies: every matrix except embedding lookups, plus the output
    head's matrix when it is tied to the input embedding. Norm scales and biases are left out."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    count = sum(p.numel() for p in model.parameters() if p.dim() >= 2 and id(p) not in embeddings)
    head = model.get_output_embeddings()
    if head is not None and id(head.weight) in embeddings:
        count += head.weight.numel()
    return count


def attention_shape(config: PretrainedConfig) -> tuple[int, int, int]:
    """(layers, query heads, head size) of a decoder config (GPT-2's names map through
    ``attribute_map``; ``head_dim`` defaults to hidden_size // heads)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, heads, head_dim


def flops_per_token(model_or_config: torch.nn.Module | PretrainedConfig, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token at sequence length ``seq_len``:
    ``6 * matmul_parameters + 12 * layers * heads * head_dim * seq_len`` (PaLM, appendix B).

    Takes a Hugging Face causal LM (also a torch.compile'd one) or its config; a config is
    instantiated on the meta device to count its weights exactly, whatever the architecture.
    Multiply by tokens per second and divide by peak FLOP/s for MFU.
    """
    model = model_or_config if isinstance(model_or_config, torch.nn.Module) else meta_model(model_or_config)
    layers, heads, head_dim = attention_shape(model.config)
    return 6.0 * matmul_parameters(model) + 12.0 * layers * heads * head_dim * seq_len


LARGE_CPU_MATMUL = 2048
"""The size of the all-threads matmul of ``measured_peak_flops`` on a CPU."""
SLOW_MATMUL_SECONDS = 5
"""``measured_peak_flops`` leaves out the all-threads matmul when, at the one-thread rate, one
would take longer than this many times its time budget (it runs at least twice, warm-up
included). bf16 on a CPU without AVX-512 BF16 or AMX (no oneDNN bf16 kernel) runs ATen's
reference GEMM: on the 2-core AMD EPYC (AVX2) on 2026-12-07, 0.1 GFLOP/s, 115 s for one
2048-size matmul (fp32: 0.9 s), so the measurement at start-up took 4 minutes."""


def measured_peak_flops(dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cpu",
                        seconds: float = 1.0) -> float:
    """The machine's achievable dense matmul FLOP/s in ``dtype`` on ``device``: the MFU
    denominator. Leaves the global random state alone.

    On a GPU: the best of repeated 8192-size matmuls over about ``seconds``. On a CPU: the larger
    of the best 2048-size matmul on all of torch's threads and the best 512-size matmul on one
    thread times the thread count. On a shared CPU another process that takes a core for a
    moment stalls a whole multi-threaded matmul (on this project's 2-core machine single
    2048-size bf16 matmuls ranged from 0.07 to 0.84 TFLOP/s while other jobs ran), whereas a
    one-thread 512-size matmul takes a millisecond and usually runs in a quiet moment (0.486
    TFLOP/s per core, to 1%, in the same conditions); matmul peaks scale with cores. Only the
    latter where the large matmul would take minutes (``SLOW_MATMUL_SECONDS``).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return _best_matmul_rate(dtype, device, 8192, seconds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_core = _best_matmul_rate(dtype, device, 512, seconds / 2)
    finally:
        torch.set_num_threads(threads)
    if 2.0 * LARGE_CPU_MATMUL ** 3 / (per_core * threads) > SLOW_MATMUL_SECONDS * seconds:
        return per_core * threads  # a dtype this CPU has no fast kernel for (see the constant)
    return max(per_core * threads, _best_matmul_rate(dtype, device, LARGE_CPU_MATMUL, seconds / 2))


def _best_matmul_rate(dtype: torch.dtype, device: torch.device, size: int, seconds: float) -> float:
    generator = torch.Generator(device).manual_seed(0)
    a = torch.randn(size, size, device=device, generator=generator).to(dtype)
    b = torch.randn(size, size, device=device, generator=generator).to(dtype)
    torch.matmul(a, b)  # warm-up: thread pools, kernels, clocks
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        best = max(best, 2.0 * size ** 3 / (time.perf_counter() - start))
        if time.perf_counter() > deadline:
            return best
