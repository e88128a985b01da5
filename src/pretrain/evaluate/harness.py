"""lm-eval harness tasks: the repository's offline tasks over the held-out documents
(``lm_eval_tasks/``) and lm-eval's own by name, run on a model in memory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from pretrain.config.evaluate import EvaluateConfig
from pretrain.errors import ConfigError
from pretrain.tokens.tokenizer import encode_texts

TASK_DIR = Path(__file__).parent / "lm_eval_tasks"


def task_config(name: str, data_dir: Path) -> dict[str, Any] | str:
    """A local task's config with its data files made absolute, or the name of a harness task."""
    path = TASK_DIR / f"{name}.yaml"
    if not path.exists():
        return name  # a task of lm-eval's own registry (most need the hub)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    files = config.get("dataset_kwargs", {}).get("data_files", {})
    config["dataset_kwargs"]["data_files"] = {k: str((data_dir / v).resolve()) for k, v in files.items()}
    return config


def has_data(task: dict[str, Any]) -> bool:
    """Whether a local task's data files hold any record (tiny corpora may yield no items)."""
    return all(Path(f).exists() and Path(f).stat().st_size > 0
               for f in task["dataset_kwargs"]["data_files"].values())


def resolve_tasks(cfg: EvaluateConfig, data_dir: Path) -> tuple[list, dict[str, str]]:
    """The tasks to run (local ones as configs with absolute data paths, harness ones by name)
    and, for each local task with nothing to score, the reason it is skipped."""
    tasks, skipped = [], {}
    for name in cfg.lm_eval_tasks:
        task = task_config(name, data_dir)
        if isinstance(task, dict) and not has_data(task):
            skipped[f"lm_eval.{name}"] = EMPTY_TASKS.get(name, "its data file is empty")
        else:
            tasks.append(task)
    return tasks, skipped


EMPTY_TASKS = {
    "pretrain_heldout_mc": "the pack stage made no multiple-choice items: it needs at least 4 "
                           "held-out documents of 3/4 pack.seq_len tokens or more (raise "
                           "pack.val_fraction, lower pack.seq_len or add data)",
    "pretrain_heldout_ppl": "the pack stage held out no documents",
}


def document_lm(model, tokenizer, batch_size: int, max_length: int):
    """lm-eval's HF model, scoring every text from a document start as training saw it.

    Training rows start each document with BOS (``pretrain.tokens.pack``). lm-eval's own ``hf`` model
    (0.4.13) cannot give every request type that start with our saved tokenizer, which adds BOS
    (``pretrain.tokens.tokenizer.match_training``): its ``tok_encode`` takes the tokenizer's BOS and
    rolling-perplexity windows get its ``prefix_token_id`` (BOS) on top, so BOS twice; with
    ``add_bos_token=False`` the rolling windows are right and a multiple-choice context has no
    BOS. Here ``tok_encode`` adds nothing (the literal text of a special token stays text),
    a context/continuation pair gets exactly one BOS in front, rolling windows get the prefix
    only, and batch encoding for generation tasks uses the tokenizer's own BOS.
    """
    from lm_eval.models.huggingface import HFLM

    class DocumentLM(HFLM):
        def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                       left_truncate_len: int | None = None, **kwargs) -> list[int]:
            ids = encode_texts(self.tokenizer, [string])[0]
            return ids[-left_truncate_len:] if left_truncate_len else ids

        def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            context_enc, continuation_enc = super()._encode_pair(context, continuation)
            return [self.prefix_token_id] + context_enc, continuation_enc

    return DocumentLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size,
                      device=str(model.device), max_length=max_length)


def run_lm_eval(model, tokenizer, cfg: EvaluateConfig, tasks: list, max_length: int) -> dict:
    """Run ``tasks`` (``resolve_tasks``) through lm-eval; return {task: {metric: value}}."""
    if not tasks:
        return {}
    local_only = all(isinstance(t, dict) for t in tasks)
    import datasets
    import lm_eval
    from lm_eval.tasks import TaskManager

    # Loading local JSON through `datasets` otherwise pings the hub's download counter.
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    if local_only:
        datasets.config.HF_HUB_OFFLINE = True
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    lm = document_lm(model, tokenizer, cfg.batch_size, max_length)
    try:
        out = lm_eval.simple_evaluate(
            model=lm, tasks=tasks, task_manager=TaskManager(include_defaults=not local_only),
            limit=cfg.lm_eval_limit, num_fewshot=cfg.lm_eval_num_fewshot, bootstrap_iters=0,
            log_samples=False)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"params.yaml: evaluate.lm_eval_tasks: {exc}") from None
    shots = out.get("n-shot", {})
    return {task: {**{k.split(",")[0]: v for k, v in metrics.items()
                      if "," in k and "_stderr" not in k and isinstance(v, (int, float))},
                   **({"n_shot": shots[task]} if isinstance(shots.get(task), int) else {})}
            for task, metrics in sorted(out["results"].items())}
