"""The export stage: the pipeline's final model (the trained one, or the selected merged one)
written as one GGUF file per ``export.types`` entry and checked by reading each back
(pretrain.export.check). With no types the output folder is empty and nothing is loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pretrain.config.merge import ExportConfig
from pretrain.errors import ConfigError, DataError
from pretrain.io import atomic_path


def exported(cfg: ExportConfig, trained_dir: Path, merged_dir: Path,
             finetuned_dir: Path | None) -> tuple[Path, str]:
    """The folder of the model ``export.model`` names and its label: the final model
    (pretrain.merge.manifest.final_model), or the finetune stage's sft model. ConfigError when
    the finetune stage's output holds no sft model."""
    from pretrain.merge.manifest import final_model

    if cfg.model == "final":
        return final_model(merged_dir, trained_dir)
    if finetuned_dir is None:
        raise ConfigError("export.model: finetuned, but the stage was given no --finetuned folder")
    manifest = Path(finetuned_dir) / "finetune.json"
    task = json.loads(manifest.read_text(encoding="utf-8")).get("task") if manifest.is_file() else None
    if task != "sft":
        raise ConfigError(f"export.model: finetuned, but {manifest} holds no sft model (task {task}); "
                          "run the finetune stage with finetune.task: sft")
    return Path(finetuned_dir), "finetuned (sft)"


def export(cfg: ExportConfig, prompts: list[str], trained_dir: Path, merged_dir: Path,
           tokens_dir: Path, out: Path, finetuned_dir: Path | None = None) -> dict[str, Any]:
    """Write ``out`` (a folder of ``model-<TYPE>.gguf`` files) atomically and return the export
    report: the model exported, the converter followed, and per file its size, bits per
    weight, tensor types, the transformers and llama.cpp checks and the thresholds it met.
    ConfigError (one line) for a model or tokenizer the GGUF writer cannot store, or a file
    transformers cannot read; DataError (one line, naming each file and figure) when a file
    misses its type's export.min_top1_agreement or export.max_perplexity_gap_percent, or
    llama.cpp tokenizes a prompt differently: then nothing is written."""
    if not cfg.types:
        with atomic_path(out) as tmp:
            tmp.mkdir()
        return {"types": [], "files": {}}
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pretrain.export.check import greedy, misses, prompt_ids
    from pretrain.export.gguf import CONVERTER, write_gguf
    from pretrain.token_store import PackedRows

    source, label = exported(cfg, trained_dir, merged_dir, finetuned_dir)
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32, use_safetensors=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    rows = PackedRows(tokens_dir, "val")
    report: dict[str, Any] = {"types": cfg.types, "model": label, "source": str(source),
                              "converter": CONVERTER, "files": {}}
    reference_tokens = [greedy(model, p, cfg.greedy_tokens) for p in prompt_ids(tokenizer, prompts)]
    missed: list[str] = []
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for kind in cfg.types:
            path = tmp / f"model-{kind}.gguf"
            entry = write_gguf(model, tokenizer, path, kind, name=f"pretrain {label}")
            entry.update(check(cfg, kind, path, model, tokenizer, prompts, rows, reference_tokens))
            missed += misses(out / path.name, kind, entry, cfg)
            report["files"][kind] = entry
        if missed:  # raised inside atomic_path: no folder is left that DVC or a user could take as good
            raise DataError("export: " + "; ".join(missed))
    return report


def check(cfg: ExportConfig, kind: str, path: Path, model, tokenizer, prompts: list[str], rows,
          reference_tokens: list[list[int]]) -> dict[str, Any]:
    """The checks of one written file (pretrain.export.check) and the thresholds its type must meet."""
    from pretrain.export.check import check_file, llama_cpp_check

    figures, tokens = check_file(path, model, tokenizer, prompts, rows, cfg.greedy_tokens, cfg.check_batches,
                                 reference_tokens)
    return {"transformers": figures,
            "llama_cpp": llama_cpp_check(path, tokenizer, prompts, tokens, cfg.greedy_tokens),
            "thresholds": {"min_top1_agreement": cfg.min_top1_agreement[kind],
                           "max_perplexity_gap_percent": cfg.max_perplexity_gap_percent[kind]}}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """One line per exported file: size, bits per weight, and what the readers found."""
    lines = []
    for kind, entry in report["files"].items():
        t, cpp = entry["transformers"], entry["llama_cpp"]
        g = t["greedy"]
        line = (f"{entry['file']}: {entry['bytes'] / 2**20:,.2f} MiB, {entry['bits_per_weight']:.2f} bits/weight; "
                f"transformers, {t['positions']:,} validation positions: top-1 agreement {t['top1_agreement']:.4f}, "
                f"perplexity {t['perplexity']:,.2f} ({t['perplexity_gap_percent']:+.3f}%), "
                f"mean KL divergence {t['mean_kl_divergence']:.2g}; greedy {g['tokens_agreeing']}/{g['tokens']} "
                f"tokens, max |logit diff| {t['max_abs_logit_diff']:.2g}")
        if "skipped" in cpp:
            line += f"; llama.cpp: skipped ({cpp['skipped']})"
        else:
            line += (f"; llama.cpp {cpp['version']}: greedy {cpp['greedy']['tokens_agreeing']}/"
                     f"{cpp['greedy']['tokens']}, tokenization {cpp['tokenization_identical']}/{cpp['prompts']}")
        lines.append(f"export: {kind}: {line}")
    return lines
