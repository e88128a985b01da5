"""Where and how tensors run: device, precision, deterministic kernels, packed rows and their
order, memory in use. Shared by training and evaluation."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from pretrain.errors import ConfigError, DataError
from pretrain.token_store import PackedRows

if TYPE_CHECKING:  # annotations only
    from pretrain.config.train import TrainConfig


def pick_device() -> torch.device:
    """This process's CUDA device if there is one (``LOCAL_RANK`` under a launcher), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); else autocast is slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32). ``auto`` picks bf16
    where the hardware has it, fp16 on older GPUs (with loss scaling) and fp32 on older CPUs."""
    chosen = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in chosen:
        return chosen[precision]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def allow_tf32(device: torch.device) -> bool:
    """Let fp32 matrix multiplies and convolutions on a CUDA ``device`` run on tensor cores in
    TF32 (10-bit mantissa inputs, fp32 accumulation), as nanoGPT's train.py does:
    ``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``. Under bf16
    / fp16 autocast it touches only the ops autocast leaves in fp32; in fp32 training it is the
    difference between the GPU's plain FP32 and its TF32 peak (8x on an A100, 7x on an H100).
    Returns whether it was set. Not ``torch.set_float32_matmul_precision("high")``, which also
    switches oneDNN's CPU matmuls to TF32 (``torch.backends.mkldnn.matmul.fp32_precision``): the
    CPU keeps its fp32 results, bit for bit."""
    if torch.device(device).type != "cuda":
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return True


def precision_name(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16`` or ``fp16``: the name params use for an autocast dtype."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op one for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Use torch's deterministic kernels inside the block (eager and torch.compile alike).

    Inductor's CPU code accumulates the embedding gradient (``index_put`` with accumulate) with
    atomic adds from parallel threads, so with 2+ threads two compiled runs end with different
    weights; in deterministic mode it falls back to ATen's ordered kernel
    (torch/_inductor/lowering.py, ``index_put_impl_``). warn_only: an op without a
    deterministic kernel warns instead of failing the run.

    Deterministic mode also fills every new uninitialized tensor with NaN by default
    (``torch.utils.deterministic.fill_uninitialized_memory``, a debugging aid against kernels
    that read memory they never wrote): one more write of every activation and gradient each
    step, which no kernel here needs, so it is off inside the block (benchmarks/train_speed.py
    ``--ablate``). Both settings are restored on exit.
    """
    before = torch.are_deterministic_algorithms_enabled()
    before_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    before_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = before_fill


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
GLIBC_TRIM_THRESHOLD, GLIBC_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults, put back on exit


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Keep memory that tensors free in the process's heap for the next ones, inside the block;
    yields whether it could (glibc on Linux; elsewhere, or with ``enabled`` False, a no-op).

    glibc's malloc serves every block over its mmap threshold (128 KiB, raised dynamically up to
    32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` when freed, so every
    activation, gradient and logits tensor of a CPU training step comes back as new pages that
    the kernel zero-fills on first touch: hundreds of MB of page faults per step. With mmap off
    (``mallopt(M_MMAP_MAX, 0)``) and no trimming (``M_TRIM_THRESHOLD``), freed blocks stay
    in the heap and the next step reuses them: the effect of the jemalloc / tcmalloc
    ``LD_PRELOAD`` that PyTorch's CPU performance tuning guide recommends, without a library or
    a launcher. The price is a heap that does not shrink until the block ends (the peak
    resident memory of the run). Measured: benchmarks/train_speed.py ``--ablate``.
    """
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)  # an int: the largest glibc takes
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)
        libc.malloc_trim(0)


def _glibc():
    """The C library through ctypes when it is glibc (its ``mallopt`` takes the settings above),
    else None."""
    import ctypes
    import platform

    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def load_rows(data_dir: Path, split: str, limit: int | None = None) -> np.ndarray:
    """The first ``limit`` packed rows of ``split`` ("train" or "val"; all when None) of the
    token store in ``data_dir`` (pretrain.token_store), in memory as one (rows, seq_len) int64
    array: for the few rows a loop holds (validation batches); ``PackedRows`` reads the rest
    lazily. DataError when there are none."""
    rows = PackedRows(data_dir, split)
    try:
        return rows[:limit]
    finally:
        rows.close()


def check_batch(n_rows: int, batch_size: int) -> None:
    """Fail at once, not at the first batch, when the rows do not fill one batch."""
    if n_rows < batch_size:
        raise DataError(f"train: only {n_rows} training rows for a micro-batch of {batch_size}; "
                        "lower train.micro_batch_size or add data")


MAX_EPOCHS = 4
"""Passes over the training rows past which a run warns. Muennighoff et al. 2023, "Scaling
Data-Constrained Language Models": "training with up to 4 epochs of repeated data yields
negligible changes to loss compared to having unique data", while with more repetition "the
value of adding compute eventually decays to zero"."""


def epochs_warning(n_rows: int, cfg: TrainConfig, steps: int, seq_len: int) -> str | None:
    """A one-line warning when ``steps`` optimizer steps of ``cfg.grad_accum_steps`` micro-batches
    of ``cfg.micro_batch_size`` rows of ``seq_len`` tokens pass over the ``n_rows`` training rows
    more than ``MAX_EPOCHS`` times (``batch_order``: ``n_rows // micro_batch_size`` micro-batches
    an epoch), naming the budget that would keep to ``MAX_EPOCHS``; None otherwise."""
    per_epoch, accum = n_rows // cfg.micro_batch_size, cfg.grad_accum_steps
    epochs = steps * accum / per_epoch
    if epochs <= MAX_EPOCHS:
        return None
    fits = MAX_EPOCHS * per_epoch // accum  # steps within MAX_EPOCHS
    if not fits:  # one step is already more
        budget = "lower train.grad_accum_steps"
    elif cfg.max_steps is not None:
        budget = f"train.max_steps: {fits} for {MAX_EPOCHS} epochs"
    else:
        budget = f"train.max_tokens: {fits * accum * cfg.micro_batch_size * seq_len} for {MAX_EPOCHS} epochs"
    return (f"train: {steps} steps of {accum * cfg.micro_batch_size} rows go over the {n_rows} training "
            f"rows {epochs:.1f} times; past {MAX_EPOCHS} epochs repeated data adds little and the model "
            f"memorises it (Muennighoff et al. 2023): add data, or {budget}")


def batch_order(n_rows: int, batch_size: int, seed: int, start: int = 0) -> Iterator[np.ndarray]:
    """Row indices of successive batches, from batch number ``start`` on: a fresh seeded
    permutation per epoch, so any position can be recomputed (resuming needs no saved state)."""
    check_batch(n_rows, batch_size)
    return _permuted_batches(n_rows, batch_size, seed, start)


def _permuted_batches(n_rows: int, batch_size: int, seed: int, start: int) -> Iterator[np.ndarray]:
    per_epoch = n_rows // batch_size
    epoch, offset = divmod(start, per_epoch)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n_rows)
        for index in range(offset, per_epoch):
            yield order[index * batch_size:(index + 1) * batch_size]
        epoch, offset = epoch + 1, 0


@torch.no_grad()
def validation_loss(model: torch.nn.Module, rows: PackedRows | np.ndarray, batch_size: int,
                    max_batches: int | None, device: torch.device, dtype: torch.dtype | None,
                    text_bytes: Callable[[np.ndarray], int] | None = None) -> dict[str, float]:
    """Mean next-token cross-entropy (nats) over packed (rows, seq_len) int64 rows (an array, or
    ``PackedRows`` read a batch at a time), its
    exponential (perplexity) and, given ``text_bytes`` (rows -> UTF-8 bytes of text their
    targets stand for: ``pretrain.evaluate.bits_per_byte.TextBytes``), bits per byte (comparable across
    tokenizers)."""
    n = len(rows) if max_batches is None else min(len(rows), max_batches * batch_size)
    total, count, nbytes = 0.0, 0, 0
    for start in range(0, n, batch_size):
        ids = torch.from_numpy(rows[start:min(start + batch_size, n)]).to(device)
        with autocast(device, dtype):
            logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), ids[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += ids[:, 1:].numel()
        if text_bytes is not None:
            nbytes += text_bytes(rows[start:min(start + batch_size, n)])
    mean = total / count
    result = {"loss": mean, "perplexity": math.exp(mean), "tokens": count}
    if text_bytes is not None and nbytes:
        # Document-boundary tokens stand for no bytes; their loss still counts, as in lm-eval.
        result["bits_per_byte"] = total / math.log(2) / nbytes
    return result


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer around it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each layer's activations in the backward pass (transformers 5 renamed
    ``gradient_checkpointing_enable`` to ``activation_checkpointing_enable``)."""
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()


def memory_bytes(device: torch.device) -> int:
    """Peak memory so far: allocated CUDA memory on a GPU, the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def check_split(micro_batch_size: int, world: int) -> None:
    """Each of ``world`` processes takes an equal share of every micro-batch of
    ``micro_batch_size`` rows (``train.micro_batch_size``); ConfigError otherwise."""
    if micro_batch_size % world:
        raise ConfigError(f"train.micro_batch_size: {micro_batch_size} rows cannot be split "
                          f"evenly among {world} processes")


def check_context(config, seq_len: int, where: str) -> None:
    """ConfigError unless rows of ``seq_len`` tokens fit in the context that the model's
    ``config`` (a transformers PretrainedConfig, of the model in ``where``) declares. Longer
    rows train and score silently with RoPE (positions past the context are computed, never
    refused) but the model, and the GGUF file exported from it, still declare the shorter
    context (Lightning-AI/litgpt#1717); a model with learned positions fails with an index
    error instead. The params check refuses this before any stage runs
    (pretrain.config.checks); this holds for the library called directly."""
    context = getattr(config.get_text_config(), "max_position_embeddings", None)
    if isinstance(context, int) and seq_len > context:
        raise ConfigError(f"pack.seq_len: rows of {seq_len} tokens are longer than the context of the "
                          f"model in {where}, max_position_embeddings {context}; lower pack.seq_len "
                          f"to {context} or less")
