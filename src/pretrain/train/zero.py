"""DeepSpeed ZeRO as an alternative to FSDP: ``train.deepspeed`` holds a DeepSpeed config (the
``ds_config.json`` of the HF Trainer recipe, as YAML in params.yaml) and the loop trains through a
DeepSpeed engine with the optimizer, schedule, batch sizes, clipping and precision of the train
params.

The weights stay in fp32 as DeepSpeed sees them and bf16 / fp32 comes from the loop's autocast,
as with DDP and FSDP, so all three follow the same loss curve. Checkpoints are the loop's own
(safetensors, keyed to the run): the whole model and optimizer state is gathered from the ZeRO
partitions parameter by parameter with DeepSpeed's tensor-fragment API and written by the first
process, so a DeepSpeed run resumes on another ZeRO stage, on FSDP or on DDP, and back.

DeepSpeed is imported only inside the functions below that a run with ``train.deepspeed`` calls;
a stage run without it keeps DeepSpeed out of the process altogether (pretrain.stage.OPTIONAL).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
from typing import Any, Callable, ContextManager, Optional

import torch

from pretrain.config.train import TrainConfig, deepspeed_owned, deepspeed_problem, zero_stage
from pretrain.errors import ConfigError
from pretrain.train import checkpoint
from pretrain.train.optim import build_optimizer

class DeepSpeedZero:
    """The ``deepspeed`` entry of ``pretrain.train.backends.BACKENDS``: a DeepSpeed engine over the
    loop's model and torch optimizer, configured by ``engine_config`` (checked when built, before
    the model loads)."""

    loss_scaling = False  # the weights stay fp32 under autocast; fp16 is refused, bf16 needs none
    groups: Optional[Callable[[torch.nn.Module, float], Optional[list[dict]]]] = None
    """An objective's parameter groups, built from the model (None: the default)."""

    def __init__(self, cfg: TrainConfig, accelerator: Any, dtype: Optional[torch.dtype]):
        self.cfg, self.acc = cfg, accelerator
        self.config = engine_config(cfg, accelerator.num_processes)
        self.name = f"deepspeed_zero{zero_stage(cfg)}"
        self.every_process_validates = zero_stage(cfg) == 3  # ZeRO-3 splits the weights

    def prepare(self, model: torch.nn.Module, resume: Optional[checkpoint.Checkpoint]
                ) -> tuple[Any, torch.optim.Optimizer]:
        """The engine, from the checkpoint's weights and optimizer state if resuming: weights go
        into the model before DeepSpeed partitions it, the optimizer state into the partitions
        after. Returns the engine (called like the model) and the torch optimizer."""
        model.to(self.acc.device)
        # Not fused: DeepSpeed swaps the parameter groups for flat partitions (on the CPU when
        # offloaded), which the fused kernel has not been run on here (no GPU run yet).
        self.model, optimizer = model, build_optimizer(
            model, self.cfg, groups=self.groups(model, self.cfg.weight_decay) if self.groups else None)
        names = {id(p): name for name, p in model.named_parameters()}
        self.group_names = [[names[id(p)] for p in group["params"]]
                            for group in optimizer.param_groups]
        weights, optim, rng = {}, None, None
        if resume:
            if self.acc.is_main_process:
                weights, optim, rng = checkpoint.load(resume)
            checkpoint.restore_weights(model, weights, broadcast=True)
        self.engine = initialize(model, optimizer, self.config)
        if resume:
            load_optimizer_state(self.engine, model, optim, self.acc.device)
            checkpoint.restore_rest(resume, None, rng, broadcast=True)
        return self.engine, optimizer

    def accumulating(self, last: bool) -> ContextManager:
        """Nothing: the engine counts micro-batches and reduces gradients at the last one."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """The engine scales the loss for accumulation; its ``step`` must follow every backward
        (it counts the micro-batch, and at the last one clips and updates the weights)."""
        self.engine.backward(loss)
        self.engine.step()

    def step(self) -> Optional[float]:
        """The update happened in the last micro-batch's ``backward``: its gradient norm."""
        return self.engine.get_global_grad_norm()

    def full_state(self) -> tuple[dict, dict, None]:
        """Whole weights and optimizer state gathered from the partitions (no loss scaler)."""
        return (full_weights(self.model),
                full_optimizer_state(self.engine, self.model, self.group_names), None)

    def full_weights(self) -> dict[str, torch.Tensor]:
        """The whole weights, gathered from the partitions."""
        return full_weights(self.model)


def engine_config(cfg: TrainConfig, world: int) -> dict[str, Any]:
    """``train.deepspeed`` completed from the train params for ``world`` processes; a value
    that contradicts them is a ConfigError naming the key ("auto" is filled in;
    pretrain.config.train.deepspeed_problem, which the params check also runs)."""
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError("train.deepspeed: DeepSpeed is not installed "
                          "(pip install 'pretrain[deepspeed]')")
    problem = deepspeed_problem(cfg, world)
    if problem:
        raise ConfigError(problem)
    config = {**copy.deepcopy(cfg.deepspeed or {}), **deepspeed_owned(cfg, world)}
    config["zero_allow_untested_optimizer"] = True  # the loop's AdamW / Lion are torch optimizers
    config.setdefault("zero_force_ds_cpu_optimizer", False)  # they also run on offloaded state
    config.setdefault("steps_per_print", 2**31 - 1)  # the loop reports progress itself
    return config


def initialize(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               config: dict[str, Any]) -> Any:
    """A DeepSpeed engine over ``model`` and ``optimizer``, on the process group that
    accelerate launch (or torchrun) set up."""
    import deepspeed  # optional: engine_config checked that it is installed

    deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())  # joins the group
    # ZeRO-1/2 allocate their gradient buckets afresh every micro-batch: 2 x 500M elements by
    # default, free from the CUDA caching allocator but 4 GB of new pages on the CPU (47x
    # slower steps measured). A bucket larger than the model holds nothing more.
    zero_opt = config["zero_optimization"]
    numel = sum(p.numel() for p in model.parameters())
    for key in ("reduce_bucket_size", "allgather_bucket_size"):
        zero_opt.setdefault(key, min(numel, 500_000_000))
    try:
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config,
                                          dist_init_required=False)
    except (AssertionError, ValueError, TypeError, KeyError) as exc:  # its config checks
        raise ConfigError(f"train.deepspeed: DeepSpeed refused the config: "
                          f"{type(exc).__name__}: {exc}") from None
    return engine


def full_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's fp32 weights (named as in its state dict) on the CPU of every process,
    gathered from the ZeRO partitions; every process must call it."""
    from deepspeed.utils import safe_get_full_fp32_param

    persistent = set(model.state_dict())
    gathered: dict[int, torch.Tensor] = {}
    weights = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) not in gathered:  # tied weights once
            full = safe_get_full_fp32_param(param)
            gathered[id(param)] = (full if full is not None else param).detach().cpu()
        weights[name] = gathered[id(param)]
    weights.update({name: buffer.detach().cpu() for name, buffer in model.named_buffers()
                    if name in persistent})
    return weights


def full_optimizer_state(engine: Any, model: torch.nn.Module,
                         groups: list[list[str]]) -> dict[str, Any]:
    """The optimizer state as ``get_state_dict`` gives it for a plain model (state keyed by
    parameter name, groups listing names), gathered from the ZeRO partitions; every process
    must call it. ``groups``: the parameter names of each group, taken before partitioning."""
    from deepspeed.utils import safe_get_full_optimizer_state

    optimizer = _relinked(engine)
    tensor_keys, scalars = _layout(next((s for s in optimizer.state.values() if s), {}))
    state = {}
    for name, param in model.named_parameters():
        entry = {key: safe_get_full_optimizer_state(param, key).detach().cpu() for key in tensor_keys}
        state[name] = {**entry, **{key: value.clone() for key, value in scalars.items()}}
    param_groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": names}
                    for group, names in zip(optimizer.param_groups, groups)]
    return {"state": state, "param_groups": param_groups}


def load_optimizer_state(engine: Any, model: torch.nn.Module, optim: Optional[dict[str, Any]],
                         device: torch.device) -> None:
    """Put a full optimizer state (as from ``full_optimizer_state``, read by the first process
    only: None on the others) into the ZeRO partitions of every process."""
    from deepspeed.utils import safe_set_full_optimizer_state

    optimizer = engine.optimizer.optimizer  # the loop's torch optimizer, over flat partitions
    layout = None
    if optim is not None:
        tensors, scalars = _layout(next(iter(optim["state"].values())))
        layout = {"tensors": tensors, "scalars": scalars,
                  "groups": [{k: v for k, v in g.items() if k != "params"}
                             for g in optim["param_groups"]]}
    box = [layout]
    torch.distributed.broadcast_object_list(box, src=0)
    layout = box[0]
    for group, saved in zip(optimizer.param_groups, layout["groups"]):
        group.update(saved)
    # The torch optimizer creates its state at its first step; create it now so that the
    # fragments can be linked to it and filled.
    for group in optimizer.param_groups:
        for flat in group["params"]:
            optimizer.state[flat] = {**{k: torch.zeros_like(flat) for k in layout["tensors"]},
                                     **{k: v.clone() for k, v in layout["scalars"].items()}}
    _relinked(engine)
    for name, param in model.named_parameters():
        shape = getattr(param, "ds_shape", param.shape)  # ZeRO-3 keeps the full shape aside
        for key in layout["tensors"]:
            value = (optim["state"][name][key].to(device) if optim is not None
                     else torch.empty(shape, dtype=torch.float32, device=device))
            torch.distributed.broadcast(value, src=0)
            safe_set_full_optimizer_state(param, value, key)


def _relinked(engine: Any) -> torch.optim.Optimizer:
    """The torch optimizer under ``engine``, with ZeRO-1/2's views of each parameter's slice of
    the flat optimizer state made afresh. DeepSpeed links them once, after the first group's
    first step, when the other groups have no state yet; with several groups (decayed and not)
    their fragments would stay empty."""
    zero = engine.optimizer
    if hasattr(zero, "_hp_optimizer_states_linked"):  # ZeRO-1/2 (ZeRO-3 looks state up directly)
        zero._hp_optimizer_states_linked = False
        zero._lazy_init_hp_params_optimizer_state()
    return zero.optimizer


def _layout(entry: dict[str, Any]) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The per-element state keys (exp_avg, ...) and the scalar states (step) of one entry of an
    optimizer state; every parameter has the same, as all step together in this loop."""
    tensors = sorted(k for k, v in entry.items() if torch.is_tensor(v) and v.dim())
    scalars = {k: v.detach().cpu() for k, v in entry.items() if torch.is_tensor(v) and not v.dim()}
    return tensors, scalars
