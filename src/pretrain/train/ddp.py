"""The replicated backend: every process holds the whole model and optimizer state. One process
trains plainly; several go through DistributedDataParallel (accelerate's ``prepare_model``),
which averages the gradients during the backward pass of the last micro-batch of a step.
fp16 losses are scaled (``torch.amp.GradScaler``), as in PyTorch's AMP recipe."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Optional

import torch

from pretrain.config.train import TrainConfig
from pretrain.train import checkpoint
from pretrain.train.optim import build_optimizer, fused_optimizer


class Replicated:
    """The ``ddp`` entry of ``pretrain.train.backends.BACKENDS`` (the interface is documented there).

    ``accelerator``: the run's ``accelerate.Accelerator`` (device, process count and index,
    ``prepare_model``); ``dtype``: the autocast dtype (None: fp32), fp16 enabling loss scaling.
    """

    name = "none"  # the train report's "sharding": nothing is split
    every_process_validates = False  # the first process holds the whole model
    loss_scaling = True
    groups: Optional[Callable[[torch.nn.Module, float], Optional[list[dict]]]] = None
    """An objective's parameter groups, built from the placed model (None: the default)."""

    def __init__(self, cfg: TrainConfig, accelerator: Any, dtype: Optional[torch.dtype]):
        self.cfg, self.acc = cfg, accelerator
        self.world = accelerator.num_processes
        self.scaler = torch.amp.GradScaler(accelerator.device.type, enabled=dtype == torch.float16)

    def prepare(self, model: torch.nn.Module, resume: Optional[checkpoint.Checkpoint]
                ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """Place ``model``, build its optimizer, restore ``resume`` into both (every process
        calls it; the first reads the files), then wrap the model."""
        self.place(model)
        self.model = model
        groups = self.groups(model, self.cfg.weight_decay) if self.groups else None  # after placing
        self.optimizer = build_optimizer(model, self.cfg, fused_optimizer(self.acc.device), groups)
        if resume:
            checkpoint.restore(resume, model, self.optimizer, self.scaler,
                               read=self.acc.is_main_process, broadcast=self.world > 1)
        self.wrapped = self.wrap(model)
        return self.wrapped, self.optimizer

    def place(self, model: torch.nn.Module) -> None:
        """Move the whole model to this process's device."""
        model.to(self.acc.device)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel over several processes (the model itself in one)."""
        return self.acc.prepare_model(model)

    def accumulating(self, last: bool) -> ContextManager:
        """Around a micro-batch's forward and backward: gradients are averaged among the
        processes only in the last one (DDP's ``no_sync`` for the others)."""
        return self.wrapped.no_sync() if not last and self.world > 1 else contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of one micro-batch's mean loss (a scalar)."""
        self.scaler.scale(loss / self.cfg.grad_accum_steps).backward()

    def step(self) -> torch.Tensor:
        """Unscale, clip to ``train.grad_clip``, step, update the scale, zero the gradients;
        returns the gradient norm over the whole model before clipping."""
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              self.cfg.grad_clip or float("inf"))
        norm = self.whole_norm(norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def whole_norm(self, norm: torch.Tensor) -> torch.Tensor:
        """The gradient norm over all processes (each holds every gradient here)."""
        return norm

    def full_state(self) -> tuple[dict, dict, Optional[torch.amp.GradScaler]]:
        """Whole weights and optimizer state on the first process's CPU (empty on the others)
        and the loss scaler; every process calls it."""
        weights, optim = checkpoint.gather(self.model, self.optimizer)
        return weights, optim, self.scaler

    def full_weights(self) -> Optional[dict[str, torch.Tensor]]:
        """None: the model itself holds the whole weights, to be saved as they are."""
        return None
