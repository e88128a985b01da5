"""Typed, validated views of ``params.yaml``: one frozen dataclass per section.

Unknown keys, wrong types and out-of-range values are errors that name the key and the file
(STYLE.md rule 3): a misspelled key that is silently never read makes an experiment wrong.
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

import yaml

from pretrain.errors import ConfigError

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DownloadConfig:
    source: str = "builtin"
    """Where documents come from: builtin (Python's own sources and docs), files, or hf."""
    path: Optional[str] = None
    """files: a file, folder or glob; hf: a dataset id or a local dataset folder."""
    text_field: str = "text"
    """Name of the text column/field in JSONL, Parquet or Hugging Face records."""
    hf_config: Optional[str] = None
    """hf: dataset configuration name."""
    hf_split: str = "train"
    """hf: split to read."""
    builtin_parts: list[str] = dataclasses.field(
        default_factory=lambda: ["stdlib", "pydoc_topics", "docstrings", "package_docs"]
    )
    """builtin: which parts of the installed Python to collect (see pretrain.sources)."""
    include_tests: bool = False
    """builtin: include the standard library's own test suites (19 MB of mostly test code)."""
    max_documents: Optional[int] = None
    """Stop after this many documents (None: all)."""

    def __post_init__(self) -> None:
        _one_of("source", self.source, ("builtin", "files", "hf"))
        if self.source != "builtin" and not self.path:
            raise ValueError(f"path: required when source is {self.source!r}")
        for part in self.builtin_parts:
            _one_of("builtin_parts", part, ("stdlib", "pydoc_topics", "docstrings", "package_docs"))
        _positive("max_documents", self.max_documents, allow_none=True)


@dataclasses.dataclass(frozen=True)
class ParagraphLengthConfig:
    min_lines: int = 3
    """Drop documents with fewer newline-separated lines (course: 3)."""
    min_third_longest_chars: int = 3
    """Drop documents whose third-longest line is shorter than this (course: 3)."""

    def __post_init__(self) -> None:
        _positive("min_lines", self.min_lines)
        _positive("min_third_longest_chars", self.min_third_longest_chars, zero=True)


@dataclasses.dataclass(frozen=True)
class ParagraphRepetitionConfig:
    max_dup_paragraph_frac: float = 0.3
    """Gopher: max fraction of paragraphs that duplicate an earlier one."""
    max_dup_paragraph_char_frac: float = 0.2
    """Gopher: max fraction of characters inside duplicated paragraphs."""

    def __post_init__(self) -> None:
        _fraction("max_dup_paragraph_frac", self.max_dup_paragraph_frac)
        _fraction("max_dup_paragraph_char_frac", self.max_dup_paragraph_char_frac)


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    languages: list[str] = dataclasses.field(default_factory=lambda: ["en"])
    """Keep documents whose top fastText lid.176 label is one of these."""
    min_score: float = 0.4
    """... and whose score is above this (course: 0.4)."""

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("languages: must name at least one language")
        _fraction("min_score", self.min_score)


@dataclasses.dataclass(frozen=True)
class CleanConfig:
    filters: list[str] = dataclasses.field(
        default_factory=lambda: ["paragraph_length", "paragraph_repetition", "language"]
    )
    """Filters to apply, in order (names from pretrain.filters.FILTERS)."""
    paragraph_length: ParagraphLengthConfig = dataclasses.field(default_factory=ParagraphLengthConfig)
    """Thresholds of the paragraph-length filter."""
    paragraph_repetition: ParagraphRepetitionConfig = dataclasses.field(
        default_factory=ParagraphRepetitionConfig
    )
    """Thresholds of the paragraph-repetition filter."""
    language: LanguageConfig = dataclasses.field(default_factory=LanguageConfig)
    """Settings of the fastText language filter."""
    samples_per_reason: int = 5
    """How many dropped documents to keep per reason for auditing."""

    def __post_init__(self) -> None:
        # Filter names are checked against the registry by pretrain.filters.check_names, which
        # pretrain.stage runs before any work (config imports nothing above it).
        if len(set(self.filters)) != len(self.filters):
            raise ValueError("filters: a filter is listed twice")
        _positive("samples_per_reason", self.samples_per_reason, zero=True)


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    normalize: bool = True
    """Compare texts after Unicode NFC and whitespace collapsing (False: byte-exact)."""

    def __post_init__(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    path: Optional[str] = None
    """Use this existing tokenizer (local folder, GGUF file or hub id) instead of training one."""
    vocab_size: int = 8192
    """Vocabulary size of the trained byte-level BPE tokenizer, special tokens included."""
    min_frequency: int = 2
    """A pair must occur this often to be merged."""
    bos_token: str = "<s>"
    """Beginning-of-document token."""
    eos_token: str = "</s>"
    """End-of-document token."""
    pad_token: str = "<pad>"
    """Padding token (used only for batched evaluation and generation)."""

    def __post_init__(self) -> None:
        if self.vocab_size < 300:
            raise ValueError("vocab_size: must be at least 300 (256 bytes + special tokens + merges)")
        _positive("min_frequency", self.min_frequency)
        if len({self.bos_token, self.eos_token, self.pad_token}) != 3:
            raise ValueError("bos_token, eos_token and pad_token must differ")


@dataclasses.dataclass(frozen=True)
class PackConfig:
    seq_len: int = 256
    """Tokens per packed row (the course uses 32)."""
    val_fraction: float = 0.05
    """Fraction of documents held out for validation (chosen by a hash of the document id)."""
    split_salt: str = "pretrain"
    """Salt of the document hash, to draw a different validation set."""
    batch_documents: int = 512
    """Documents tokenized per batch (bounds memory)."""

    def __post_init__(self) -> None:
        _positive("seq_len", self.seq_len)
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {self.val_fraction}")
        _positive("batch_documents", self.batch_documents)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    init: str = "random"
    """How to start: random (from the preset), pretrained, downscale or upscale (from base)."""
    base: Optional[str] = None
    """pretrained/downscale/upscale: a local Hugging Face model folder or GGUF file (or a hub id)."""
    preset: str = "small"
    """random: named size from pretrain.presets.PRESETS; the fields below override it when set."""
    num_layers: Optional[int] = None
    """Number of transformer blocks (downscale/upscale: the target depth)."""
    hidden_size: Optional[int] = None
    """Width of the residual stream."""
    num_heads: Optional[int] = None
    """Attention heads."""
    num_kv_heads: Optional[int] = None
    """Key/value heads (grouped-query attention); must divide num_heads."""
    intermediate_size: Optional[int] = None
    """Width of the SwiGLU feed-forward layer."""
    max_position_embeddings: Optional[int] = None
    """Longest context the model supports."""
    rope_theta: Optional[float] = None
    """RoPE base frequency."""
    tie_word_embeddings: Optional[bool] = None
    """Share the input embedding and output head."""
    init_std: float = 0.02
    """Standard deviation of the normal weight initialisation."""
    seed: int = 42
    """Seed of the weight initialisation."""

    def __post_init__(self) -> None:
        # The preset name and the sizes' consistency are checked by pretrain.presets.resolve_sizes,
        # which pretrain.stage runs before any work (config imports nothing above it).
        _one_of("init", self.init, ("random", "pretrained", "downscale", "upscale"))
        if self.init != "random":
            if not self.base:
                raise ValueError(f"base: required when model.init is {self.init!r}")
            allowed = {"num_layers"} if self.init in ("downscale", "upscale") else set()
            for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                         "max_position_embeddings", "rope_theta", "tie_word_embeddings"):
                if getattr(self, name) is not None and name not in allowed:
                    raise ValueError(f"{name}: cannot be set when model.init is {self.init!r} "
                                     "(the base model fixes it)")
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                     "max_position_embeddings"):
            _positive(name, getattr(self, name), allow_none=True)
        _positive("rope_theta", self.rope_theta, allow_none=True)
        _positive("init_std", self.init_std)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    learning_rate: float = 1e-3
    """Peak learning rate of AdamW."""
    schedule: str = "cosine"
    """Decay after warm-up: cosine, linear or constant."""
    warmup_steps: int = 20
    """Optimizer steps of linear warm-up from 0 to the peak."""
    min_lr_ratio: float = 0.1
    """Floor of the decay as a fraction of the peak."""
    max_steps: int = 300
    """Optimizer steps to train for."""
    micro_batch_size: int = 8
    """Sequences per forward/backward pass."""
    grad_accum_steps: int = 1
    """Micro-batches per optimizer step."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (not applied to norms and biases)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: no clipping)."""
    precision: str = "auto"
    """fp32, bf16 (autocast) or auto (bf16 where the device supports it)."""
    compile: bool = False
    """Compile the model with torch.compile (pays a compile time up front)."""
    log_every: int = 10
    """Log to DVCLive every this many optimizer steps."""
    seed: int = 0
    """Seed of data order and dropout."""

    def __post_init__(self) -> None:
        _positive("learning_rate", self.learning_rate)
        _one_of("schedule", self.schedule, ("cosine", "linear", "constant"))
        _positive("warmup_steps", self.warmup_steps, zero=True)
        _fraction("min_lr_ratio", self.min_lr_ratio)
        for name in ("max_steps", "micro_batch_size", "grad_accum_steps", "log_every"):
            _positive(name, getattr(self, name))
        _positive("weight_decay", self.weight_decay, zero=True)
        _fraction("beta1", self.beta1)
        _fraction("beta2", self.beta2)
        _positive("eps", self.eps)
        _positive("grad_clip", self.grad_clip, zero=True)
        _one_of("precision", self.precision, ("auto", "fp32", "bf16"))


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 16
    """Sequences per evaluation batch."""
    max_batches: Optional[int] = None
    """Evaluate at most this many validation batches (None: the whole split)."""
    lm_eval_tasks: list[str] = dataclasses.field(
        default_factory=lambda: ["pretrain_heldout_ppl", "pretrain_heldout_mc"])
    """lm-eval harness tasks to run: tasks in src/pretrain/lm_eval_tasks run offline."""
    lm_eval_limit: Optional[int] = 32
    """Documents per lm-eval task (None: all)."""
    prompts: list[str] = dataclasses.field(
        default_factory=lambda: ["def find_max(numbers):", "The Python language is", "import os\n"]
    )
    """Prompts for the greedy generations written beside the metrics."""
    max_new_tokens: int = 48
    """Tokens generated per prompt."""

    def __post_init__(self) -> None:
        _positive("batch_size", self.batch_size)
        _positive("max_batches", self.max_batches, allow_none=True)
        _positive("lm_eval_limit", self.lm_eval_limit, allow_none=True)
        _positive("max_new_tokens", self.max_new_tokens)


SECTIONS: dict[str, type] = {
    "download": DownloadConfig,
    "clean": CleanConfig,
    "dedup": DedupConfig,
    "tokenizer": TokenizerConfig,
    "pack": PackConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "evaluate": EvaluateConfig,
}


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file and reject unknown top-level sections."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r} (expected one of {sorted(SECTIONS)})")
    return data


def load_section(name: str, path: str | Path = "params.yaml") -> Any:
    """Load one section of ``path`` into its typed config."""
    return build(SECTIONS[name], read_params(path).get(name) or {}, where=f"{path}: {name}")


def load_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load and validate every section, and check the local files it names, before any work."""
    data = read_params(path)
    configs = {n: build(cls, data.get(n) or {}, where=f"{path}: {n}") for n, cls in SECTIONS.items()}
    check_paths(configs, where=str(path))
    return configs


def check_paths(configs: dict[str, Any], where: str) -> None:
    """Fail on a local input that params name but that does not exist (relative to the working
    directory, the repository when DVC runs a stage). Hub ids (``org/name``) are left alone."""
    download, tokenizer, model = configs["download"], configs["tokenizer"], configs["model"]
    if download.source == "files" and not (os.path.exists(download.path)
                                           or glob.glob(download.path, recursive=True)):
        raise ConfigError(f"{where}: download.path: nothing matches {download.path!r} "
                          "(expected an existing file, folder or glob)")
    named = [("download.path", download.path if download.source == "hf" else None,
              "a local dataset folder"),
             ("tokenizer.path", tokenizer.path, "a local tokenizer folder or GGUF file"),
             ("model.base", model.base if model.init != "random" else None,
              "a local model folder or GGUF file")]
    for key, value, expected in named:
        if value and is_local_path(value) and not os.path.exists(value):
            raise ConfigError(f"{where}: {key}: {value!r} does not exist "
                              f"(expected {expected}, or a hub id like org/name)")


def is_local_path(value: str) -> bool:
    """Whether ``value`` names a local path rather than a hub id (``org/name``): it exists, is
    absolute, starts with ".", is a GGUF file or has more than one "/"."""
    return (os.path.exists(value) or os.path.isabs(value) or value.startswith(".")
            or value.endswith(".gguf") or value.count("/") > 1)


def build(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key (expected one of {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(hints[key], value, f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {_show(value)}")
        return [_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        # PyYAML reads "3e-4" (no dot) as a string, and `dvc exp run -S` writes it that way.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this loader does not know is a programming error
        raise TypeError(f"{where}: unsupported field type {hint}")
    raise ConfigError(f"{where}: expected {hint.__name__}, got {_show(value)}")


def _show(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"


def _one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def _positive(name: str, value: Any, allow_none: bool = False, zero: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}: expected a value {bound}, got {value!r}")


def _fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value!r}")
