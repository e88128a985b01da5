"""Evaluation: held-out loss, perplexity and bits per byte of every model (the base of a
downscale or upscale, the init and the trained model), lm-eval harness tasks
(pretrain.evaluate.harness), 13-gram contamination of the local evaluation sets
(pretrain.evaluate.contamination), and greedy generations for fixed prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from pretrain.bases import load_base
from pretrain.config.evaluate import EvaluateConfig
from pretrain.evaluate.bits_per_byte import TextBytes
from pretrain.evaluate.contamination import NGRAM, contamination
from pretrain.evaluate.general_text import read_texts, text_rows
from pretrain.evaluate.harness import resolve_tasks, run_lm_eval
from pretrain.merge.manifest import read_manifest, weight_key
from pretrain.runtime import autocast_dtype, pick_device, validation_loss
from pretrain.sources.records import Skipped
from pretrain.token_store import PackedRows
from pretrain.tokens.tokenizer import encode_texts, load_tokenizer, match_training


def load_model(path: Path, device: torch.device):
    """A saved causal LM (safetensors weights only, never a pickle) in eval mode, and its tokenizer."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True)
    model = model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


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


def evaluate(cfg: EvaluateConfig, init_dir: Path, trained_dir: Path, data_dir: Path,
             tokens_dir: Path, merged_dir: Path | None = None) -> tuple[dict, str]:
    """All evaluation metrics, and the generations as Markdown: the validation rows of the token
    store ``tokens_dir`` (pretrain.token_store), read a batch at a time, and the held-out files
    of the pack output ``data_dir``.

    Every model is scored the same way under stable keys: ``init`` (the model training started
    from: the base itself for continued pretraining), ``trained``, and ``base`` when the init
    was cut or grown from a base (downscale / upscale). ``skipped`` names each part that had
    nothing to score, and why. ``general_text`` counts the documents of evaluate.general_text
    and what of it could not be used, as the download report does (records; files and bytes).

    When the merge stage merged (``merged_dir``, pretrain.merge.runner), every merged model is
    scored on the held-out split and the general text under ``merged_<weight in percent>``
    (and ``other``, the model merged with, unless it is the init); the final one also gets the
    lm-eval tasks and generations. ``merge.sweep`` lists the models by weight, from the other
    model (0) to the trained one (1), with their bits per byte: the forgetting curve.
    """
    device = pick_device()
    dtype = autocast_dtype("auto", device)
    rows = PackedRows(tokens_dir, "val")
    lost = Skipped()
    general = read_texts(cfg.general_text, lost) if cfg.general_text else None
    tasks, skipped = resolve_tasks(cfg, data_dir)
    report: dict[str, Any] = {"val": {}, **({"general": {}} if general else {}), "lm_eval": {}}
    if general:
        report["general_text"] = {"documents": len(general), **lost.report()}
    generations = {}
    for name, label, load, full in models_to_score(init_dir, trained_dir, merged_dir):
        model, tokenizer = load(device)
        scores = score_model(model, tokenizer, cfg, rows, general, device, dtype)
        for part, score in scores.items():
            report[part][name] = score
        if full:  # a sweep's other merged models: bits per byte only
            generations[label] = generate(model, tokenizer, cfg.prompts, cfg.max_new_tokens)
            report["lm_eval"][name] = run_lm_eval(model, tokenizer, cfg, tasks, max_length=rows.shape[1])
    manifest = read_manifest(merged_dir)
    if manifest and manifest["method"] != "none":
        report["merge"] = merge_sweep(report, manifest)
    report["val"]["perplexity_ratio"] = report["val"]["init"]["perplexity"] / report["val"]["trained"]["perplexity"]
    report["contamination"] = contamination_report(data_dir, tokens_dir, tokenizer, general, skipped)
    report["skipped"] = skipped
    return report, generations_markdown(cfg.prompts, generations)


def score_model(model, tokenizer, cfg: EvaluateConfig, rows: PackedRows, general: list[str] | None,
                device, dtype) -> dict[str, dict[str, float]]:
    """One model's loss, perplexity and bits per byte on the validation rows (``val``) and, when
    there is general text, on it (``general``: the init model is the base in continued
    pretraining, so forgetting shows here)."""
    text_bytes = TextBytes(tokenizer)
    scores = {"val": validation_loss(model, rows, cfg.batch_size, cfg.max_batches, device, dtype,
                                     text_bytes)}
    if general:
        general_rows = text_rows(general, tokenizer, rows.shape[1])
        scores["general"] = validation_loss(model, general_rows, cfg.batch_size, cfg.max_batches,
                                            device, dtype, text_bytes)
    return scores


def contamination_report(data_dir: Path, tokens_dir: Path, tokenizer, general: list[str] | None,
                         skipped: dict[str, str]) -> dict[str, Any]:
    """The 13-gram contamination of each local evaluation set that has text to compare; the
    others are named in ``skipped``."""
    report = {}
    for name, result in contamination(data_dir, tokens_dir, tokenizer, general).items():
        if result["documents"]:
            report[name] = result
        else:
            skipped[f"contamination.{name}"] = f"no text of {NGRAM} tokens or more to compare"
    return report


def models_to_score(init_dir: Path, trained_dir: Path,
                    merged_dir: Path | None = None) -> list[tuple[str, str, Callable, bool]]:
    """``(key, generations label, loader, whether to run lm-eval and generate)`` of each model
    to score, in order: the base before surgery (downscale / upscale only), the init model,
    the trained model, then the other model of a merge (unless the init) and each merged model
    (lm-eval and generations for the final one only)."""
    lineage_file = init_dir / "lineage.json"
    lineage = json.loads(lineage_file.read_text()) if lineage_file.exists() else {}
    models = []
    if lineage.get("base") and lineage.get("init") != "pretrained":
        base = lineage["base"]
        models.append(("base", f"base ({base})",
                       lambda device: (load_base(base).to(device).eval(),
                                       match_training(load_tokenizer(base, key="model.base"))), True))
    models.append(("init", f"init ({lineage.get('init', 'random')})",
                   lambda device: load_model(init_dir, device), True))
    models.append(("trained", "trained", lambda device: load_model(trained_dir, device), True))
    manifest = read_manifest(merged_dir)
    if not manifest or manifest["method"] == "none":
        return models
    if manifest["other"] != "init":
        other = Path(manifest["other"])
        models.append(("other", f"other ({other})", lambda device: load_model(other, device), False))
    for weight, folder in manifest["models"].items():
        path = Path(merged_dir) / folder
        models.append((weight_key(float(weight)), f"merged ({manifest['method']}, w={weight})",
                       lambda device, path=path: load_model(path, device), folder == manifest["final"]))
    return models


def merge_sweep(report: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """The forgetting curve: every model of the merge by the trained model's weight, the other
    model at 0 (the init, or ``merge.other``) and the trained model at 1, each with its
    held-out (domain) and general-text bits per byte (None without evaluate.general_text)."""
    other = "init" if manifest["other"] == "init" else "other"
    points = [(0.0, other), (1.0, "trained")] + [(float(w), weight_key(float(w))) for w in manifest["models"]]
    rows = []
    for weight, key in sorted(points, key=lambda p: (p[0], p[1] != other)):
        rows.append({"weight": weight, "model": key,
                     "val_bits_per_byte": report["val"][key].get("bits_per_byte"),
                     "general_bits_per_byte": report.get("general", {}).get(key, {}).get("bits_per_byte")})
    return {"method": manifest["method"], "other": manifest["other"],
            "final": weight_key(manifest["final_weight"]), "sweep": rows}


def sweep_lines(merge: dict[str, Any] | None) -> list[str]:
    """The forgetting curve as printed lines: weight, model, held-out and general bits per byte."""
    if not merge:
        return []
    lines = [f"evaluate: {merge['method']} merge sweep (weight of the trained model; bits per byte)",
             f"  {'weight':>6}  {'model':<14} {'held-out':>9} {'general':>9}"]
    for row in merge["sweep"]:
        general = row["general_bits_per_byte"]
        lines.append(f"  {row['weight']:>6g}  {row['model']:<14} {row['val_bits_per_byte']:>9.4f} "
                     f"{'-' if general is None else format(general, '.4f'):>9}")
    return lines
