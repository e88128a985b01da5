"""Depth surgery on pretrained decoders: downscaling and SOLAR-style depth up-scaling.

From the "Pretraining LLMs" course (lesson 4) and SOLAR 10.7B (Kim et al. 2023):

    downscale  12 -> 10 layers: keep layers[:5] + layers[-5:]            217,601,024 params
    upscale    12 -> 16 layers: layers[:-4] + layers[4:] (0-7 then 4-11)  308,839,424 params

Fixed here, unlike the course code: the final norm and output head come with the model (the
surgery edits the base model in place instead of copying into a fresh one), every layer's
``layer_idx`` is renumbered (otherwise two layers share a KV-cache slot and cached generation
is wrong), and the saved config's layer count (and per-layer lists such as ``layer_types``)
matches the weights. Only the duplicated layers of an up-scaling are copied, so a surgery holds
at most one extra copy of the weights.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from pretrain.errors import ConfigError

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


def layer_list(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The ModuleList of decoder layers of a supported causal LM."""
    kind = model.config.model_type
    if kind not in LAYER_PATHS:
        raise ConfigError(f"params.yaml: model.base: depth surgery does not know where {kind!r} "
                          f"models keep their layers (supported: {sorted(LAYER_PATHS)})")
    module = model
    for name in LAYER_PATHS[kind].split("."):
        module = getattr(module, name)
    return module


def downscale_plan(n: int, target: int) -> list[int]:
    """Source layer of each kept layer: the first ceil(target/2) and the last floor(target/2)."""
    if not 0 < target < n:
        raise ConfigError(f"params.yaml: model.num_layers: downscaling a {n}-layer model needs "
                          f"0 < num_layers < {n}, got {target}")
    head = (target + 1) // 2
    return list(range(head)) + list(range(n - (target - head), n))


def upscale_plan(n: int, target: int) -> list[int]:
    """Source layer of each layer of the up-scaled model: layers[:n-k] then layers[k:] with
    k = (2n - target) / 2 (SOLAR; the course's 12 -> 16 drops k = 4 from each copy)."""
    if not n < target < 2 * n or (2 * n - target) % 2:
        raise ConfigError(f"params.yaml: model.num_layers: up-scaling a {n}-layer model needs "
                          f"{n} < num_layers < {2 * n} with {2 * n} - num_layers even, got {target}")
    k = (2 * n - target) // 2
    return list(range(n - k)) + list(range(k, n))


def default_target(init: str, n: int) -> int:
    """The course's layer counts when params leave num_layers unset: 12 -> 10 and 12 -> 16."""
    return n - max(1, n // 6) if init == "downscale" else 2 * (n - max(1, n // 3))


def rebuild_layers(model: torch.nn.Module, plan: list[int]) -> None:
    """Replace the model's layers by ``plan`` (source indices), in place.

    A source layer used once is moved, not copied; a layer used twice is deep-copied for its
    second use. Every layer's ``layer_idx`` is set to its new position.
    """
    layers = layer_list(model)
    used: set[int] = set()
    new = []
    for source in plan:
        layer = layers[source] if source not in used else copy.deepcopy(layers[source])
        used.add(source)
        new.append(layer)
    for index, layer in enumerate(new):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    layers._modules.clear()
    for index, layer in enumerate(new):
        layers.add_module(str(index), layer)
    set_layer_count(model.config, plan)


def set_layer_count(config: Any, plan: list[int]) -> None:
    """Make the config describe the new layers (count, and per-layer lists if it has them)."""
    for key in ("layer_types", "sliding_window_pattern_list"):
        value = getattr(config, key, None)
        if isinstance(value, list) and len(value) > max(plan):
            setattr(config, key, [value[i] for i in plan])
    config.num_hidden_layers = len(plan)  # attribute_map turns this into n_layer for GPT-2


def depth_surgery(model: torch.nn.Module, init: str, target: int | None) -> list[int]:
    """Downscale or upscale ``model`` in place; return the source index of each new layer."""
    n = len(layer_list(model))
    target = target or default_target(init, n)
    plan = downscale_plan(n, target) if init == "downscale" else upscale_plan(n, target)
    rebuild_layers(model, plan)
    return plan
