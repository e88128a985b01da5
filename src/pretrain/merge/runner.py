"""The merge stage: the trained model merged with another model of the same shapes, one merged
model per weight, by mergekit (Goddard et al. 2024, arcee-ai/mergekit, the package on PyPI).

Continued pretraining forgets: averaging the trained weights with the base's (Wortsman et al.
2022 "Robust fine-tuning of zero-shot models", linear), along the great circle between them
(SLERP, Shoemake 1985), or adding a scaled task vector ``trained - base`` (Ilharco et al. 2023,
task arithmetic; TIES, Yadav et al. 2023, keeps each task vector's largest entries and elects a
sign) trades part of the domain gain for general text. ``merge.weights`` sweeps that trade-off;
the evaluate stage scores every merged model, and the report draws the forgetting curve.

The output folder holds ``merge.json`` (method, weights, the folder of each merged model, the
final one) and one Hugging Face model folder per weight (``w0.5``, ...) with the trained model's
config and tokenizer and the mergekit configuration that made it (``mergekit_config.yml``:
``mergekit-yaml`` reproduces the merge outside the pipeline). With ``method: none`` only
merge.json is written, naming the trained model as final: nothing is loaded, the stage takes a
second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from pretrain.config.merge import MergeConfig
from pretrain.errors import ConfigError
from pretrain.io import atomic_path
from pretrain.merge.manifest import MANIFEST, weight_name

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "generation_config.json")
"""Files copied from the trained model into each merged model's folder."""


def merge(cfg: MergeConfig, trained: Path, init: Path, out: Path) -> dict[str, Any]:
    """Write the merge stage's output folder ``out`` atomically and return its manifest.

    ``trained`` and ``init`` are Hugging Face model folders (the train and init-model stages'
    outputs); ``cfg.other`` is ``init`` or another model folder. Raises ConfigError, in one
    line, when the other model (or the init as the task vectors' base) cannot be merged with the
    trained one: not a model folder, a different architecture, different tensor names or shapes,
    a different tokenizer, or a config that differs in a key that changes the computation
    (config_difference). Each merged model gets the trained model's config, tokenizer and
    generation config; the folder has the same bytes on every run, whatever PYTHONHASHSEED.
    """
    other = Path(init) if cfg.other == "init" else Path(cfg.other)
    manifest: dict[str, Any] = {"method": cfg.method, "other": cfg.other, "weights": cfg.weights,
                                "models": {}, "final": None, "final_weight": None}
    if cfg.method == "none":
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest
    check_mergeable(Path(trained), other, f"merge.other ({cfg.other})")
    if cfg.method in ("task_arithmetic", "ties") and other != Path(init):
        check_mergeable(Path(trained), Path(init), "the init model (the task vectors' base)")
    from mergekit.options import MergeOptions  # seconds to import: only when merging

    options = MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        for weight in tqdm(cfg.weights, desc="merge", unit="model"):
            # Paths as the stage was given them (relative to the repository under DVC), so the
            # configuration saved beside each model is the same in every clone.
            spec = mergekit_config(cfg, weight, Path(trained), other, Path(init))
            merge_one(spec, Path(trained), tmp / weight_name(weight), options)
            manifest["models"][f"{weight:g}"] = weight_name(weight)
        manifest["final_weight"] = cfg.final_weight
        manifest["final"] = weight_name(cfg.final_weight)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def merge_one(spec: dict[str, Any], trained: Path, folder: Path, options: Any) -> None:
    """Run one mergekit configuration into ``folder`` and give the merged model the trained
    model's config, tokenizer and generation config, and the configuration that made it."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge

    run_merge(MergeConfiguration.model_validate(spec), out_path=str(folder), options=options)
    write_trained_config(trained, folder, spec["dtype"])
    for name in TOKENIZER_FILES:
        if (trained / name).is_file():
            shutil.copyfile(trained / name, folder / name)
    (folder / "mergekit_config.yml").write_text(yaml.safe_dump(spec, sort_keys=False),
                                               encoding="utf-8")


def init_kind(init: Path) -> str | None:
    """How the init-model stage made the model in ``init`` (``random``, ``pretrained``,
    ``downscale``, ``upscale``: its lineage.json), None when it does not say."""
    lineage = Path(init) / "lineage.json"
    return json.loads(lineage.read_text(encoding="utf-8")).get("init") if lineage.is_file() else None


def mergekit_config(cfg: MergeConfig, weight: float, trained: Path, other: Path,
                    init: Path) -> dict[str, Any]:
    """The mergekit configuration (the YAML that ``mergekit-yaml`` reads, as a dict) that merges
    ``trained`` at ``weight`` with ``other``; ``init`` is the task vectors' base.

    linear: ``w * trained + (1 - w) * other`` (no normalisation, so w outside [0, 1]
    extrapolates); slerp: ``t = w`` from ``other`` (t = 0) to ``trained`` (t = 1);
    task_arithmetic and ties: ``init + w * (trained - init)``, plus ``(1 - w) * (other - init)``
    when ``other`` is not the init (TIES trims each task vector to ``density`` first).
    """
    spec: dict[str, Any] = {"merge_method": cfg.method, "dtype": "float32"}
    if cfg.method == "linear":
        # linear ignores a base model (its input contract's BasePolicy.IGNORED: the same tensors,
        # checked byte for byte). Naming one makes mergekit take the config, any tag-along files
        # and, for an architecture it has no definition of, the tensor layout from it rather than
        # from the first model of a set, whose order follows PYTHONHASHSEED (mergekit 0.1.5's
        # merge.py _model_out_config and _get_donor_model, architecture/auto.py).
        spec["base_model"] = str(trained)
        spec["models"] = [{"model": str(trained), "parameters": {"weight": weight}},
                          {"model": str(other), "parameters": {"weight": 1.0 - weight}}]
        spec["parameters"] = {"normalize": False}
    elif cfg.method == "slerp":
        spec["base_model"] = str(other)
        spec["models"] = [{"model": str(other)}, {"model": str(trained)}]
        spec["parameters"] = {"t": weight}
    else:
        extra = {"density": cfg.density} if cfg.method == "ties" else {}
        spec["base_model"] = str(init)
        spec["models"] = [{"model": str(trained), "parameters": {"weight": weight, **extra}}]
        if other != init:
            spec["models"].append({"model": str(other), "parameters": {"weight": 1.0 - weight, **extra}})
        spec["parameters"] = {"normalize": False}
    return spec


def check_mergeable(trained: Path, other: Path, what: str) -> None:
    """Raise ConfigError (one line, naming ``what``) unless ``other`` is a model folder with the
    trained model's architecture, tensor names and shapes, tokenizer vocabulary, and config but
    for MERGE_FREE_KEYS (the first differing key named, with both values)."""
    from pretrain.bases import folder_problem

    problem = folder_problem(str(other))
    if problem:
        raise ConfigError(f"{what}: {other}: {problem}")
    mine, theirs = _config(trained), _config(other)
    if mine.get("model_type") != theirs.get("model_type"):
        raise ConfigError(f"{what}: {other} is a {theirs.get('model_type')!r} model, the trained model "
                          f"a {mine.get('model_type')!r} one: only models of one architecture merge")
    shapes, other_shapes = tensor_shapes(trained), tensor_shapes(other)
    if shapes != other_shapes:
        layers = (mine.get("num_hidden_layers"), theirs.get("num_hidden_layers"))
        if layers[0] != layers[1]:
            detail = f"{layers[1]} layers against the trained model's {layers[0]}"
        else:
            name = sorted(set(shapes) ^ set(other_shapes) or
                          {k for k in shapes if shapes[k] != other_shapes[k]})[0]
            detail = (f"tensor {name} is {list(other_shapes[name]) if name in other_shapes else 'missing'}, "
                      f"the trained model's {list(shapes[name]) if name in shapes else 'missing'}")
        raise ConfigError(f"{what}: {other} has other shapes ({detail}): only models of the same "
                          "shapes merge (a downscaled or upscaled run merges with its init)")
    vocab, other_vocab = _vocabulary(trained), _vocabulary(other)
    if vocab is not None and other_vocab is not None and vocab != other_vocab:
        differ = sum(1 for token, i in vocab.items() if other_vocab.get(token) != i)
        raise ConfigError(f"{what}: {other} has another tokenizer ({len(other_vocab):,} tokens "
                          f"against {len(vocab):,}, {differ:,} of the trained model's tokens with "
                          "another id or missing): merged embeddings would mix different tokens")
    difference = config_difference(trained, other)
    if difference:
        key, mine_value, their_value = difference
        raise ConfigError(f"{what}: {other} has {key} {_shown(their_value)} in its config.json, "
                          f"the trained model {_shown(mine_value)}: models merge only when their "
                          "configs agree on all that changes the computation (docs/merge.md)")


MERGE_FREE_KEYS = {
    "_name_or_path": "where the config was read from",
    "transformers_version": "the version that wrote the file",
    "dtype": "the stored weights' type: the merge computes and writes float32",
    "torch_dtype": "transformers 4's name for dtype",
    "use_cache": "the key-value cache at generation: the same outputs, sooner",
    "initializer_range": "only initialises new weights; merged weights come from the models",
    "bos_token_id": "the tokenizer's: the merged model takes the trained model's, with its tokenizer",
    "eos_token_id": "the tokenizer's: the merged model takes the trained model's, with its tokenizer",
    "pad_token_id": "the tokenizer's (and the embedding's padding_idx: it only masks gradients)",
}
"""Config keys in which two merged models may differ, each with why it does not change what the
merged weights compute. Every other key must be equal (config_difference)."""


def config_difference(trained: Path, other: Path) -> tuple[str, Any, Any] | None:
    """The first config key (dotted inside nested dicts, e.g. ``rope_parameters.rope_theta``) in
    which ``other``'s config differs from ``trained``'s, with the trained and the other value
    (``MISSING`` where one has no such key); None when they agree but for MERGE_FREE_KEYS.

    Deny by default: every key is compared but the few named in MERGE_FREE_KEYS. A hand list of
    the keys that change the computation (rope_theta, rms_norm_eps, hidden_act, ...) passes
    whatever it forgot, silently, and each architecture adds its own (sliding_window,
    layer_types, partial_rotary_factor, logit soft-capping, ...); the allow-list errs the other
    way, loudly, naming the key. The configs are compared as transformers loads them (the
    config class's defaults filled in, transformers 4's top-level rope_theta / rope_scaling read
    into transformers 5's rope_parameters), so a key left at its default or saved in the old
    layout is not a difference; the last part of a dotted key is looked up in MERGE_FREE_KEYS
    (a composite model's sub-configs carry their own dtype and token ids).
    """
    mine, theirs = _flat(_loaded_config(trained)), _flat(_loaded_config(other))
    for key in sorted(set(mine) | set(theirs)):
        if key.rsplit(".", 1)[-1] in MERGE_FREE_KEYS:
            continue
        if mine.get(key, MISSING) != theirs.get(key, MISSING):
            return key, mine.get(key, MISSING), theirs.get(key, MISSING)
    return None


MISSING = "(missing)"
"""config_difference's value for a key one of the two configs does not have."""


def write_trained_config(trained: Path, folder: Path, dtype: str) -> None:
    """Write the trained model's config, its dtype set to the merge's (``float32``), as the
    config.json of the merged model in ``folder``: what the merged model is, whichever model
    mergekit took its config from (slerp: the other; task vectors: their base), like the
    tokenizer beside it. save_pretrained writes the keys sorted: the same bytes on every run."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(trained))
    config.dtype = dtype
    config.save_pretrained(str(folder))


def tensor_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a model folder's safetensors files (headers only)."""
    from safetensors import safe_open

    shapes = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                shapes[name] = tuple(f.get_slice(name).get_shape())
    if not shapes:
        raise ConfigError(f"{folder}: no safetensors weights (mergekit merges safetensors folders)")
    return shapes


def _config(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))


def _loaded_config(folder: Path) -> dict[str, Any]:
    """A model folder's config as transformers reads it (AutoConfig), as a dict."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder)).to_dict()


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts flattened to dotted keys: ``{"rope_parameters.rope_theta": 10000.0, ...}``."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value: Any) -> str:
    return value if value == MISSING else json.dumps(value, default=str)


def _vocabulary(folder: Path) -> dict[str, int] | None:
    """Token -> id of a folder's tokenizer.json (added tokens included), None without one."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    state = json.loads(path.read_text(encoding="utf-8"))
    raw = state.get("model", {}).get("vocab") or {}
    # BPE and WordPiece keep token -> id; Unigram (SentencePiece) a list of [token, score].
    vocab = dict(raw) if isinstance(raw, dict) else {entry[0]: i for i, entry in enumerate(raw)}
    vocab.update({t["content"]: t["id"] for t in state.get("added_tokens", [])})
    return vocab
