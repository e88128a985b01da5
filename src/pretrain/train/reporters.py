"""Where training curves go, chosen by name from ``train.report_to``: DVCLive (always, for
``dvc plots`` and ``dvc exp show``), TensorBoard and Weights & Biases.

Every reporter is told the optimizer step explicitly. On resume from a checkpoint at step k,
the points a killed run logged after step k are dropped first, so the curves have neither a gap
nor a duplicated step. W&B reads its API key from the environment (``WANDB_API_KEY``, or
``WANDB_MODE=offline``); nothing secret goes into params.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Optional

from dvclive import Live
from pretrain.errors import ConfigError
from pretrain.io import atomic_path


def truncate_tsv(path: Path, last_step: int) -> None:
    """Keep the header and the rows of ``path`` (a DVCLive metric file) up to ``last_step``."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    if not rows or "step" not in rows[0]:
        return
    column = rows[0].index("step")
    kept = [rows[0]] + [row for row in rows[1:] if int(row[column]) <= last_step]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t", lineterminator=os.linesep).writerows(kept)


class DVCLiveReporter:
    """Per-step TSV files under ``log_dir`` that the top-level ``plots`` of dvc.yaml draw."""

    def __init__(self, log_dir: Path, resume_step: Optional[int], params: dict[str, Any]):
        if resume_step is not None:
            for path in Path(log_dir).rglob("*.tsv"):
                truncate_tsv(path, resume_step)
        # dvcyaml=None: DVCLive must not rewrite the project's dvc.yaml (the plots are declared
        # there); resume=False wipes the previous run's curves.
        self.live = Live(dir=str(log_dir), save_dvc_exp=False, dvcyaml=None,
                         resume=resume_step is not None)
        self.live.log_params(params)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.live.step = step
        for name, value in metrics.items():
            self.live.log_metric(name, value)

    def flush(self) -> None:
        """Nothing to do: DVCLive appends each point to its file as it is logged."""

    def close(self) -> None:
        self.live.end()


class TensorBoardReporter:
    """Event files under ``log_dir/tensorboard`` (``tensorboard --logdir`` there)."""

    def __init__(self, log_dir: Path, resume_step: Optional[int], params: dict[str, Any]):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("train.report_to: tensorboard needs the tensorboard package "
                              "(pip install 'pretrain[tensorboard]')") from None
        # purge_step drops the events a killed run wrote after the checkpoint it resumes from.
        self.writer = SummaryWriter(str(Path(log_dir) / "tensorboard"),
                                    purge_step=None if resume_step is None else resume_step + 1)
        if resume_step is None:
            self.writer.add_text("params", "\n".join(f"    {k}: {v}" for k, v in params.items()))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, global_step=step)

    def flush(self) -> None:
        """Write the buffered events (SummaryWriter flushes every 120 s by itself)."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbReporter:
    """A Weights & Biases run, resumed by id when training resumes from a checkpoint."""

    def __init__(self, log_dir: Path, resume_step: Optional[int], params: dict[str, Any],
                 run_id: str = ""):
        try:
            import wandb
        except ImportError:
            raise ConfigError("train.report_to: wandb needs the wandb package "
                              "(pip install 'pretrain[wandb]')") from None
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "pretrain"), id=run_id or None,
                              dir=str(log_dir), config=params, resume="allow")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def flush(self) -> None:
        """Nothing to do: W&B sends points as they are logged and resumes its run by id."""

    def close(self) -> None:
        self.run.finish()


REPORTERS: dict[str, Callable[..., Any]] = {
    "dvclive": DVCLiveReporter,
    "tensorboard": TensorBoardReporter,
    "wandb": WandbReporter,
}


class Reporters:
    """Fan one ``log(step, metrics)`` out to every configured reporter."""

    def __init__(self, names: list[str], log_dir: Path, resume_step: Optional[int],
                 params: dict[str, Any], run_id: str):
        self.reporters = []
        for name in dict.fromkeys(["dvclive", *names]):
            extra = {"run_id": run_id} if name == "wandb" else {}
            self.reporters.append(REPORTERS[name](log_dir, resume_step, params, **extra))

    def log(self, step: int, metrics: dict[str, float]) -> None:
        for reporter in self.reporters:
            reporter.log(step, metrics)

    def flush(self) -> None:
        """Every reporter's points on disk (before a checkpoint copies the log folder)."""
        for reporter in self.reporters:
            reporter.flush()

    def close(self) -> None:
        for reporter in self.reporters:
            reporter.close()
