"""Evaluation: held-out loss, perplexity and bits per byte of the initial and trained models,
lm-eval harness tasks, 13-gram contamination of the local evaluation sets, and greedy
generations for fixed prompts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.config import EvaluateConfig
from pretrain.errors import ConfigError
from pretrain.heldout import NGRAM, TextBytes, overlap, read_texts, text_rows, training_ngrams
from pretrain.model import load_base
from pretrain.tokenizer import encode_texts, load_tokenizer, match_training
from pretrain.runtime import autocast_dtype, load_rows, pick_device, validation_loss

TASK_DIR = Path(__file__).parent / "lm_eval_tasks"


def load_model(path: Path, device: torch.device):
    """A saved causal LM (safetensors weights only, never a pickle) in eval mode, and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True)
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def contamination(data_dir: Path, tokenizer, general: list[str] | None = None) -> dict[str, Any]:
    """13-gram overlap of each local evaluation set with the training rows."""
    train = training_ngrams(load_rows(data_dir / "train.parquet"))
    sets = {"heldout_documents": [json.loads(line)["text"] for line in open(data_dir / "val_docs.jsonl")]}
    if general:
        sets["general_text"] = general
    mc_path = data_dir / "val_mc.jsonl"
    if mc_path.exists():
        items = [json.loads(line) for line in open(mc_path)]
        sets["heldout_multiple_choice"] = [i["context"] + i["choices"][i["label"]] for i in items]
    return {name: overlap((np.asarray(ids) for ids in encode_texts(tokenizer, texts)), train)
            for name, texts in sets.items()}


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

    Training rows start each document with BOS (``pretrain.pack``). lm-eval's own ``hf`` model
    (0.4.13) cannot give every request type that start with our saved tokenizer, which adds BOS
    (``pretrain.tokenizer.match_training``): its ``tok_encode`` takes the tokenizer's BOS and
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


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations (the course's settings: repetition penalty 1.1)."""
    outputs = []
    for prompt in prompts:
        head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        ids = torch.tensor([head + encode_texts(tokenizer, [prompt])[0]])
        out = model.generate(ids.to(model.device), attention_mask=torch.ones_like(ids).to(model.device),
                             max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.1,
                             pad_token_id=tokenizer.pad_token_id)
        outputs.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return outputs


def generations_markdown(prompts: list[str], columns: dict[str, list[str]]) -> str:
    """The generations of several models, prompt by prompt, as Markdown."""
    lines = ["# Greedy generations", ""]
    for i, prompt in enumerate(prompts):
        lines += [f"## Prompt {i + 1}", "", "```", prompt, "```", ""]
        for name, outputs in columns.items():
            lines += [f"**{name}**", "", "```", prompt + outputs[i], "```", ""]
    return "\n".join(lines)


def evaluate(cfg: EvaluateConfig, init_dir: Path, trained_dir: Path, data_dir: Path) -> tuple[dict, str]:
    """All evaluation metrics, and the generations as Markdown.

    Every model is scored the same way under stable keys: ``init`` (the model training started
    from: the base itself for continued pretraining), ``trained``, and ``base`` when the init
    was cut or grown from a base (downscale / upscale). ``skipped`` names each part that had
    nothing to score, and why.
    """
    device = pick_device()
    dtype = autocast_dtype("auto", device)
    rows = load_rows(data_dir / "val.parquet")
    general = read_texts(cfg.general_text) if cfg.general_text else None
    tasks, skipped = resolve_tasks(cfg, data_dir)
    report: dict[str, Any] = {"val": {}, **({"general": {}} if general else {}), "lm_eval": {}}
    generations = {}
    for name, label, load in models_to_score(init_dir, trained_dir):
        model, tokenizer = load(device)
        text_bytes = TextBytes(tokenizer)
        report["val"][name] = validation_loss(model, rows, cfg.batch_size, cfg.max_batches, device,
                                              dtype, text_bytes)
        if general:  # the init model is the base in continued pretraining: forgetting shows here
            report["general"][name] = validation_loss(
                model, text_rows(general, tokenizer, rows.shape[1]), cfg.batch_size, cfg.max_batches,
                device, dtype, text_bytes)
        generations[label] = generate(model, tokenizer, cfg.prompts, cfg.max_new_tokens)
        report["lm_eval"][name] = run_lm_eval(model, tokenizer, cfg, tasks, max_length=rows.shape[1])
    report["val"]["perplexity_ratio"] = report["val"]["init"]["perplexity"] / report["val"]["trained"]["perplexity"]
    report["contamination"] = {}
    for name, result in contamination(data_dir, tokenizer, general).items():
        if result["documents"]:
            report["contamination"][name] = result
        else:
            skipped[f"contamination.{name}"] = f"no text of {NGRAM} tokens or more to compare"
    report["skipped"] = skipped
    return report, generations_markdown(cfg.prompts, generations)


def models_to_score(init_dir: Path, trained_dir: Path) -> list[tuple[str, str, Callable]]:
    """``(key, generations label, loader)`` of each model to score, in order: the base before
    surgery (downscale / upscale only), the init model, the trained model."""
    lineage_file = init_dir / "lineage.json"
    lineage = json.loads(lineage_file.read_text()) if lineage_file.exists() else {}
    models = []
    if lineage.get("base") and lineage.get("init") != "pretrained":
        base = lineage["base"]
        models.append(("base", f"base ({base})",
                       lambda device: (load_base(base).to(device).eval(),
                                       match_training(load_tokenizer(base, key="model.base")))))
    models.append(("init", f"init ({lineage.get('init', 'random')})",
                   lambda device: load_model(init_dir, device)))
    models.append(("trained", "trained", lambda device: load_model(trained_dir, device)))
    return models
