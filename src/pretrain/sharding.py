"""FSDP (PyTorch's fully_shard, "FSDP2"): parameters, gradients and optimizer state split among
the processes of a run instead of copied into each, for models whose training state does not
fit on one device. The same code runs on GPUs (NCCL) and on CPU processes (gloo), which is how
the tests check it."""

from __future__ import annotations

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from pretrain.errors import ConfigError

# State dicts gathered whole on the CPU of the first process (empty on the others), from a
# sharded model or a plain one.
GATHERED = StateDictOptions(full_state_dict=True, cpu_offload=True)


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

