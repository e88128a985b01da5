"""Causal-LM training loop: AdamW, warm-up then decay, clipping, accumulation, bf16 autocast.

A plain PyTorch loop rather than the HF Trainer the course uses: it logs per optimizer step
(the Trainer's DVCLive callback counts log calls, not steps, and wipes its folder on resume),
and it has less per-step overhead on small models.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.config import TrainConfig
from pretrain.errors import DataError
from pretrain.io import atomic_path, iter_batches


def lr_at(step: int, peak: float, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then decay to a floor."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return peak
    progress = min(1.0, (step - warmup) / max(1, total - warmup - 1))
    if schedule == "linear":
        factor = 1.0 - progress
    else:  # cosine
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * (min_ratio + (1.0 - min_ratio) * factor)


def pick_device() -> torch.device:
    """The first CUDA device if there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); else autocast is slower."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_bf16() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context, or a no-op one for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def load_rows(path: Path) -> np.ndarray:
    """The packed ``input_ids`` rows of a Parquet file as an (rows, seq_len) int64 array."""
    chunks = []
    for batch in iter_batches(path, columns=["input_ids"], batch_size=8192):
        column = batch.column(0)
        width = len(column[0]) if len(column) else 0
        chunks.append(column.flatten().to_numpy().reshape(-1, width))
    if not chunks or chunks[0].size == 0:
        raise DataError(f"{path}: no packed rows to train on")
    return np.concatenate(chunks).astype(np.int64)


def batch_order(n_rows: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of successive batches: a fresh seeded permutation per epoch. Fails at once,
    not at the first batch, when the rows do not fill one batch."""
    if n_rows < batch_size:
        raise DataError(f"train: only {n_rows} training rows for a micro-batch of {batch_size}; "
                        "lower train.micro_batch_size or add data")
    return _permuted_batches(n_rows, batch_size, seed)


def _permuted_batches(n_rows: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n_rows)
        for start in range(0, n_rows - batch_size + 1, batch_size):
            yield order[start:start + batch_size]
        epoch += 1


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: norms and biases are not decayed (GPT-2, nanoGPT, litgpt)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Use torch's deterministic kernels inside the block (eager and torch.compile alike).

    Inductor's CPU code accumulates the embedding gradient (``index_put`` with accumulate) with
    atomic adds from parallel threads, so with 2+ threads two compiled runs end with different
    weights; in deterministic mode it falls back to ATen's ordered kernel
    (torch/_inductor/lowering.py, ``index_put_impl_``). warn_only: an op without a
    deterministic kernel warns instead of failing the run.
    """
    before = torch.are_deterministic_algorithms_enabled()
    before_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=before_warn_only)


def train(cfg: TrainConfig, model_dir: Path, data_dir: Path, out_dir: Path, live) -> dict[str, Any]:
    """Train the model in ``model_dir`` on ``data_dir/train.parquet``; save it to ``out_dir``.

    On the CPU the result is bit-identical from run to run (deterministic kernels); on a GPU it
    is only reproducible up to floating-point noise.
    """
    device = pick_device()
    with deterministic_algorithms(device.type == "cpu"):
        return _train(cfg, device, model_dir, data_dir, out_dir, live)


def _train(cfg: TrainConfig, device: torch.device, model_dir: Path, data_dir: Path, out_dir: Path,
           live) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    dtype = autocast_dtype(cfg.precision, device)
    rows = load_rows(data_dir / "train.parquet")
    batches = batch_order(len(rows), cfg.micro_batch_size, cfg.seed)  # checked before the model loads
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 use_safetensors=True).to(device)  # never a pickle
    model.config.use_cache = False
    model.train()
    step_fn = torch.compile(model) if cfg.compile else model
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.learning_rate,
                                  betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    tokens_per_step = cfg.micro_batch_size * cfg.grad_accum_steps * rows.shape[1]
    history: list[float] = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.max_steps), desc="train", unit="step")
    for step in bar:
        t0 = time.perf_counter()
        lr = lr_at(step, cfg.learning_rate, cfg.warmup_steps, cfg.max_steps, cfg.schedule, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(cfg.grad_accum_steps):
            ids = torch.from_numpy(rows[next(batches)]).to(device)
            with autocast(device, dtype):
                try:
                    loss = step_fn(input_ids=ids, labels=ids).loss
                except Exception as exc:  # torch.compile fails on first use without a C++ compiler
                    if step_fn is model or step > 0:
                        raise
                    print(f"warning: torch.compile failed ({type(exc).__name__}); training eagerly")
                    step_fn = model
                    loss = step_fn(input_ids=ids, labels=ids).loss
            (loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = loss_sum / cfg.grad_accum_steps
        if not math.isfinite(loss_value):
            raise DataError(f"train: loss became {loss_value} at step {step + 1}; "
                            "lower train.learning_rate or use train.precision: fp32")
        history.append(loss_value)
        tps = tokens_per_step / (time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tps:,.0f}")
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.max_steps:
            live.step = step + 1
            for name, value in (("loss", loss_value), ("learning_rate", lr),
                                ("grad_norm", float(norm)), ("tokens_per_second", tps)):
                live.log_metric(f"train/{name}", value)
    elapsed = time.perf_counter() - start
    save_trained(model, model_dir, out_dir)
    tail = history[-10:]
    return {"steps": cfg.max_steps, "tokens": cfg.max_steps * tokens_per_step,
            "first_loss": history[0], "final_loss": sum(tail) / len(tail),
            "train_runtime_s": round(elapsed, 2), "tokens_per_second": round(cfg.max_steps * tokens_per_step / elapsed, 1),
            "precision": "bf16" if dtype == torch.bfloat16 else "fp32", "device": device.type,
            "compiled": cfg.compile}


def save_trained(model: torch.nn.Module, model_dir: Path, out_dir: Path) -> None:
    """Save weights (safetensors) and the tokenizer that came with the initial model."""
    model.config.use_cache = True
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(tmp))
