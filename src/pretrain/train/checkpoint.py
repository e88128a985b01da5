"""Training checkpoints that resume bit for bit, keyed to what produced them.

A checkpoint holds the model, the optimizer state, the loss scaler, the RNG states of every
process (the CPU generator's and its CUDA device's) and the step (which fixes the data position:
batches are recomputed from the seed). Everything is
safetensors or JSON, never a pickle. Each is a folder ``step-00000100`` renamed into place when
complete; older ones are deleted after a newer one is in place, so a kill at any moment leaves
a usable one. The state is gathered whole from all processes, FSDP-sharded or not, and
written by the first, so a run can resume on another number of processes or sharding.

The checkpoint folder survives between runs (a DVC ``persist``-like folder outside the cache),
so a checkpoint records a key: a hash of the training params that change the result and of the
initial model and training data. A run resumes only from a checkpoint with its own key; another
experiment's is ignored and removed (DVC's persist alone leaks checkpoints across ``dvc exp run``
variants).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from pretrain.config.train import TrainConfig
from pretrain.io import atomic_path

# State dicts gathered whole on the CPU of the first process (empty on the others), from an
# FSDP-sharded model or a plain one.
GATHERED = StateDictOptions(full_state_dict=True, cpu_offload=True)

# Params that change how a run is watched or launched, not the model it ends with.
UNKEYED = {"log_every", "checkpoint_every", "eval_every", "eval_batches", "report_to", "launcher",
           "sharding", "deepspeed", "num_workers", "peak_tflops"}
PREFIX = "step-"
LOGS = "logs"  # the checkpoint's copy of the log folder
UNCOPIED_LOGS = ("wandb",)  # W&B keeps its run on its server and resumes it by id
FORMAT = 2  # tensors named by parameter, not by index (checkpoints of other formats are removed)


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_key(cfg: TrainConfig, model_dir: Path, train_shards: list[dict[str, Any]]) -> str:
    """Hash of the result-changing params, the initial model's files and the training rows
    (``train_shards``: the token store's training shards in order, as its manifest lists them,
    each with the digest pack took of its tokens: the data is keyed without reading it)."""
    params = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in UNKEYED}
    parts = [json.dumps(params, sort_keys=True), json.dumps(train_shards, sort_keys=True)]
    files = sorted(p for p in Path(model_dir).rglob("*") if p.is_file())
    parts += [f"{p.name}:{file_digest(p)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint found on disk: its folder, optimizer step and saved state."""
    path: Path
    step: int
    state: dict[str, Any]


def find(folder: Path, key: str) -> Optional[Checkpoint]:
    """The newest complete checkpoint with ``key``; checkpoints with another key are removed."""
    found = []
    for path in sorted(Path(folder).glob(f"{PREFIX}*")) if Path(folder).is_dir() else []:
        try:
            state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a checkpoint this code wrote; leave it
        if state.get("key") != key or state.get("format") != FORMAT:
            shutil.rmtree(path, ignore_errors=True)
            continue
        found.append(Checkpoint(path, int(state["step"]), state))
    return max(found, key=lambda c: c.step) if found else None


def find_for_all(folder: Optional[Path], key: str, main: bool, world: int) -> Optional[Checkpoint]:
    """``find`` on the first process only (it removes other runs' checkpoints); the others of
    the ``world`` processes learn what it found, so the folder need not be shared between
    machines. None without a folder."""
    if folder is None:
        return None
    box = [find(folder, key) if main else None]
    if world > 1:
        torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """The whole weights and optimizer state (keyed by parameter name) of a plain, DDP or
    FSDP-sharded model, on the CPU of the first process (empty on the others); every process
    must call it."""
    return get_state_dict(model, optimizer, options=GATHERED)


def save(folder: Path, key: str, step: int, weights: dict[str, torch.Tensor], optim: dict[str, Any],
         scaler: Optional[torch.amp.GradScaler], extra: Optional[dict[str, Any]] = None,
         keep: int = 1, log_dir: Optional[Path] = None,
         rng: Optional[dict[str, torch.Tensor]] = None,
         tensors: Optional[dict[str, dict[str, torch.Tensor]]] = None) -> Path:
    """Write the checkpoint of optimizer step ``step`` from the whole ``weights`` and optimizer
    state ``optim`` (as ``gather`` gives them) and every process's RNG states ``rng`` (as
    ``gather_rng`` gives them; None: this process's alone, as rank 0), with the JSON-able
    ``extra`` in its state and a copy of the curves logged so far (``log_dir``, see
    ``restore_logs``) and ``tensors`` (``{file stem: tensors}``, an objective's own, as
    ``<stem>.safetensors``), and keep only the newest ``keep``. The first process calls it,
    after every process gathered."""
    path = Path(folder) / f"{PREFIX}{step:08d}"
    optim_tensors, groups = _optimizer_tensors(optim)
    with atomic_path(path) as tmp:
        tmp.mkdir()
        if log_dir is not None and Path(log_dir).is_dir():
            shutil.copytree(log_dir, tmp / LOGS, ignore=shutil.ignore_patterns(*UNCOPIED_LOGS))
        save_file(_unshared(weights), str(tmp / "model.safetensors"))
        save_file(optim_tensors, str(tmp / "optimizer.safetensors"))
        for stem, own in (tensors or {}).items():
            save_file(_unshared(own), str(tmp / f"{stem}.safetensors"))
        save_file(rng if rng is not None else _ranked([_rng_tensors()]), str(tmp / "rng.safetensors"))
        state = {"key": key, "step": step, "format": FORMAT, "param_groups": groups,
                 "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
                 **(extra or {})}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    for old in sorted(Path(folder).glob(f"{PREFIX}*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def restore_logs(ckpt: Checkpoint, log_dir: Path) -> None:
    """Put back the curves ``ckpt`` copied when it was written, replacing ``log_dir``.

    The log folder is a plain DVC output, which DVC deletes before it reruns the stage: a
    ``persist`` output would keep it, but DVC's run cache skips every stage with one
    (``dvc.stage.cache._can_hash``), so returning to a parameter set already trained would
    train it again instead of restoring it in seconds."""
    saved = ckpt.path / LOGS
    if not saved.is_dir():
        return
    shutil.rmtree(log_dir, ignore_errors=True)
    shutil.copytree(saved, log_dir)


def load(ckpt: Checkpoint) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """The weights, optimizer state (as ``gather`` gives them) and RNG states of ``ckpt``."""
    weights = load_file(str(ckpt.path / "model.safetensors"))
    optim = _optimizer_state(load_file(str(ckpt.path / "optimizer.safetensors")),
                             ckpt.state["param_groups"])
    return weights, optim, load_file(str(ckpt.path / "rng.safetensors"))


def restore(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            scaler: Optional[torch.amp.GradScaler], read: bool = True,
            broadcast: bool = False) -> None:
    """Load ``ckpt`` into the (unwrapped, possibly FSDP-sharded) model, the optimizer, the
    scaler and the RNGs. With ``broadcast`` every process of the group calls it and only the
    one with ``read`` (the first) reads the files, so other machines need not see them."""
    weights, optim, rng = load(ckpt) if read else ({}, {}, None)
    restore_weights(model, weights, broadcast)
    # Apart from the weights: set_state_dict skips the model on a process given no weights,
    # which then misses the broadcast of the first.
    set_optimizer_state_dict(model, optimizer, optim,
                             options=StateDictOptions(full_state_dict=True,
                                                      broadcast_from_rank0=broadcast))
    restore_rest(ckpt, scaler, rng, broadcast)


def restore_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor],
                    broadcast: bool = False) -> None:
    """Load whole ``weights`` into the model (with ``broadcast``: those of the first process
    into the model of every process)."""
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True,
                                                                  broadcast_from_rank0=broadcast))


def restore_rest(ckpt: Checkpoint, scaler: Optional[torch.amp.GradScaler],
                 rng: Optional[dict[str, torch.Tensor]], broadcast: bool = False) -> None:
    """The loss scaler and the RNG states (with ``broadcast``: those the first process read)."""
    if scaler is not None and ckpt.state["scaler"]:
        scaler.load_state_dict(ckpt.state["scaler"])
    if broadcast:
        box = [rng]
        torch.distributed.broadcast_object_list(box, src=0)
        rng = box[0]
    _set_rng(rng)


def clear(folder: Path) -> None:
    """Remove every checkpoint in ``folder`` (training finished; the model is the artifact)."""
    for path in Path(folder).glob(f"{PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors with shared memory (tied embeddings) copied apart: safetensors refuses
    shared tensors."""
    seen, result = set(), {}
    for name, value in tensors.items():
        value = value.detach().contiguous()
        if value.untyped_storage().data_ptr() in seen:
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        result[name] = value
    return result


def _optimizer_tensors(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list]:
    """A full optimizer state dict (keyed by parameter name) as tensors named
    ``<parameter>.<state>`` and JSON-able parameter groups."""
    tensors = {f"{param}.{name}": value for param, entry in sd["state"].items()
               for name, value in entry.items()}
    return _unshared(tensors), sd["param_groups"]


def _optimizer_state(tensors: dict[str, torch.Tensor], groups: list) -> dict[str, Any]:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        param, name = key.rsplit(".", 1)
        state.setdefault(param, {})[name] = value
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    return {"state": state, "param_groups": groups}


def gather_rng(world: int) -> Optional[dict[str, torch.Tensor]]:
    """The RNG states of every one of the ``world`` processes, named ``rank<r>.cpu`` (the CPU
    generator, uint8) and ``rank<r>.cuda`` (the generator of the process's current CUDA device,
    where there is one), on the first process; None on the others. Every process calls it.

    Each process's own: under DDP each rank draws on its own device's generator (dropout,
    random masks), so rank 0's state restored everywhere would not continue the others' streams.
    """
    own = _rng_tensors()
    if world == 1:
        return _ranked([own])
    first = torch.distributed.get_rank() == 0
    everyone: Optional[list] = [None] * world if first else None
    torch.distributed.gather_object(own, everyone, dst=0)
    return _ranked(everyone) if first else None


def _rng_tensors() -> dict[str, torch.Tensor]:
    """This process's RNG states: the CPU generator's and its current CUDA device's."""
    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return tensors


def _ranked(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"rank{rank}.{name}": value for rank, own in enumerate(states) for name, value in own.items()}


def _set_rng(tensors: dict[str, torch.Tensor]) -> None:
    """Set this process's RNG states from a checkpoint's: its own rank's; rank 0's when the run
    resumes on more processes than wrote it; a checkpoint of before per-rank states holds
    ``cpu`` (and ``cuda<i>``, no longer restored) unprefixed."""
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    prefix = f"rank{rank}." if f"rank{rank}.cpu" in tensors else "rank0."
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)} or tensors
    torch.set_rng_state(own["cpu"])
    if "cuda" in own and torch.cuda.is_available():
        torch.cuda.set_rng_state(own["cuda"])
