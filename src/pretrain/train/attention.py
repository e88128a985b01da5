"""Which attention kernel a model actually runs.

Transformers' ``sdpa`` attention calls ``torch.nn.functional.scaled_dot_product_attention``, and
PyTorch picks the kernel at run time from the inputs (dtype, head size, mask, device
capability): FlashAttention-2 (``flash``) for fp16 / bf16 on Ampere and newer with no mask
(transformers passes ``is_causal=True`` and no mask for packed rows without padding), else
memory-efficient attention, cuDNN's, or the unfused ``math`` path (PyTorch's "Scaled Dot
Product Attention" tutorial; ``torch.nn.attention.SDPBackend``). The config only says ``sdpa``;
the ATen op a forward and backward pass dispatches to says which kernel ran.
"""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from pretrain.runtime import autocast

SDPA_KERNELS: dict[str, str] = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "aten::_scaled_dot_product_efficient_attention": "efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cudnn",
    "aten::_scaled_dot_product_attention_math": "math",
}
"""The ATen op each SDPA kernel is dispatched through -> the kernel's name."""


def attention_backend(model: torch.nn.Module, ids: torch.Tensor, device: torch.device,
                      dtype: torch.dtype | None) -> str:
    """The attention implementation of ``model`` (a Hugging Face causal LM on ``device``) and,
    for SDPA, the kernel(s) it ran: e.g. ``"sdpa: flash"``, ``"eager: no SDPA kernel"``.

    Runs one forward and backward pass on ``ids`` ((batch, seq_len) int64 token ids on
    ``device``) under ``dtype`` autocast (None: fp32) with the CPU-side profiler, and reads the
    ATen ops it dispatched (SDPA_KERNELS). Eager: the op is the one a compiled step calls too,
    as Inductor leaves SDPA to the same ATen kernels. Gradients are cleared afterwards.
    """
    implementation = getattr(model.config, "_attn_implementation", None) or "eager"
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast(device, dtype):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    ran = {event.name for event in prof.events()}
    kernels = [name for op, name in SDPA_KERNELS.items() if op in ran]
    return f"{implementation}: {', '.join(kernels) or 'no SDPA kernel'}"
