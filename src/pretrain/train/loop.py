"""Causal-LM training loop: warm-up then decay, clipping, accumulation, mixed precision,
checkpoints that resume bit for bit, and several processes through accelerate.

A plain PyTorch loop rather than the HF Trainer the course uses: it logs per optimizer step
(the Trainer's DVCLive callback counts log calls, not steps, and wipes its folder on resume),
its checkpoints are keyed to the run that wrote them, and it has less per-step overhead on
small models (benchmarks/train_speed.py).

Batches do not depend on the number of processes: ``micro_batch_size`` rows are drawn for the
whole job and each of N processes takes 1/N of them, so 1 and N processes see the same rows in
the same optimizer steps and follow the same loss curve up to floating-point noise. How the
processes hold the model (a copy each, FSDP shards, DeepSpeed ZeRO partitions) is a backend
chosen from the train params and applied from outside the loop (pretrain.train.backends).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from accelerate import Accelerator
from tqdm import tqdm

from pretrain.config.train import TrainConfig, total_steps, warmup_problem
from pretrain.errors import ConfigError, DataError, warn
from pretrain.runtime import (
    allow_tf32,
    autocast,
    autocast_dtype,
    batch_order,
    check_split,
    deterministic_algorithms,
    epochs_warning,
    memory_bytes,
    precision_name,
    reuse_freed_memory,
)
from pretrain.token_store import PackedRows
from pretrain.train import checkpoint
from pretrain.train.backends import make_backend
from pretrain.train.flops import flops_per_token, measured_peak_flops
from pretrain.train.objective import LanguageModeling, Objective, load_data, load_model, save_trained  # noqa: F401
from pretrain.train.optim import lr_at
from pretrain.train.peaks import describe, mfu_metrics, nominal_peak
from pretrain.train.reporters import Reporters
from pretrain.train.window import Window


class Rows(torch.utils.data.Dataset):
    """Packed rows (``PackedRows``, or an int64 array), fetched a batch of indices at a time
    (``__getitems__``)."""

    def __init__(self, rows: PackedRows | np.ndarray):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(self.rows[np.asarray(indices)])


def _as_is(batch: torch.Tensor) -> torch.Tensor:
    return batch


def shard_batches(rows: PackedRows | np.ndarray, cfg: TrainConfig, start: int, rank: int, world: int,
                  pin: bool) -> Iterator[torch.Tensor]:
    """This process's share of every micro-batch from micro-batch number ``start`` on."""
    check_split(cfg.micro_batch_size, world)
    per = cfg.micro_batch_size // world
    order = batch_order(len(rows), cfg.micro_batch_size, cfg.seed, start)
    shards = (batch[rank * per:(rank + 1) * per].tolist() for batch in order)
    return iter(torch.utils.data.DataLoader(Rows(rows), batch_sampler=shards, collate_fn=_as_is,
                                            num_workers=cfg.num_workers, pin_memory=pin))


class StopRequest:
    """Turn Ctrl-C / SIGTERM into a request honoured at the next step boundary, so the
    checkpoint written on the way out is a consistent one."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True
        print(f"\ntrain: {signal.Signals(signum).name}, stopping after this step")

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def train(cfg: TrainConfig, model_dir: Path, data_dir: Optional[Path], out_dir: Path, log_dir: Path,
          checkpoint_dir: Optional[Path] = None, objective: Optional[Objective] = None
          ) -> Optional[dict[str, Any]]:
    """Train the model in ``model_dir`` on the training rows of the token store ``data_dir``
    (pretrain.token_store) as a causal LM, or on ``objective``'s data with its loss
    (pretrain.train.objective: a fine-tune; ``data_dir`` unused); save it to ``out_dir``.

    Curves go to ``log_dir`` (DVCLive); with ``checkpoint_dir``, checkpoints every
    ``cfg.checkpoint_every`` steps and resumes from the newest one this same run wrote. On the
    CPU the result is bit-identical from run to run, resumed or not; on a GPU it is
    reproducible up to floating-point noise. On the CPU, freed tensor memory stays in the
    process's heap for the next step (``reuse_freed_memory``). Returns the report on the main
    process, None on the others.
    """
    # Joins the process group under accelerate launch / torchrun; without cpu=True accelerate
    # sees a CPU-only launch as one process (it detects multi-CPU only when told to use the CPU).
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    warning = rate_warning(cfg.learning_rate, Path(model_dir)) if objective is None else None
    if warning and accelerator.is_main_process:
        print(warning)
    on_cpu = accelerator.device.type == "cpu"
    with deterministic_algorithms(on_cpu), reuse_freed_memory(on_cpu):
        objective = objective or LanguageModeling(Path(data_dir))
        return Run(cfg, accelerator, Path(model_dir), objective, checkpoint_dir).fit(
            Path(out_dir), Path(log_dir))


FROM_SCRATCH_RATE = 1e-3
"""Peak learning rates from here up are from-scratch rates (this project's default is 2e-3);
continued-pretraining recipes peak at 1e-4 to 3e-4 (profiles/continued.yaml cites them)."""


def rate_warning(learning_rate: float, model_dir: Path) -> Optional[str]:
    """A one-line warning when the initial model in ``model_dir`` came from a pretrained base
    (its ``lineage.json`` names an init other than random) and ``learning_rate`` is a
    from-scratch rate, which erases much of what the base knew; None otherwise."""
    try:
        init = json.loads((model_dir / "lineage.json").read_text(encoding="utf-8")).get("init")
    except (OSError, ValueError):
        return None
    if init in (None, "random") or learning_rate < FROM_SCRATCH_RATE:
        return None
    return (f"warning: train.learning_rate {learning_rate:g} is a from-scratch rate, but the model "
            f"starts from a pretrained base (model.init: {init}); continued pretraining uses "
            "1e-4 to 3e-4 (profiles/continued.yaml)")


class Run:
    """One training run: its data, model, backend, optimizer and the state it resumes from.
    Single-device code: the backend (pretrain.train.backends) places, shards or wraps the model and
    performs the backward pass and optimizer step."""

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator, model_dir: Path, objective: Objective,
                 checkpoint_dir: Optional[Path]):
        self.cfg, self.acc, self.model_dir, self.objective = cfg, accelerator, model_dir, objective
        self.device = accelerator.device
        self.main = accelerator.is_main_process
        self.world = accelerator.num_processes
        self.dtype = autocast_dtype(cfg.precision, self.device)
        allow_tf32(self.device)  # before the measured peak: fp32 matmuls in TF32 on CUDA
        self.backend = make_backend(cfg, accelerator, self.dtype)  # fails before the model loads
        self.rows = objective.load_data(cfg)  # likewise
        self.seq_len = objective.seq_len
        self.steps = total_steps(cfg, self.seq_len)
        problem = warmup_problem(cfg, self.seq_len)  # the params check refuses it before any stage
        if problem:
            raise ConfigError(problem)
        # many epochs are the rule for a fine-tune: the warning is pretraining's
        warning = (epochs_warning(len(self.rows), cfg, self.steps, self.seq_len)
                   if objective.section == "train" else None)
        self.warnings = [warning] if warning else []
        if warning and self.main:
            warn(warning)
        self.tokens_per_step = cfg.micro_batch_size * cfg.grad_accum_steps * self.seq_len
        self.checkpoint_dir = checkpoint_dir
        self.key = checkpoint.run_key(cfg, model_dir, objective.data_key())
        self.resume = checkpoint.find_for_all(checkpoint_dir, self.key, self.main, self.world)
        objective.begin(self.resume.step if self.resume else 0)
        if self.resume:
            objective.load_state(self.resume.state.get("objective", {}), self.resume.path)
        # MFU against the nominal peak (comparable with published figures) and against a matmul
        # measured now, before seeding (the timing matmuls draw random numbers).
        self.peak = nominal_peak(self.device, self.dtype or torch.float32, cfg.peak_tflops)
        self.measured_peak = measured_peak_flops(self.dtype or torch.float32, self.device)
        torch.manual_seed(cfg.seed)
        self.model = objective.load_model(cfg, model_dir)
        self.flops_per_step = flops_per_token(self.model.config, self.seq_len) * self.tokens_per_step
        self.backend.groups = objective.param_groups  # built by the backend once it placed the model
        self.wrapped, self.optimizer = self.backend.prepare(self.model, self.resume)
        self.history: list[float] = list(self.resume.state["history"]) if self.resume else []
        self.step_fn = torch.compile(self.wrapped) if cfg.compile else self.wrapped
        self.stopped_at: Optional[int] = None  # the step an early stop ended the run at

    def fit(self, out_dir: Path, log_dir: Path) -> Optional[dict[str, Any]]:
        """Train to the last step, logging, validating and checkpointing on the way; save the
        model to ``out_dir``. The report on the main process, None on the others.

        The host waits for the device only at a step that logs, validates, checkpoints or
        stops (``Window``): the steps between queue their work without a sync, their losses
        and gradient norms kept on the device until then (nanoGPT's ``loss.item()`` only at
        ``log_interval``). With ``log_every: 1`` every step is such a step."""
        cfg, start = self.cfg, self.resume.step if self.resume else 0
        reporters = self._begin(start, log_dir)
        batches = shard_batches(self.rows, cfg, start * cfg.grad_accum_steps, self.acc.process_index,
                                self.world, pin=self.device.type == "cuda")
        bar = tqdm(total=self.steps, initial=start, desc="train", unit="step", disable=not self.main)
        began, mfus, metrics, window = time.perf_counter(), [], {}, Window(time.perf_counter())
        with StopRequest() if self.world == 1 else contextlib.nullcontext() as stop:
            for step in range(start, self.steps):
                window.add(*self._step(batches, step))
                bar.update(1)
                done, stopping = step + 1, stop is not None and stop.requested
                logging = done % cfg.log_every == 0 or done == self.steps
                validating = cfg.eval_every and done % cfg.eval_every == 0 or done == self.steps
                saving = bool(self.checkpoint_dir and cfg.checkpoint_every and done < self.steps and (
                    done % cfg.checkpoint_every == 0 or stopping))
                if not (logging or validating or saving or stopping):
                    continue  # no host sync: the next steps queue behind this one
                metrics = self._settle(window, mfus)
                early = validating and self._validate(done, metrics)
                self._log(done, metrics, logging or any(k.startswith("val/") for k in metrics), reporters, bar)
                if saving and not early:
                    self._save_checkpoint(done, log_dir, reporters)
                if stopping and not early:
                    raise KeyboardInterrupt(f"stopped after step {done}; dvc repro resumes from it")
                window = Window(time.perf_counter())
                if early:
                    self.stopped_at = done
                    break
        bar.close()
        elapsed = time.perf_counter() - began
        self._save(out_dir)
        if reporters:
            reporters.close()
        return self._report(elapsed, start, metrics.get("val/loss"), mfus) if self.main else None

    def _begin(self, start: int, log_dir: Path) -> Optional[Reporters]:
        """Name the MFU peaks, put back the curves of the checkpoint resumed from; the
        reporters on the main process (None on the others)."""
        if self.main:
            print(f"train: {describe(self.peak, self.measured_peak, precision_name(self.dtype))}")
        if start and self.main:
            print(f"train: resuming from the checkpoint of step {start} ({self.resume.path})")
            checkpoint.restore_logs(self.resume, log_dir)
        return Reporters(self.cfg.report_to, log_dir, start if self.resume else None,
                         dataclasses.asdict(self.cfg), self.key) if self.main else None

    def _log(self, done: int, metrics: dict[str, float], logging: bool, reporters: Optional[Reporters],
             bar: tqdm) -> None:
        """Log step ``done``'s metrics (when ``logging``, on the main process) and show them."""
        if reporters and logging:
            reporters.log(done, metrics)
        bar.set_postfix(loss=f"{metrics['train/loss']:.3f}", lr=f"{metrics['train/learning_rate']:.2e}",
                        tok_s=f"{metrics['train/tokens_per_second']:,.0f}")

    def _step(self, batches: Iterator[torch.Tensor], step: int) -> tuple[int, float, torch.Tensor, Any]:
        """One optimizer step (0-based ``step``) over ``grad_accum_steps`` micro-batches, queued
        on the device without waiting for it: the step, its learning rate, the sum of its
        micro-batches' losses (a 0-dim fp32 tensor on the device) and the gradient norm."""
        cfg = self.cfg
        lr = lr_at(step, cfg.learning_rate, cfg.warmup_steps, self.steps, cfg.schedule,
                   cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # an objective's per-group rates
        self.objective.before_step(step, self.model)
        loss_sum = torch.zeros((), device=self.device)
        for micro in range(cfg.grad_accum_steps):
            ids = next(batches).to(self.device, non_blocking=True)  # pinned: an async copy
            with self.backend.accumulating(last=micro == cfg.grad_accum_steps - 1):
                loss = self._forward(ids, step)
                self.backend.backward(loss)
            loss_sum += loss.detach().float()
        return step, lr, loss_sum, self.backend.step()

    def _settle(self, window: Window, mfus: list[tuple[Optional[float], float]]) -> dict[str, float]:
        """Wait for the window's steps (one all-reduce and one copy to the host for all of
        them), check and keep their losses, add their MFUs to ``mfus``; the metrics of its last
        step, with the tokens/s and MFU of the whole window."""
        losses, norms = window.values(self.acc, self.device)
        seconds = (time.perf_counter() - window.began) / len(losses)
        for step, loss in zip(window.steps, losses):
            loss /= self.cfg.grad_accum_steps
            if not math.isfinite(loss):
                raise DataError(f"{self.objective.section}: loss became {loss} at step {step + 1}; "
                                f"lower {self.objective.section}.learning_rate or use train.precision: fp32")
            self.history.append(loss)
        mfu = mfu_metrics(self.flops_per_step / seconds / self.world, self.peak, self.measured_peak)
        mfus += [(mfu.get("train/mfu"), mfu["train/mfu_measured"])] * len(losses)
        return {"train/loss": self.history[-1], "train/learning_rate": window.lrs[-1],
                "train/grad_norm": norms[-1], "train/tokens_per_second": self.tokens_per_step / seconds,
                **mfu, "train/memory_gb": memory_bytes(self.device) / 2**30}

    def _forward(self, ids: torch.Tensor, step: int) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            try:
                return self.objective.loss(self.step_fn, ids)
            except Exception as exc:  # torch.compile fails on first use without a C++ compiler
                if self.step_fn is self.wrapped or step > (self.resume.step if self.resume else 0):
                    raise
                print(f"warning: torch.compile failed ({type(exc).__name__}); training eagerly")
                self.step_fn = self.wrapped
                return self.objective.loss(self.step_fn, ids)

    def _validate(self, done: int, metrics: dict[str, float]) -> bool:
        """Add the objective's validation metrics to ``metrics``; whether it stops the run
        early here (the first process decides, every process learns it)."""
        if self.main or self.backend.every_process_validates:
            self.model.eval()
            found = self.objective.validate(self.model, self.cfg, self.device, self.dtype)
            self.model.train()
        else:
            found = {}  # the first process validates and logs
        metrics.update(found)
        box = [bool(self.main and found and self.objective.after_validation(done, found, self.model))]
        if self.world > 1:
            torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def _save_checkpoint(self, step: int, log_dir: Path, reporters: Optional[Reporters]) -> None:
        if reporters:
            reporters.flush()  # the checkpoint copies the curves up to this step
        weights, optim, scaler = self.backend.full_state()
        rng = checkpoint.gather_rng(self.world)  # every process's own RNG states
        if self.main:
            path = checkpoint.save(self.checkpoint_dir, self.key, step, weights, optim, scaler,
                                   extra={"history": self.history, "objective": self.objective.state()},
                                   log_dir=log_dir, rng=rng, tensors=self.objective.state_tensors())
            tqdm.write(f"train: checkpoint {path}")
        self.acc.wait_for_everyone()

    def _save(self, out_dir: Path) -> None:
        self.acc.wait_for_everyone()
        weights = self.backend.full_weights()
        if not self.main:
            return
        self.objective.save(self.model, self.model_dir, out_dir, weights)
        if self.checkpoint_dir:
            checkpoint.clear(self.checkpoint_dir)  # the trained model is the artifact now

    def _mfu_report(self, mfus: list[tuple[Optional[float], float]]) -> dict[str, Any]:
        """Median MFU of the steps against each peak, and the peaks with their sources."""
        nominal = [m for m, _ in mfus if m is not None]
        return {"mfu": round(float(np.median(nominal)), 4) if nominal else None,
                "mfu_measured": round(float(np.median([m for _, m in mfus])), 4) if mfus else None,
                "peak_flops": self.peak.flops if self.peak else None,
                "peak_source": self.peak.source if self.peak else "unknown: set train.peak_tflops",
                "peak_flops_measured": round(self.measured_peak)}

    def _report(self, elapsed: float, start: int, val_loss: Optional[float],
                mfus: list[tuple[Optional[float], float]]) -> dict[str, Any]:
        tail, steps = self.history[-10:], self.stopped_at or self.steps
        report = {"steps": steps, "tokens": steps * self.tokens_per_step,
                  "first_loss": self.history[0], "final_loss": sum(tail) / len(tail),
                  "train_runtime_s": round(elapsed, 2),
                  "tokens_per_second": round((steps - start) * self.tokens_per_step / elapsed, 1),
                  **self._mfu_report(mfus),
                  "precision": precision_name(self.dtype), "device": self.device.type,
                  "processes": self.world, "sharding": self.backend.name,
                  "compiled": self.step_fn is not self.wrapped,  # False after a failed compile
                  "attention": getattr(self.model.config, "_attn_implementation", None) or "eager"}
        if val_loss is not None:
            report["val_loss"] = val_loss
        if self.stopped_at is not None:
            report["stopped_early_at"] = self.stopped_at
        if self.warnings:
            report["warnings"] = self.warnings
        return {**report, **self.objective.report()}


def leave() -> None:
    """End a process of a multi-process run once its outputs are written, without the
    interpreter's shutdown: gloo's worker threads, still releasing the tensors of DeepSpeed's
    unawaited all-reduces, would take the GIL of a finalizing interpreter and abort the process
    (std::terminate, about one run in four). A one-process run returns normally."""
    if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
        torch.distributed.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
