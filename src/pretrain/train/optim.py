"""Optimizers and the learning-rate schedule, chosen by name from ``train.optimizer``."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch

from pretrain.config.train import TrainConfig


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


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay matrices only: norms and biases are not decayed (GPT-2, nanoGPT, litgpt)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


class Lion(torch.optim.Optimizer):
    """Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", algorithm 2):
    the update is the sign of an interpolation of momentum and gradient, so every coordinate
    moves by exactly ``lr``; it keeps one state tensor instead of AdamW's two. The paper uses a
    learning rate 3-10x smaller and a weight decay 3-10x larger than AdamW's. torch has no Lion,
    and this is the paper's ten lines (the lion-pytorch package is the same update)."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = exp_avg.mul(beta1).add_(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-group["lr"])
                exp_avg.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


def _adamw(groups: list[dict], cfg: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    # fused: one kernel for the whole update (nanoGPT, torchtitan's default on CUDA; torch's
    # CPU kernel since 2.4): no host sync with a GradScaler (it takes the inf check as a tensor),
    # and on the CPU one pass over each tensor instead of a dozen (benchmarks/train_speed.py
    # --ablate). Deterministic on both, so bit-exact resume holds as before.
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=True if fused else None)


def _lion(groups: list[dict], cfg: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    return Lion(groups, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))  # no fused kernel


OPTIMIZERS: dict[str, Callable[[list[dict], TrainConfig, bool], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "lion": _lion,
}


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool = False,
                    groups: Optional[list[dict[str, Any]]] = None) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` over ``model``'s trainable parameters, in
    ``groups`` when given (an objective's: pretrain.train.objective), else ``param_groups``.

    ``fused``: AdamW as one fused kernel (``torch.optim.AdamW(fused=True)``); the caller asks for
    it where torch has one for the parameters' device (``fused_optimizer``). Lion has no fused
    form.
    """
    return OPTIMIZERS[cfg.optimizer](groups or param_groups(model, cfg.weight_decay), cfg, fused)


def fused_optimizer(device: torch.device) -> bool:
    """Whether the optimizer for parameters on ``device`` is built fused: on CUDA and on the CPU
    (torch has fused AdamW kernels for both); not on other devices (MPS, XPU), where torch's
    default update runs."""
    return torch.device(device).type in ("cuda", "cpu")
