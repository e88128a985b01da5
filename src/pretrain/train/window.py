"""The optimizer steps the training loop has queued since it last waited for the device.

On a GPU the host runs ahead of the device; reading a value back (``.item()``) makes it wait
for all queued work. The loop keeps each step's loss and gradient norm on the device and reads a
whole window of them at once, at a step that logs (pretrain.train.loop.Run.fit).
"""

from __future__ import annotations

from typing import Any

import torch


class Window:
    """The optimizer steps queued since the host last waited for the device: their learning
    rates, and their losses and gradient norms still on the device."""

    def __init__(self, began: float):
        self.began = began
        self.steps: list[int] = []
        self.lrs: list[float] = []
        self.losses: list[torch.Tensor] = []
        self.norms: list[Any] = []

    def add(self, step: int, lr: float, loss_sum: torch.Tensor, norm: Any) -> None:
        """One more queued step: its number (0-based), learning rate, sum of its micro-batches'
        losses (a 0-dim fp32 tensor on the device) and gradient norm."""
        self.steps.append(step)
        self.lrs.append(lr)
        self.losses.append(loss_sum)
        self.norms.append(norm)

    def values(self, accelerator: Any, device: torch.device) -> tuple[list[float], list[float]]:
        """The loss sums (averaged over the processes of ``accelerator``, an
        ``accelerate.Accelerator``: one all-reduce) and gradient norms (float-able: tensors on
        ``device`` or numbers) as floats: the one host sync of the window."""
        losses = accelerator.reduce(torch.stack(self.losses), reduction="mean")
        norms = torch.stack([torch.as_tensor(n, device=device).float() for n in self.norms])
        return losses.tolist(), norms.tolist()
