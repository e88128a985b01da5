"""The finetune stage: fine-tune the final model (and the compared backbones) as
``finetune.task`` says, on the project's training loop, and score each on held-out data.

Why the project's loop and not TRL's ``SFTTrainer`` / the HF ``Trainer``: the loop already
resumes bit for bit from checkpoints keyed to their run, logs DVCLive curves per optimizer step
(the Trainer's callback counts log calls and wipes its folder on resume) and writes its outputs
atomically. The stage runs in one process (the loop's multi-process backends are not run with
these objectives yet). A fine-tune is an objective of that loop (pretrain.train.objective): its rows, model, loss and validation.
transformers does what it does well here: the sequence-classification models and chat
templates (``apply_chat_template`` and its assistant masks).

The stage's output folder is the fine-tuned final model, loadable by
``pipeline("text-classification" | "text-generation", model=...)``, with ``finetune.json``
saying what it is; each compared backbone is fine-tuned the same way (same split, steps, seed)
and scored, and its model is not kept. ``task: none`` writes ``finetune.json`` alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from pretrain.config.finetune import FinetuneConfig
from pretrain.config.train import TrainConfig
from pretrain.io import atomic_path, write_json

MANIFEST = "finetune.json"
"""The file in the stage's output folder that says what the folder holds."""


def pass_through(out_dir: Path, live_dir: Path) -> dict[str, Any]:
    """``task: none``: the output folder with ``finetune.json`` only and an empty curves
    folder; imports nothing heavy (about a second for the whole stage)."""
    report = {"task": "none"}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_json(tmp / MANIFEST, report)
    with atomic_path(live_dir) as tmp:
        tmp.mkdir()
    return report


def tune_config(cfg: FinetuneConfig, train: TrainConfig) -> TrainConfig:
    """The loop's settings for a fine-tune: the optimizer, betas, epsilon, precision, clipping
    and the schedule's floor (``min_lr_ratio``) of the ``train`` section; steps, batch, rates,
    schedule and seed of ``finetune``. Eager (no
    torch.compile): freezing changes which weights need gradients, which recompiles, and a
    short fine-tune pays the compile up front."""
    return dataclasses.replace(
        train, learning_rate=cfg.learning_rate, schedule=cfg.schedule, warmup_steps=cfg.warmup_steps,
        max_steps=cfg.max_steps, max_tokens=None, micro_batch_size=cfg.micro_batch_size,
        grad_accum_steps=cfg.grad_accum_steps, weight_decay=cfg.weight_decay, log_every=1,
        eval_every=cfg.eval_every, checkpoint_every=cfg.checkpoint_every, seed=cfg.seed,
        compile=False, report_to=[])


def backbones(cfg: FinetuneConfig, final_dir: Path, init_dir: Path) -> list[tuple[str, Path]]:
    """(name, model folder) of each backbone: the one tuned and kept first (``final`` or the
    folder's name), then ``compare``'s (``init`` or a folder's name)."""
    first = ("final", Path(final_dir)) if cfg.model == "final" else (Path(cfg.model).name, Path(cfg.model))
    found = [first]
    for entry in cfg.compare:
        found.append(("init", Path(init_dir)) if entry == "init" else (Path(entry).name, Path(entry)))
    return found  # names distinct: FinetuneConfig refuses two alike


def model_hash(folder: Path) -> str:
    """sha256 (16 hex) of a model folder's weight files."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def finetune(cfg: FinetuneConfig, train: TrainConfig, final_dir: Path, init_dir: Path, out_dir: Path,
             live_dir: Path, checkpoint_dir: Optional[Path]) -> dict[str, Any]:
    """Run the fine-tune ``cfg.task`` from each backbone (``backbones``); the first one's model
    goes to ``out_dir``, its curves to ``live_dir``; checkpoints under ``checkpoint_dir/<name>``.
    Returns the stage's report (metrics/finetune.json). Raises ConfigError / DataError, one
    line, for bad data or settings."""
    if cfg.task == "none":
        return pass_through(out_dir, live_dir)
    from pretrain.finetune import tasks  # torch, transformers: only when there is work

    task = tasks.TASKS[cfg.task](cfg)
    report: dict[str, Any] = {"task": cfg.task, **task.describe(), "backbones": {}}
    tcfg = tune_config(cfg, train)
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="finetune-", dir=Path(out_dir).parent) as scratch:
        for i, (name, folder) in enumerate(backbones(cfg, final_dir, init_dir)):
            keep = i == 0
            target = Path(out_dir) if keep else Path(scratch) / name
            live = Path(live_dir) if keep else Path(scratch) / f"{name}-live"
            print(f"finetune: {cfg.task} from {name} ({folder})")
            ckpt = Path(checkpoint_dir) / name if checkpoint_dir else None
            run = task.run(tcfg, folder, target, live, ckpt)
            report["backbones"][name] = {"model": str(folder), "model_hash": model_hash(folder), **run}
            if not keep:
                shutil.rmtree(target, ignore_errors=True)
    report.update(task.compare(report["backbones"]))
    write_json(Path(out_dir) / MANIFEST, {"task": cfg.task, "backbone": next(iter(report["backbones"]))})
    return report
