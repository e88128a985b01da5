"""The merge stage's ``merge.json``: which merged models its output folder holds and which one is
final. Read by the evaluate and export stages; imports no config, so that those stages do not
depend on the merge section's code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "merge.json"
"""The file in the merge stage's output folder that says what it holds."""


def weight_name(weight: float) -> str:
    """The folder of the model merged at ``weight``: ``w0.5``, ``w1.25``, ``w-0.2``."""
    return f"w{weight:g}"


def weight_key(weight: float) -> str:
    """The key of the model merged at ``weight`` in metrics (no dot, which DVC reads as nesting):
    its weight in percent, ``merged_50`` for 0.5, ``merged_33_3`` for 0.333."""
    return "merged_" + f"{round(weight * 100, 1):g}".replace(".", "_").replace("-", "m")


def final_model(merged_dir: Path, trained_dir: Path) -> tuple[Path, str]:
    """The pipeline's final model folder and its name: the selected merged model when the merge
    stage merged, else the trained model (also when there is no merge.json at all)."""
    manifest = read_manifest(merged_dir)
    if not manifest or manifest["method"] == "none":
        return Path(trained_dir), "trained"
    return Path(merged_dir) / manifest["final"], f"merged ({manifest['method']}, w={manifest['final_weight']:g})"


def read_manifest(merged_dir: Path | None) -> dict[str, Any] | None:
    """The merge stage's merge.json, or None when there is none (no merge stage output)."""
    if merged_dir is None or not (Path(merged_dir) / MANIFEST).is_file():
        return None
    return json.loads((Path(merged_dir) / MANIFEST).read_text(encoding="utf-8"))
