"""The model that training starts from, in the sizes the cross-key checks need, known before
any stage builds or loads it: the named preset with the ``model`` overrides (``init: random``),
or a local base's own config read from its folder's ``config.json`` or its GGUF file's
metadata (``pretrained``, ``downscale``, ``upscale``), with the depth surgery applied.

Read here without transformers or torch, because every stage runs the checks at its start
(pretrain.config.checks). Measured 2026-12-07 on a 2-core AMD EPYC (AVX2) busy with other jobs
(load average 7): importing transformers' ``AutoConfig`` took 10.5 s; the gguf package's
``GGUFReader`` took 9.1-9.6 s on a 5 MB GGUF file with 49,152 tokens and 48,000 merges (it parses
every array), ``gguf_shape`` 0.3-0.4 ms (``gguf_metadata`` reads the keys up to the end of the
architecture's block and skips arrays unread; ggml docs/gguf.md gives the layout). Loading the
default params with every check took 68 ms, as before the checks (69 ms).
Also the presets and the depth rules of downscale / upscale live here: the init-model stage
builds the model from them.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

PRESETS: dict[str, dict[str, Any]] = {
    # A few seconds per step on a laptop CPU: for tests and the debug profile.
    "debug": dict(num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2, intermediate_size=176,
                  max_position_embeddings=512, rope_theta=10000.0, tie_word_embeddings=False),
    # The default: ~8.5M parameters with an 8,192 vocabulary, trains in minutes on 2 CPU cores.
    "small": dict(num_layers=6, hidden_size=256, num_heads=8, num_kv_heads=4, intermediate_size=688,
                  max_position_embeddings=1024, rope_theta=10000.0, tie_word_embeddings=False),
    # GPT-2 small's shape (nanoGPT's 124M: 12 layers, width 768, 12 heads, context 1024) in the
    # Llama family: full multi-head attention, a SwiGLU MLP of 2048 (3 x 768 x 2048 weights, as
    # GPT-2's 4x GELU MLP), tied embeddings. 123,587,328 parameters with GPT-2's padded 50,304
    # vocabulary (nanoGPT's), 109,529,856 with 32,000; the GPU benchmark's model
    # (benchmarks/gpu_train.py).
    "gpt2-small-ish": dict(num_layers=12, hidden_size=768, num_heads=12, num_kv_heads=12,
                           intermediate_size=2048, max_position_embeddings=1024, rope_theta=10000.0,
                           tie_word_embeddings=True),
    # The course's upstage/TinySolar-248m-4k: 248,013,824 parameters with a 32,000 vocabulary.
    "tinysolar-248m": dict(num_layers=12, hidden_size=1024, num_heads=32, num_kv_heads=8,
                           intermediate_size=4096, max_position_embeddings=4096, rope_theta=10000.0,
                           tie_word_embeddings=False),
}
"""Named model sizes for ``model.preset``; the ``model`` keys that are set override them."""


def preset_sizes(cfg: Any, where: str = "params.yaml") -> dict[str, Any]:
    """The sizes of ``cfg`` (a ModelConfig): its preset with the keys it sets. ConfigError for an
    unknown preset. Unchecked: ``size_problem`` says what is inconsistent."""
    from pretrain.errors import ConfigError

    if cfg.preset not in PRESETS:
        raise ConfigError(f"{where}: model.preset: unknown preset {cfg.preset!r} "
                          f"(expected one of {sorted(PRESETS)})")
    return {key: getattr(cfg, key) if getattr(cfg, key) is not None else value
            for key, value in PRESETS[cfg.preset].items()}


def size_problem(sizes: dict[str, Any]) -> Optional[str]:
    """What makes preset sizes (``preset_sizes``) unbuildable as a Llama model, in one line
    naming the keys, or None. Every head takes hidden_size / num_heads dimensions; RoPE rotates
    them in pairs, so that must be even (transformers refuses an odd one with a 30-line
    traceback, huggingface/transformers#35233); grouped-query attention shares each key/value
    head among num_heads / num_kv_heads query heads."""
    hidden, heads, kv_heads = sizes["hidden_size"], sizes["num_heads"], sizes["num_kv_heads"]
    if hidden % heads:
        return f"model.num_heads: expected a divisor of hidden_size {hidden}, got {heads}"
    if (hidden // heads) % 2:
        return (f"model.hidden_size {hidden} / model.num_heads {heads} gives head_dim {hidden // heads}: "
                "RoPE rotates pairs of dimensions, so head_dim must be even")
    if kv_heads > heads or heads % kv_heads:
        return (f"model.num_kv_heads: expected a divisor of num_heads {heads} "
                f"(at most {heads} key/value heads), got {kv_heads}")
    return None


def resolve_sizes(cfg: Any, where: str = "params.yaml") -> dict[str, Any]:
    """``preset_sizes`` of ``cfg`` (a ModelConfig), ConfigError (``where``: the params file)
    unless they make a Llama model (``size_problem``)."""
    from pretrain.errors import ConfigError

    sizes = preset_sizes(cfg, where)
    problem = size_problem(sizes)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return sizes


# ---------------------------------------------------------------------------------------------
# The shape
# ---------------------------------------------------------------------------------------------

FIELDS = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
          "context", "vocab_size", "tie_word_embeddings")


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """The sizes of the model training starts from, each None where its source does not say."""

    model_type: Optional[str]
    """transformers' model_type (``llama`` for a preset)."""
    sizes: dict[str, Any]
    """FIELDS -> value; ``context`` is the longest sequence the model declares
    (max_position_embeddings or its alias)."""
    labels: dict[str, str]
    """FIELDS -> how messages name the value and where it came from."""
    from_params: bool = False
    """The sizes are the params' own (a preset and overrides), not a base's."""
    base_layers: Optional[int] = None
    """downscale / upscale: the depth of the base before surgery (sizes["num_layers"] after)."""

    def __getitem__(self, field: str) -> Any:
        return self.sizes.get(field)

    def show(self, field: str) -> str:
        """The value with its name and origin, e.g. ``model.max_position_embeddings 1024
        (preset small)`` or ``max_position_embeddings 2048 in model.base's config.json``."""
        return self.labels[field]


PARAM_KEYS = {"num_layers": "num_layers", "hidden_size": "hidden_size", "num_heads": "num_heads",
              "num_kv_heads": "num_kv_heads", "intermediate_size": "intermediate_size",
              "context": "max_position_embeddings", "tie_word_embeddings": "tie_word_embeddings"}
"""Shape field -> ``model`` key that sets it."""


def params_shape(cfg: Any, where: str = "params.yaml") -> ModelShape:
    """The shape of ``model.init: random`` (``cfg`` a ModelConfig): preset and overrides; the
    head dimension only where num_heads divides hidden_size. ConfigError for an unknown preset."""
    sizes = preset_sizes(cfg, where)
    shape = {field: sizes[key] for field, key in PARAM_KEYS.items()}
    hidden, heads = sizes["hidden_size"], sizes["num_heads"]
    shape["head_dim"] = hidden // heads if hidden % heads == 0 else None
    shape["vocab_size"] = None  # the tokenizer's, known once it is trained or loaded
    labels = {field: f"model.{key} {sizes[key]}" + ("" if getattr(cfg, key) is not None
                                                    else f" (preset {cfg.preset})")
              for field, key in PARAM_KEYS.items()}
    labels.update(head_dim=f"head_dim {shape['head_dim']}", vocab_size="the tokenizer's vocabulary")
    return ModelShape("llama", shape, labels, from_params=True)


CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "n_layers", "num_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_heads": ("num_attention_heads", "n_head", "n_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads"),
    "head_dim": ("head_dim",),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim"),
    "context": ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx"),
    "vocab_size": ("vocab_size",),
    "tie_word_embeddings": ("tie_word_embeddings",),
}
"""Shape field -> the config.json keys that hold it, by family (transformers' attribute_map:
GPT-2 ``n_positions``, ``n_layer``; MPT ``max_seq_len``, ``n_heads``; ChatGLM ``seq_length``)."""


def config_shape(config: dict[str, Any], origin: str) -> ModelShape:
    """The shape in a Hugging Face config (config.json's mapping, or ``config.to_dict()``): the
    text model's sizes when it nests one (``text_config``), the top-level model_type.
    ``origin`` names the source in messages (``model.base 'models/bases/x' config.json``)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    sizes, labels = {}, {}
    for field, keys in CONFIG_KEYS.items():
        key = next((k for k in keys if _plain(text.get(k), field)), keys[0])
        sizes[field] = text.get(key) if _plain(text.get(key), field) else None
        labels[field] = f"{key} {sizes[field]} in {origin}"
    kind = config.get("model_type")
    return ModelShape(kind if isinstance(kind, str) else None, *_derived(sizes, labels, origin))


def _derived(sizes: dict[str, Any], labels: dict[str, str], origin: str) -> tuple[dict, dict]:
    """``sizes`` and ``labels`` with what a config leaves to its defaults filled in as
    transformers does: one key/value head per head (multi-head attention), head_dim =
    hidden_size / num_heads."""
    hidden, heads = sizes["hidden_size"], sizes["num_heads"]
    if sizes["num_kv_heads"] is None and heads:
        sizes["num_kv_heads"] = heads
        labels["num_kv_heads"] = f"{heads} key/value heads (one per head) in {origin}"
    if sizes["head_dim"] is None and hidden and heads and hidden % heads == 0:
        sizes["head_dim"] = hidden // heads
        labels["head_dim"] = f"head_dim {hidden // heads} (hidden size / heads) in {origin}"
    return sizes, labels


def _plain(value: Any, field: str) -> bool:
    """Whether ``value`` is a usable value of ``field`` (an int, or a bool for the tie flag)."""
    if field == "tie_word_embeddings":
        return isinstance(value, bool)
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def folder_shape(folder: Path, origin: str) -> Optional[ModelShape]:
    """The shape in ``folder``'s config.json; None without a readable one (the stages that load
    the folder say what is wrong with it, pretrain.bases)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return config_shape(config, f"{origin} config.json") if isinstance(config, dict) else None


# ---------------------------------------------------------------------------------------------
# GGUF metadata
# ---------------------------------------------------------------------------------------------

GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                10: "<Q", 11: "<q", 12: "<d"}
"""GGUF value type -> struct format (ggml docs/gguf.md ``gguf_metadata_value_type``);
8 is a string (uint64 length, UTF-8 bytes), 9 an array (item type, uint64 count, items)."""

GGUF_KEYS = {"num_layers": "block_count", "hidden_size": "embedding_length",
             "num_heads": "attention.head_count", "num_kv_heads": "attention.head_count_kv",
             "head_dim": "attention.key_length", "intermediate_size": "feed_forward_length",
             "context": "context_length", "vocab_size": "vocab_size"}
"""Shape field -> GGUF key under the architecture's prefix (``llama.context_length``): the keys
transformers maps to its config (integrations/ggml.py ``GGUF_CONFIG_MAPPING``)."""


def gguf_metadata(path: Path, stop: Callable[[str, dict[str, Any]], bool] = lambda key, found: False
                  ) -> Optional[dict[str, Any]]:
    """The scalar and string metadata of GGUF file ``path`` (arrays are skipped, not read), in
    file order until ``stop(next key, metadata so far)`` says enough, or all of it. None for a
    file that is not a GGUF file of version 2 or 3 or that ends early (pretrain.bases words
    those)."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF" or _read(f, "<I") not in (2, 3):
                return None
            _read(f, "<Q")  # tensor count
            metadata: dict[str, Any] = {}
            for _ in range(_read(f, "<Q")):
                key = _string(f)
                if stop(key, metadata):
                    break
                value = _value(f, _read(f, "<I"))
                if value is not None:
                    metadata[key] = value
            return metadata
    except (struct.error, UnicodeDecodeError, ValueError, OSError):
        return None


def _read(f: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def _string(f: BinaryIO) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8")


def _value(f: BinaryIO, kind: int) -> Any:
    """A scalar or string; an array is skipped (None)."""
    if kind in GGUF_SCALARS:
        return _read(f, GGUF_SCALARS[kind])
    if kind == 8:
        return _string(f)
    if kind != 9:
        raise ValueError(f"unknown GGUF value type {kind}")
    item, count = _read(f, "<I"), _read(f, "<Q")
    if item in GGUF_SCALARS:
        f.seek(count * struct.calcsize(GGUF_SCALARS[item]), 1)
    else:  # strings (a vocabulary) or nested arrays: each has its own length
        for _ in range(count):
            _value(f, item)
    return None


def gguf_model_type(metadata: dict[str, Any]) -> Optional[str]:
    """The model_type transformers gives a GGUF file: its architecture, except that llama.cpp
    files Mistral under ``llama`` and transformers tells them apart by ``general.name``
    (modeling_gguf_pytorch_utils.load_gguf_checkpoint)."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None
    return "mistral" if "llama" in arch and metadata.get("general.name") == "mistral" else arch


def past_hyperparameters(key: str, metadata: dict[str, Any]) -> bool:
    """A ``gguf_metadata`` stop: the architecture's block of keys (``llama.*``), which llama.cpp's
    converter writes after ``general.*`` and before the vocabulary, has ended at ``key``."""
    arch = metadata.get("general.architecture")
    return (isinstance(arch, str) and not key.startswith((f"{arch}.", "general."))
            and any(k.startswith(f"{arch}.") for k in metadata))


def gguf_shape(path: Path, origin: str) -> Optional[ModelShape]:
    """The shape in GGUF file ``path``'s metadata; None where it cannot be read."""
    metadata = gguf_metadata(path, past_hyperparameters)
    arch = metadata and metadata.get("general.architecture")
    if not isinstance(arch, str):
        return None
    sizes = {field: metadata.get(f"{arch}.{key}") for field, key in GGUF_KEYS.items()}
    sizes = {field: value if _plain(value, field) else None for field, value in sizes.items()}
    sizes["tie_word_embeddings"] = None  # told by the tensors (no output.weight), not the metadata
    labels = {field: f"{arch}.{GGUF_KEYS.get(field, field)} {sizes[field]} in {origin}" for field in FIELDS}
    return ModelShape(gguf_model_type(metadata), *_derived(sizes, labels, origin))


# ---------------------------------------------------------------------------------------------
# Depth surgery (pretrain.model.surgery does it; the rules are here so that params can be
# checked against a local base before any stage runs)
# ---------------------------------------------------------------------------------------------

LAYER_PATHS: dict[str, str] = {
    "llama": "model.layers",
    "mistral": "model.layers",
    "qwen2": "model.layers",
    "qwen3": "model.layers",
    "opt": "model.decoder.layers",
    "gpt2": "transformer.h",
    "gpt_neox": "gpt_neox.layers",
}
"""model_type -> attribute path of the decoder's layer list (each family is tested)."""


def architecture_problem(init: str, kind: Optional[str]) -> Optional[str]:
    """Why depth surgery (``init``: downscale or upscale) cannot edit a ``kind`` model, or None."""
    if kind in LAYER_PATHS:
        return None
    return (f"model.init: {init} (depth surgery) needs to know where {kind!r} models keep their "
            f"layers; it knows {', '.join(sorted(LAYER_PATHS))} (model.init: pretrained takes any "
            "causal LM as it is)")


def valid_depths(init: str, n: int) -> list[int]:
    """Every num_layers that ``init`` can make from an ``n``-layer base: 1 .. n-1 for downscale;
    for upscale the even numbers between n and 2n (both copies drop the same k >= 1 layers)."""
    if init == "downscale":
        return list(range(1, n))
    return [t for t in range(n + 1, 2 * n) if t % 2 == 0]


def default_target(init: str, n: int) -> int:
    """num_layers when params leave it null, the course's proportions for any depth n:
    downscale n - max(1, n // 6) (12 -> 10, 30 -> 25), upscale 2 * (n - max(1, n // 3)), i.e.
    each copy drops k = max(1, n // 3) layers (12 -> 16, 30 -> 40; always even)."""
    return n - max(1, n // 6) if init == "downscale" else 2 * (n - max(1, n // 3))


def depth_problem(init: str, n: int, target: int, default: bool = False) -> Optional[str]:
    """Why ``init`` cannot make ``target`` layers from an ``n``-layer base (naming
    model.num_layers, the base depth and the valid values), or None; ``default``: num_layers
    was null."""
    valid = valid_depths(init, n)
    if target in valid:
        return None
    shown = ", ".join(map(str, valid)) if len(valid) <= 8 else \
        f"{', '.join(map(str, valid[:3]))}, ..., {valid[-1]}"
    got = f"null, which means {target} for a {n}-layer base" if default else str(target)
    allowed = f"num_layers is one of {shown}" if valid else "no num_layers works (too few layers)"
    return f"model.num_layers: {init} of a {n}-layer base: {allowed}; got {got}"


def surgery_shape(base: ModelShape, init: str, num_layers: Optional[int]) -> ModelShape:
    """``base`` after ``init`` (downscale / upscale) to ``num_layers`` (None: default_target):
    the new depth, with the base's in ``base_layers``. Unchecked: see depth_problem."""
    n = base["num_layers"]
    if n is None:
        return base
    target = num_layers or default_target(init, n)
    label = f"model.num_layers {num_layers}" if num_layers else f"{target} layers ({init} of {n})"
    return dataclasses.replace(base, sizes={**base.sizes, "num_layers": target},
                               labels={**base.labels, "num_layers": label}, base_layers=n)


def model_shape(cfg: Any, where: str = "params.yaml") -> Optional[ModelShape]:
    """The shape of the model ``cfg`` (a ModelConfig) starts training from, as far as it is known
    before any stage runs: the preset's for ``init: random``, a local base's (its config.json or
    GGUF metadata, after surgery), None for a hub id or a base that cannot be read.
    ConfigError for an unknown preset."""
    if cfg.init == "random":
        return params_shape(cfg, where)
    base = Path(cfg.base)
    origin = f"model.base {cfg.base!r}"
    if base.is_file() and cfg.base.endswith(".gguf"):
        shape = gguf_shape(base, origin)
    elif base.is_dir():
        shape = folder_shape(base, origin)
    else:
        return None
    if shape is not None and cfg.init in ("downscale", "upscale"):
        shape = surgery_shape(shape, cfg.init, cfg.num_layers)
    return shape
