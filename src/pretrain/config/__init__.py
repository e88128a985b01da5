"""Typed, validated views of ``params.yaml``: one frozen dataclass per section, one module per
section (``config/sources.py`` for download, ``clean.py``, ``dedup.py``, ``tokens.py`` for
tokenizer and pack, ``model.py``, ``train.py``, ``evaluate.py``, ``merge.py`` for merge and
export; the field machinery, the range checks and the loading are here), the cross-key checks
(``checks.py``: keys valid alone but not together) and the model's sizes they need
(``shape.py``: presets, a local base's config).

Unknown keys, wrong types and out-of-range values are errors that name the key and the file
(STYLE.md rule 3): a misspelled key that is silently never read makes an experiment wrong.
Every stage checks every section and the cross-key rules before any work, so a typo anywhere
stops the pipeline at its first stage; but a stage's outputs depend only on the sections it
reads, so ``dvc.yaml`` lists only those sections' modules. The section classes are therefore looked up by name here
(``SECTIONS``) and imported when loaded: importing this package does not import them, and a
stage that only checks the ``train`` section does not rerun when ``config/train.py`` changes.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib
import math
import os
import types
import typing
import urllib.parse
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from pretrain.errors import ConfigError

T = TypeVar("T")

SECTIONS: dict[str, str] = {
    "executor": "pretrain.config.executor:ExecutorConfig",
    "download": "pretrain.config.sources:DownloadConfig",
    "clean": "pretrain.config.clean:CleanConfig",
    "dedup": "pretrain.config.dedup:DedupConfig",
    "tokenizer": "pretrain.config.tokens:TokenizerConfig",
    "pack": "pretrain.config.tokens:PackConfig",
    "model": "pretrain.config.model:ModelConfig",
    "train": "pretrain.config.train:TrainConfig",
    "evaluate": "pretrain.config.evaluate:EvaluateConfig",
    "merge": "pretrain.config.merge:MergeConfig",
    "finetune": "pretrain.config.finetune:FinetuneConfig",
    "export": "pretrain.config.merge:ExportConfig",
}
"""Each params.yaml section and the dataclass that holds it, as ``module:class``."""


def section_class(name: str) -> type:
    """The config dataclass of section ``name`` (imported on first use)."""
    module, _, cls = SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


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
    return build(section_class(name), read_params(path).get(name) or {}, where=f"{path}: {name}")


CHECKS_MODULE = "pretrain.config.checks"
"""The cross-key checks (``CHECKS``), looked up by name like the sections: a stage that only
validates params does not depend on them (they cannot change its outputs)."""


LOADED_CHECKS_MODULE = "pretrain.config.shape_checks"
"""The checks of the model's shape alone, run again on a loaded base (init-model)."""


def load_all(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load and validate every section, check the local files it names, and run the cross-key
    checks (pretrain.config.checks: keys valid alone but not together), before any work."""
    data = read_params(path)
    configs = {n: build(section_class(n), data.get(n) or {}, where=f"{path}: {n}") for n in SECTIONS}
    check_paths(configs, where=str(path))
    importlib.import_module(CHECKS_MODULE).check_all(configs, where=str(path))
    return configs


def check_loaded_model(configs: dict[str, Any], config: dict[str, Any], where: str = "params.yaml") -> None:
    """Run the cross-key checks again with ``config`` (``PretrainedConfig.to_dict()``) of the
    base the init-model stage loaded: a hub id's sizes are known only then. ConfigError, one
    line, for the first problem."""
    importlib.import_module(LOADED_CHECKS_MODULE).check_loaded(configs, config, where)


def check_paths(configs: dict[str, Any], where: str) -> None:
    """Fail on a local input that params name but that does not exist (relative to the working
    directory, the repository when DVC runs a stage). Hub ids (``org/name``) are left alone."""
    download, tokenizer, model = configs["download"], configs["tokenizer"], configs["model"]
    general = configs["evaluate"].general_text
    if general and not (os.path.exists(general) or glob.glob(general, recursive=True)):
        raise ConfigError(f"{where}: evaluate.general_text: nothing matches {general!r} "
                          "(expected a local file, folder or glob, read as download.path is)")
    entries = ([(f"download.sources[{i}].path", s) for i, s in enumerate(download.sources)]
               if download.source == "mix" else [("download.path", download)])
    named = []
    for key, source in entries:
        if source.source == "files" and not (os.path.exists(source.path)
                                             or glob.glob(source.path, recursive=True)):
            raise ConfigError(f"{where}: {key}: nothing matches {source.path!r} "
                              "(expected an existing file, folder or glob)")
        if source.source == "hf":
            named.append((key, source.path, "a local dataset folder"))
    named += [("tokenizer.path", tokenizer.path, "a local tokenizer folder or GGUF file"),
              ("model.base", model.base if model.init != "random" else None,
               "a local model folder or GGUF file")]
    merge = configs["merge"]
    if merge.method != "none" and merge.other != "init" and not os.path.isdir(merge.other):
        raise ConfigError(f"{where}: merge.other: {merge.other!r} is not a folder (expected 'init' or "
                          "a local Hugging Face model folder in models/bases)")
    tune = configs["finetune"]
    if tune.task != "none":
        if tune.source == "files" and not (os.path.exists(tune.path) or glob.glob(tune.path, recursive=True)):
            raise ConfigError(f"{where}: finetune.path: nothing matches {tune.path!r} "
                              "(expected an existing file, folder or glob)")
        if tune.source == "hf":
            named.append(("finetune.path", tune.path, "a local dataset folder"))
        named += [(f"finetune.compare[{i}]", entry, "'init' or a local model folder")
                  for i, entry in enumerate(tune.compare) if entry != "init"]
        if tune.model != "final":
            named.append(("finetune.model", tune.model, "'final' or a local model folder"))
    for key, value, expected in named:
        if value and is_local_path(value) and not os.path.exists(value):
            raise ConfigError(f"{where}: {key}: {value!r} does not exist "
                              f"(expected {expected}, or a hub id like org/name)")


def is_local_path(value: str) -> bool:
    """Whether ``value`` names a local path rather than a hub id (``org/name``): it exists, is
    absolute, starts with ".", is a GGUF file or has more than one "/"."""
    return (os.path.exists(value) or os.path.isabs(value) or value.startswith(".")
            or value.endswith(".gguf") or value.count("/") > 1)


# ---------------------------------------------------------------------------------------------
# Fields: the checks a section's __post_init__ runs, and how a mapping becomes a dataclass
# ---------------------------------------------------------------------------------------------


def one_of(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")


def positive(name: str, value: Any, allow_none: bool = False, zero: bool = False) -> None:
    if value is None and allow_none:
        return
    if value is None or value < 0 or (value == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise ValueError(f"{name}: expected a value {bound}, got {value!r}")


def fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: expected a value in [0, 1], got {value!r}")


def http_url(name: str, url: str) -> None:
    """Only http(s) is fetched: file:, ftp: and the like would read local files or other services."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{name}: expected an http:// or https:// URL, got {url!r}")


MOVED: dict[str, tuple[str, str]] = {
    "clean.workers": ("executor.workers", "one setting for every data stage"),
    "dedup.workers": ("executor.workers", "one setting for every data stage"),
    "export.check_tokens": ("export.greedy_tokens", "greedy tokens are reported, not required; each file must "
                            "meet export.min_top1_agreement and export.max_perplexity_gap_percent"),
}
"""Keys that earlier versions had: where their setting lives now, and why it moved."""


def build(cls: type[T], raw: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, checking keys, types and values."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    section = where.rpartition(": ")[2]  # "params.yaml: clean" -> "clean"
    for key in unknown:
        if f"{section}.{key}" in MOVED:
            to, why = MOVED[f"{section}.{key}"]
            raise ConfigError(f"{where}.{key}: moved to {to} ({why})")
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
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_show(value)}")
        if args[1] is Any:  # free-form, passed on as it is (train.deepspeed)
            return value
        return {_coerce(args[0], k, f"{where} key"): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
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
