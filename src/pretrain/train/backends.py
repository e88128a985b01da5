"""Training backends: how the processes of a run hold and update the model, one object per
parallelism, chosen by name. The loop (pretrain.train.loop) is single-device code that calls the
interface below and has no backend branches; the parallelism is applied to the model and
optimizer from outside it, as torchtitan's ``parallelize_*`` functions do ("write
single-device model code").

=========  ===========================================================  ===========
name       what each process holds                                      module
=========  ===========================================================  ===========
ddp        the whole model: plain in one process, DDP over several      ddp.py
fsdp       a shard of weights, gradients, optimizer state (FSDP2)       fsdp.py
deepspeed  a ZeRO-1/2/3 partition, updated by a DeepSpeed engine        zero.py
=========  ===========================================================  ===========
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Optional, Protocol

import torch
from accelerate.utils import DistributedType

from pretrain.config.train import TrainConfig, zero_stage
from pretrain.errors import ConfigError
from pretrain.runtime import check_split
from pretrain.train import zero
from pretrain.train.checkpoint import Checkpoint
from pretrain.train.ddp import Replicated
from pretrain.train.fsdp import Fsdp


class Backend(Protocol):
    """What the loop calls, in this order. Once: ``prepare``. Each optimizer step: for each
    micro-batch ``with accumulating(last): loss = forward(...); backward(loss)``, then
    ``step()``. For a checkpoint ``full_state()``, for the trained model ``full_weights()``:
    every process calls both (they gather)."""

    name: str  # how the state is split, as the train report's "sharding" names it
    every_process_validates: bool  # the weights are split: every process joins each forward
    loss_scaling: bool  # can scale fp16 losses; fp16 is refused where not
    groups: Optional[Callable[[torch.nn.Module, float], Optional[list[dict]]]]
    # the optimizer's parameter groups from (placed model, weight decay), set before prepare (None: default)

    def prepare(self, model: torch.nn.Module, resume: Optional[Checkpoint]
                ) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        """Place / shard / wrap the single-device ``model``, build its optimizer and restore
        ``resume`` (if any) into both; returns the module to call and the optimizer whose
        param_groups take the learning rate."""

    def accumulating(self, last: bool) -> ContextManager:
        """The context of one micro-batch's forward and backward (``last``: of the step)."""

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of one micro-batch's mean loss."""

    def step(self) -> Any:
        """Clip, update the weights, clear the gradients; the gradient norm (float-able)."""

    def full_state(self) -> tuple[dict, dict, Optional[torch.amp.GradScaler]]:
        """Whole weights, whole optimizer state keyed by parameter name (as
        ``checkpoint.save`` takes them, on the first process) and the loss scaler if any."""

    def full_weights(self) -> Optional[dict[str, torch.Tensor]]:
        """Whole weights for the saved model (None: the model holds them whole)."""


BACKENDS: dict[str, Callable[[TrainConfig, Any, Optional[torch.dtype]], Backend]] = {
    "ddp": Replicated,
    "fsdp": Fsdp,
    "deepspeed": zero.DeepSpeedZero,
}


def backend_name(cfg: TrainConfig, world: int) -> str:
    """The BACKENDS entry for ``cfg`` on ``world`` processes: ``train.deepspeed`` or
    ``train.sharding`` (TrainConfig refuses both at once); one process holds everything."""
    if world == 1:
        return "ddp"
    return "deepspeed" if cfg.deepspeed is not None else "fsdp" if cfg.sharding != "none" else "ddp"


def layout_name(cfg: TrainConfig) -> str:
    """How several processes hold the training state: none (DDP), an FSDP strategy, or
    deepspeed_zero1/2/3."""
    return f"deepspeed_zero{zero_stage(cfg)}" if cfg.deepspeed is not None else cfg.sharding


def make_backend(cfg: TrainConfig, accelerator: Any, dtype: Optional[torch.dtype]) -> Backend:
    """The backend for ``cfg`` under ``accelerator`` (an ``accelerate.Accelerator``: device,
    process count, main process, launch plugin) with autocast ``dtype``.

    Raises ConfigError, before any model or data is loaded, for accelerate's own FSDP /
    DeepSpeed / Megatron plugins, a micro-batch that the processes cannot split evenly, a
    ``train.deepspeed`` that contradicts the train params, and fp16 where losses are not scaled.
    """
    if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED,
                                        DistributedType.MEGATRON_LM):
        raise ConfigError(f"train.launcher: accelerate's {accelerator.distributed_type.value} "
                          "plugin is not used by this loop; launch with --multi_gpu and set "
                          "train.sharding: full_shard (FSDP) or train.deepspeed (ZeRO) "
                          "instead")
    world = accelerator.num_processes
    check_split(cfg.micro_batch_size, world)
    backend = BACKENDS[backend_name(cfg, world)](cfg, accelerator, dtype)
    for name, used in (("sharding", cfg.sharding != "none"), ("deepspeed", cfg.deepspeed is not None)):
        if used and world == 1 and accelerator.is_main_process:
            print(f"warning: train.{name} has no effect in one process; launch several with "
                  "train.launcher (accelerate launch --multi_gpu ...)")
    if dtype == torch.float16 and not backend.loss_scaling:
        raise ConfigError("train.precision: fp16 loss scaling is not supported with "
                          "train.sharding or train.deepspeed; use bf16 or fp32")
    return backend
