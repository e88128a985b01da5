"""The FSDP backend (PyTorch's fully_shard, "FSDP2"): parameters, gradients and optimizer state
split among the processes of a run instead of copied into each, for models whose training state
does not fit on one device. The same code runs on GPUs (NCCL) and on CPU processes (gloo), which
is how the tests check it."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch.distributed.checkpoint.state_dict import get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from pretrain.errors import ConfigError
from pretrain.train.checkpoint import GATHERED
from pretrain.train.ddp import Replicated


class Fsdp(Replicated):
    """The ``fsdp`` entry of ``pretrain.train.backends.BACKENDS``: the replicated backend's optimizer
    step over a model sharded by ``train.sharding`` (``full_shard`` or ``shard_grad_op``)
    instead of copied; the sharded modules synchronise gradients themselves (no DDP wrapper)."""

    every_process_validates = True  # the weights are split: every process joins each forward
    loss_scaling = False  # no sharded GradScaler here: fp16 is refused, bf16 needs none

    @property
    def name(self) -> str:
        return self.cfg.sharding

    def place(self, model: torch.nn.Module) -> None:
        shard_model(model, self.acc.device, self.cfg.sharding)  # moves each shard to the device

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def accumulating(self, last: bool) -> ContextManager:
        """Gradients are reduce-scattered only in the last micro-batch's backward."""
        self.model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()

    def whole_norm(self, norm: torch.Tensor) -> torch.Tensor:
        """clip_grad_norm_ over sharded gradients gives a DTensor: the norm over all shards."""
        return norm.full_tensor() if isinstance(norm, DTensor) else norm

    def full_weights(self) -> dict[str, torch.Tensor]:
        """The whole weights on the first process's CPU (empty on the others)."""
        return full_weights(self.model)


def shard_model(model: torch.nn.Module, device: torch.device, strategy: str) -> None:
    """Shard ``model`` in place over all processes of the default group, one FSDP unit per
    transformer block plus the root (embeddings, final norm, output layer).

    ``full_shard`` frees each block's gathered parameters after its forward pass and gathers
    them again for the backward (ZeRO-3); ``shard_grad_op`` keeps them until the backward (ZeRO-2
    memory for parameters, less communication).
    """
    blocks = set(getattr(model, "_no_split_modules", None) or ())
    units = [m for m in model.modules() if type(m).__name__ in blocks]
    if not units:
        raise ConfigError(f"train.sharding: {type(model).__name__} names no transformer block "
                          "class (_no_split_modules) to shard by")
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    reshard = strategy == "full_shard"
    for unit in units:
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard)


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on the CPU of the first process (empty on the others); every
    process must call it."""
    return get_model_state_dict(model, options=GATHERED)

