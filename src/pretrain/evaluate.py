"""Evaluation: held-out loss, perplexity and bits per byte of the initial and trained models,
lm-eval harness tasks, 13-gram contamination of the local evaluation sets, and greedy
generations for fixed prompts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.config import EvaluateConfig
from pretrain.errors import ConfigError
from pretrain.heldout import overlap, read_texts, text_rows, token_byte_lengths, training_ngrams
from pretrain.model import load_base
from pretrain.tokenizer import load_tokenizer
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
    return {name: overlap((np.asarray(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts), train)
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


def run_lm_eval(model, tokenizer, cfg: EvaluateConfig, data_dir: Path, max_length: int) -> dict:
    """Run ``cfg.lm_eval_tasks`` through lm-eval; return {task: {metric: value}}."""
    if not cfg.lm_eval_tasks:
        return {}
    tasks = [task_config(name, data_dir) for name in cfg.lm_eval_tasks]
    tasks = [t for t in tasks if not isinstance(t, dict) or has_data(t)]
    if not tasks:
        return {}
    local_only = all(isinstance(t, dict) for t in tasks)
    import datasets
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    # Loading local JSON through `datasets` otherwise pings the hub's download counter.
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    if local_only:
        datasets.config.HF_HUB_OFFLINE = True
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=cfg.batch_size,
              device=str(model.device), max_length=max_length)
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
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        if tokenizer.bos_token_id is not None:
            ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), ids], dim=1)
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
    """All evaluation metrics, and the generations as Markdown."""
    device = pick_device()
    dtype = autocast_dtype("auto", device)
    rows = load_rows(data_dir / "val.parquet")
    general = read_texts(cfg.general_text) if cfg.general_text else None
    report: dict[str, Any] = {"val": {}, **({"general": {}} if general else {})}
    generations = {}
    lineage_file = init_dir / "lineage.json"
    lineage = json.loads(lineage_file.read_text()) if lineage_file.exists() else {}
    if lineage.get("base") and lineage.get("init") != "pretrained":
        # The base model before surgery, for the course's side-by-side comparison.
        model = load_base(lineage["base"]).to(device).eval()
        tokenizer = load_tokenizer(lineage["base"])
        generations[f"base ({lineage['base']})"] = generate(model, tokenizer, cfg.prompts, cfg.max_new_tokens)
    for name, path in (("init", init_dir), ("trained", trained_dir)):
        model, tokenizer = load_model(path, device)
        byte_lengths = token_byte_lengths(tokenizer)
        report["val"][name] = validation_loss(model, rows, cfg.batch_size, cfg.max_batches, device,
                                              dtype, byte_lengths)
        if general:  # the init model is the base in continued pretraining: forgetting shows here
            report["general"][name] = validation_loss(
                model, text_rows(general, tokenizer, rows.shape[1]), cfg.batch_size, cfg.max_batches,
                device, dtype, byte_lengths)
        label = f"init ({lineage.get('init', 'random')})" if name == "init" else name
        generations[label] = generate(model, tokenizer, cfg.prompts, cfg.max_new_tokens)
    report["val"]["perplexity_ratio"] = report["val"]["init"]["perplexity"] / report["val"]["trained"]["perplexity"]
    report["lm_eval"] = run_lm_eval(model, tokenizer, cfg, data_dir, max_length=rows.shape[1])
    report["contamination"] = contamination(data_dir, tokenizer, general)
    return report, generations_markdown(cfg.prompts, generations)
