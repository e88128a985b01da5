"""The cross-key checks that depend on the model's shape (pretrain.config.checks runs them with
the others): sizes, depth surgery, rows and generation within the context, the tokenizer of a
base, what export and merge need of the architecture. Their own module, without the train
section's rules, because the init-model stage runs them again on a base it has loaded
(``check_loaded``: a hub id's sizes are known only then), and a change to training's rules must
not rerun it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from pretrain.config.merge import EXPORTED_MODEL_TYPE, tokenizer_problem
from pretrain.config.shape import (
    ModelShape,
    architecture_problem,
    config_shape,
    depth_problem,
    folder_shape,
    gguf_metadata,
    preset_sizes,
    size_problem,
)
from pretrain.errors import ConfigError

Check = Callable[[dict[str, Any], Optional[ModelShape]], Optional[str]]
"""A check: (every section's config, the model's shape or None where unknown) -> the problem
in one line naming the keys, or None."""


def model_sizes(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """A random init's hidden_size, num_heads and num_kv_heads make a Llama model (a base's
    sizes are its own)."""
    model = configs["model"]
    return size_problem(preset_sizes(model)) if model.init == "random" else None


def surgery_depth(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """downscale / upscale: the base's architecture is one depth surgery knows, and
    model.num_layers is a depth it can make from the base's."""
    init = configs["model"].init
    if shape is None or init not in ("downscale", "upscale") or shape.base_layers is None:
        return None
    return (architecture_problem(init, shape.model_type)
            or depth_problem(init, shape.base_layers, shape["num_layers"], configs["model"].num_layers is None))


def rows_fit_context(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """pack.seq_len fits in the model's context (Lightning-AI/litgpt#1717: longer rows train
    silently under RoPE, and the exported GGUF declares the shorter context)."""
    seq_len, context = configs["pack"].seq_len, shape and shape["context"]
    if not context or seq_len <= context:
        return None
    fix = " or raise model.max_position_embeddings" if shape.from_params else ""
    return (f"pack.seq_len {seq_len} is longer than the model's context, {shape.show('context')}: "
            f"rows would train positions past it, and the exported GGUF would declare a context of "
            f"{context}; lower pack.seq_len{fix}")


def generation_fits_context(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """The tokens generated after a prompt (evaluate's generations, export's greedy check)
    stay within the model's context."""
    context = shape and shape["context"]
    export = configs["export"]
    for key, tokens, used in (("evaluate.max_new_tokens", configs["evaluate"].max_new_tokens, True),
                              ("export.greedy_tokens", export.greedy_tokens, bool(export.types))):
        if context and used and tokens >= context:
            return (f"{key} {tokens} leaves no room for a prompt in the model's context, "
                    f"{shape.show('context')}: generation would run past it; lower {key}")
    return None


def base_tokenizer(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """A pretrained base brings its own tokenizer: tokenizer.path may only name the base."""
    model, path = configs["model"], configs["tokenizer"].path
    if model.init == "random" or not path or path == model.base:
        return None
    return (f"tokenizer.path: {path!r} conflicts with model.base {model.base!r}, whose own tokenizer a "
            f"pretrained model needs (model.init: {model.init}); set tokenizer.path: null")


def export_architecture(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """export.types: the GGUF writer stores Llama models (pretrain.export.gguf)."""
    types = configs["export"].types
    if not types or shape is None or shape.model_type in (None, EXPORTED_MODEL_TYPE):
        return None
    return (f"export.types {types}: the GGUF writer follows llama.cpp's Llama conversion (model_type "
            f"{EXPORTED_MODEL_TYPE!r}), but model.base {configs['model'].base!r} is a {shape.model_type!r} "
            "model; set export.types: [] and convert it with llama.cpp's convert_hf_to_gguf.py")


def export_tokenizer(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """export.types: the GGUF writer stores byte-level BPE tokenizers (what the tokenizer stage
    trains); a local base's or tokenizer.path's tokenizer is read to tell."""
    model, types = configs["model"], configs["export"].types
    key, path = (("model.base", model.base) if model.init != "random"
                 else ("tokenizer.path", configs["tokenizer"].path))
    problem = types and path and local_tokenizer_problem(Path(path))
    if not problem:
        return None
    return (f"export.types {types}: the tokenizer of {key} {path!r} is {problem}; set export.types: [] "
            "and convert the model with llama.cpp's convert_hf_to_gguf.py")


def local_tokenizer_problem(path: Path) -> Optional[str]:
    """What keeps the GGUF writer from storing the tokenizer of a local folder (its
    tokenizer.json) or GGUF file (its ``tokenizer.ggml.model``), or None (also where that is
    not known: no tokenizer.json, a hub id)."""
    if path.is_file() and path.name.endswith(".gguf"):
        metadata = gguf_metadata(path, lambda key, found: "tokenizer.ggml.model" in found) or {}
        kind = metadata.get("tokenizer.ggml.model")
        # "gpt2" is byte-level BPE, with a pre-tokenizer that the file's name alone does not tell.
        return None if kind in (None, "gpt2") else f"a {kind!r} tokenizer (GGUF tokenizer.ggml.model), not byte-level BPE"
    try:
        state = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return tokenizer_problem(state) if isinstance(state, dict) else None


def merge_other(configs: dict[str, Any], shape: Optional[ModelShape]) -> Optional[str]:
    """merge.other, a local model folder, has the architecture and shapes of the model trained
    (mergekit merges tensors one to one; pretrain.merge.runner.check_mergeable)."""
    merge = configs["merge"]
    if merge.method == "none" or merge.other == "init" or shape is None:
        return None
    other = folder_shape(Path(merge.other), f"merge.other {merge.other!r}")
    if other is None:
        return None
    if None not in (shape.model_type, other.model_type) and shape.model_type != other.model_type:
        return (f"merge.other {merge.other!r} is a {other.model_type!r} model, the model trained a "
                f"{shape.model_type!r} one: only models of one architecture merge")
    for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                  "intermediate_size", "vocab_size", "tie_word_embeddings"):
        if None not in (shape[field], other[field]) and shape[field] != other[field]:
            return (f"merge.other: {other.show(field)} against the model trained's {shape.show(field)}: "
                    "only models of the same shapes merge (a downscaled or upscaled run merges with its init)")
    return None


SHAPE_CHECKS: dict[str, Check] = {
    "model sizes": model_sizes,
    "surgery depth": surgery_depth,
    "rows fit the context": rows_fit_context,
    "generation fits the context": generation_fits_context,
    "base tokenizer": base_tokenizer,
    "export architecture": export_architecture,
    "export tokenizer": export_tokenizer,
    "merge shapes": merge_other,
}
"""The checks that depend on the model's shape, by name, in the order they run."""


def run_checks(checks: dict[str, Check], configs: dict[str, Any], shape: Optional[ModelShape],
               where: str) -> None:
    """ConfigError (``where``: the params file) for the first of ``checks`` that fails."""
    for check in checks.values():
        problem = check(configs, shape)
        if problem:
            raise ConfigError(f"{where}: {problem}")


def check_loaded(configs: dict[str, Any], config: dict[str, Any], where: str = "params.yaml") -> None:
    """Run ``SHAPE_CHECKS`` again with ``config`` (``PretrainedConfig.to_dict()``) of the base as
    the init-model stage loaded it: a hub id is known only then (the other checks do not depend
    on the model and passed when the stage started)."""
    run_checks(SHAPE_CHECKS, configs, config_shape(config, f"model.base {configs['model'].base!r}"), where)
