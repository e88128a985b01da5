"""Pretrained bases that params name (``model.base``, ``tokenizer.path``): a Hugging Face model
folder, a GGUF file or a hub id, loaded (``load_base``, ``split_gguf``) with what is wrong with
it said in words. Shared by the tokenizer, init-model and evaluate stages and the estimate.

transformers reports a damaged base by the low-level error it hit ("cannot reshape array of size
251 into shape (64,32)", "unpack_from requires a buffer of at least 172 bytes", "header too
large"), some of them not as OSError/ValueError, so they escaped as tracebacks. The checks here
name the problem a user can act on. Those that read only a few bytes or headers (a GGUF file's
magic, config.json, each safetensors header) run before transformers loads anything; reading a
GGUF file's whole metadata and tensor table (the gguf package's GGUFReader, the layout of ggml's
docs/gguf.md) runs only after transformers failed, because it costs as much as the load's own
parse (9-11 s for a 271 MB, 49,152-token file on this 2-core Xeon, an x86 CPU with AVX-512F but
no AVX-512 BF16).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import is_gguf_available

from pretrain.config import is_local_path
from pretrain.errors import ConfigError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
"""The weight files (or shard indexes) ``from_pretrained`` looks for in a model folder."""


def gguf_header_problem(path: Path) -> str | None:
    """Why ``path`` (an existing file) is not a GGUF file at all: empty, or without the magic
    bytes ``GGUF`` that every GGUF file starts with (ggml docs/gguf.md). Reads 4 bytes."""
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        return f"not a GGUF file: it starts with {magic!r} where a GGUF file starts with b'GGUF'"
    return None


def gguf_problem(path: Path) -> str | None:
    """Why ``path`` (an existing file) is not a readable GGUF file, or None when the gguf
    package reads its header, metadata and tensor table, every tensor within the file.
    Reads all the metadata (seconds for a real model): for after a load failed.

    Needs the ``gguf`` package (the caller checks that it is installed).
    """
    from gguf import GGUFReader  # a dependency, but transformers runs without it

    header = gguf_header_problem(path)
    if header:
        return header
    size = path.stat().st_size
    try:
        GGUFReader(path)
    except Exception:  # struct.error, numpy's reshape/view ValueErrors: a file cut short or damaged
        # The low-level cause ("cannot reshape array of size 251 into shape (64,32)") tells a
        # user nothing they can act on; the fix is the same: download or convert the file again.
        return (f"the GGUF file is truncated or damaged: its metadata or tensors do not read back "
                f"from its {size:,} bytes (download or convert it again)")
    return None


def folder_problem(path: str, whole_model: bool = True) -> str | None:
    """Why ``path`` (not a GGUF file) cannot be loaded, or None when nothing is found wrong.

    Every path must exist; a model (``whole_model``, e.g. ``model.base``) must also be a folder
    whose config.json names a causal LM of the installed transformers and whose weight headers
    read. A tokenizer folder needs neither. A path that does not exist and is a hub id by
    pretrain.config.is_local_path (``gpt2``, ``org/name``) is left to transformers, which knows
    whether it can reach the hub (load_failure words its failure).
    """
    p = Path(path)
    if not p.exists():
        return "no such file or folder" if is_local_path(path) else None
    if not whole_model:
        return None
    if p.is_file():
        return "a file, not a model folder (a GGUF file's name must end in .gguf)"
    return config_problem(p) or weights_problem(p)


def config_problem(folder: Path) -> str | None:
    """Why ``folder``'s config.json does not describe a causal LM the installed transformers has."""
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        hint = f"; to start from the GGUF file in it, name the file: {ggufs[0]}" if ggufs else ""
        return f"the folder has no config.json, so it is not a Hugging Face model folder{hint}"
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return f"its config.json is not valid JSON ({first_line(exc)})"
    kind = config.get("model_type") if isinstance(config, dict) else None
    if kind is None:
        return "its config.json has no model_type, so transformers cannot tell the architecture"
    if kind not in CONFIG_MAPPING:
        return (f"its config.json names model_type {kind!r}, an architecture the installed "
                f"transformers {transformers.__version__} does not know (a newer one may)")
    if kind not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return f"{kind!r} is not a causal language model (transformers has no AutoModelForCausalLM for it)"
    return None


def weights_problem(folder: Path) -> str | None:
    """Why ``folder`` holds no readable weights: none at all, or a safetensors file whose header
    is damaged or whose tensors run past its end (safetensors checks that on opening)."""
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        return f"the folder has no weights ({' or '.join(WEIGHT_FILES[::2])})"
    for file in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(str(file), framework="pt"):
                pass
        except Exception as exc:  # safetensors_rust.SafetensorError is not an OSError
            return f"{file.name} is truncated or damaged ({first_line(exc)})"
    return None


def load_failure(exc: BaseException, gguf_path: Path | None = None) -> str:
    """The words for an error transformers raised while loading a base that passed the checks
    above: what gguf_problem finds wrong with ``gguf_path`` (the GGUF file loaded, if any), an
    unsupported GGUF architecture named as such, a hub id that could not be fetched (offline,
    unknown, gated) named as not a local path, else the error's first line."""
    problem = gguf_problem(gguf_path) if gguf_path is not None else None
    if problem:
        return problem
    if gguf_path is None and from_hub(exc):
        # transformers' own line ("We couldn't connect to 'https://huggingface.co'") does not say
        # that the value was taken for a hub id because no such local file or folder exists.
        return ("not a local file or folder, so it was taken for a Hugging Face hub id, which could "
                f"not be fetched ({first_line(exc)})")
    found = re.search(r"GGUF model with architecture (\S+) is not supported", str(exc))
    if found:
        from transformers.modeling_gguf_pytorch_utils import (
            GGUF_SUPPORTED_ARCHITECTURES,
        )

        known = sorted(set(GGUF_SUPPORTED_ARCHITECTURES) - {"general", "tokenizer"})  # key groups
        return (f"its architecture {found.group(1)!r} is not supported by the installed transformers "
                f"{transformers.__version__}, which reads GGUF files of {', '.join(known)}")
    text = first_line(exc)
    return text if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {text}"


def from_hub(exc: BaseException) -> bool:
    """Whether huggingface_hub raised ``exc`` or an error it was raised from: transformers looked
    the value up on the hub (it does not for a local folder, which exists)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if type(cause).__module__.startswith("huggingface_hub"):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (stage errors are one line)."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def split_gguf(path: str | Path, key: str = "model.base") -> tuple[str, str | None]:
    """``(folder, file name)`` of a local ``.gguf`` file, or ``(path, None)`` for anything else.

    transformers reads GGUF through the ``gguf`` package and wants the folder and the
    file apart: ``from_pretrained(folder, gguf_file=name)``. ConfigError, naming ``key`` (the
    params key that gave the path), when the file is missing, empty or not a GGUF file
    (pretrain.bases.gguf_header_problem), or when the gguf package is not installed.
    """
    path = str(path)
    if not path.endswith(".gguf"):
        return path, None
    where = f"params.yaml: {key}: {path}"
    if not Path(path).is_file():
        raise ConfigError(f"{where}: no such GGUF file")
    if not is_gguf_available():
        raise ConfigError(f"{where}: reading a GGUF file needs the gguf package: pip install gguf")
    problem = gguf_header_problem(Path(path))
    if problem:
        raise ConfigError(f"{where}: {problem}")
    return str(Path(path).parent), Path(path).name


def load_base(base: str, key: str = "model.base") -> torch.nn.Module:
    """A pretrained causal LM in fp32 from a local folder or GGUF file (or a hub id when online).

    Any architecture ``AutoModelForCausalLM`` loads is accepted. ConfigError, one line naming
    ``key`` and saying what is wrong with the base (pretrain.bases): missing, not a GGUF file,
    empty, truncated or damaged, an architecture the installed transformers does not support,
    not a causal LM, or a checkpoint that lacks some of the model's weights (transformers would
    start those from random values and only log it).
    """
    folder, gguf_file = split_gguf(base, key)
    where = f"params.yaml: {key}: cannot load a causal LM from {base!r}"
    problem = None if gguf_file else folder_problem(folder)
    if problem:
        raise ConfigError(f"{where}: {problem}")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32,
                                                           output_loading_info=True)
    except Exception as exc:  # transformers, safetensors and gguf raise many types for bad files
        raise ConfigError(f"{where}: {load_failure(exc, gguf_file and Path(folder) / gguf_file)}") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ConfigError(f"{where}: the checkpoint lacks {len(missing)} of the weights of a "
                          f"{model.config.model_type!r} causal LM (e.g. {missing[0]!r}): it is damaged, "
                          "or not saved from a causal LM of this architecture")
    quantizer = getattr(model, "hf_quantizer", None)
    if gguf_file and quantizer is not None:
        # transformers 5.x reads GGUF through GgufHfQuantizer, whose model refuses save_pretrained
        # ("quantized with gguf and is not serializable") even with every weight unpacked to fp32.
        quantizer.remove_quantization_config(model)
    return model
