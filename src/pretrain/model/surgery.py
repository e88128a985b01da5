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

# The rules (which families, which depths) are in the config layer, so that params are checked
# against a local base's config.json before any stage runs (pretrain.config.checks).
from pretrain.config.shape import LAYER_PATHS, architecture_problem, default_target, depth_problem
from pretrain.errors import ConfigError

def layer_list(model: torch.nn.Module, init: str = "downscale/upscale") -> torch.nn.ModuleList:
    """The ModuleList of decoder layers of a causal LM whose ``model_type`` is in LAYER_PATHS.

    Only depth surgery needs it (``model.init: pretrained`` trains any causal LM as it is), so
    the ConfigError for another architecture names ``model.init`` (``init``) and the known ones.
    """
    kind = model.config.model_type
    problem = architecture_problem(init, kind)
    if problem:
        raise ConfigError(f"params.yaml: {problem}")
    module = model
    for name in LAYER_PATHS[kind].split("."):
        module = getattr(module, name)
    return module


def downscale_plan(n: int, target: int) -> list[int]:
    """Source layer of each kept layer: the first ceil(target/2) and the last floor(target/2).
    ConfigError (check_depth) unless 0 < target < n."""
    check_depth("downscale", n, target)
    head = (target + 1) // 2
    return list(range(head)) + list(range(n - (target - head), n))


def upscale_plan(n: int, target: int) -> list[int]:
    """Source layer of each layer of the up-scaled model: layers[:n-k] then layers[k:] with
    k = (2n - target) / 2 (SOLAR; the course's 12 -> 16 drops k = 4 from each copy).
    ConfigError (check_depth) unless n < target < 2n and target is even (2n - target = 2k)."""
    check_depth("upscale", n, target)
    k = (2 * n - target) // 2
    return list(range(n - k)) + list(range(k, n))


def check_depth(init: str, n: int, target: int, default: bool = False) -> None:
    """ConfigError naming model.num_layers, the base depth and the valid values unless
    ``target`` is one of pretrain.config.shape.valid_depths(init, n) (depth_problem);
    ``default``: num_layers was null."""
    problem = depth_problem(init, n, target, default)
    if problem:
        raise ConfigError(f"params.yaml: {problem}")


def describe_plan(init: str, n: int, plan: list[int]) -> str:
    """The layer mapping in words, runs of consecutive layers joined, e.g.
    ``upscale 12 -> 16: new 0-7 <- base 0-7, new 8-15 <- base 4-11``."""
    runs: list[list[int]] = []  # [first new index, first source, length]
    for new, source in enumerate(plan):
        if runs and runs[-1][1] + runs[-1][2] == source:
            runs[-1][2] += 1
        else:
            runs.append([new, source, 1])

    def span(first: int, length: int) -> str:
        return str(first) if length == 1 else f"{first}-{first + length - 1}"

    parts = [f"new {span(new, length)} <- base {span(source, length)}" for new, source, length in runs]
    return f"{init} {n} -> {len(plan)}: {', '.join(parts)}"


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
    """Downscale or upscale ``model`` in place; return the source index of each new layer.
    ``target`` None: default_target. ConfigError for an architecture outside LAYER_PATHS or a
    depth that ``init`` cannot make from this base (check_depth)."""
    n = len(layer_list(model, init))
    check_depth(init, n, target or default_target(init, n), default=target is None)
    target = target or default_target(init, n)
    plan = downscale_plan(n, target) if init == "downscale" else upscale_plan(n, target)
    rebuild_layers(model, plan)
    return plan
