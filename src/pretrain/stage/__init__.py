"""The shared entry point of stage scripts: arguments, params validation, one-line errors."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Callable

from pretrain.config import load_all
from pretrain.errors import PretrainError
from pretrain.stage.watched import FOLDERS, check_watched


def run_stage(description: str, paths: list[str], body: Callable[[argparse.Namespace, dict], Any],
              optional: tuple[str, ...] = ()) -> None:
    """Parse ``--<path>`` arguments (those in ``optional`` may be left out: None), validate
    every params section, run ``body``.

    All of params.yaml is validated before any work, so a typo in any section stops the
    pipeline at its first stage with a one-line error naming the key. So does a failure to
    read or write a file (OSError: its message names the file). A stage given the folders DVC
    watches for inputs (``--sources``, ``--bases``) refuses a local input outside them
    (pretrain.stage.watched). Optional dependencies that the params leave unused (OPTIONAL) are kept
    out of the process, and so is their noise.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    for name in [*paths, *optional]:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=Path,
                            required=name not in optional)
    args = parser.parse_args()
    try:
        params = load_all(args.params)
        check_registries(params, where=str(args.params))
        check_watched(params, {name: getattr(args, name, None) for name in FOLDERS},
                      where=str(args.params))
        for name in unused_optional(params):
            sys.modules.setdefault(name, None)  # this process runs as if it were not installed
        body(args, params)
    except (PretrainError, OSError) as exc:
        print("error: " + " ".join(str(exc).splitlines()), file=sys.stderr)  # one line, always
        sys.exit(1)
    except KeyboardInterrupt as exc:
        print(f"interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        sys.exit(130)


# Optional dependencies, with whether params use them. Installed but unused, they must stay
# unloaded: every save_pretrained runs accelerate's extract_model_from_parallel, which imports
# DeepSpeed whenever it is installed (accelerate/utils/other.py), and importing DeepSpeed prints
# "Setting accelerator to CPU ..." and takes 0.6-0.7 s (python -X importtime, after torch and
# accelerate, on a 2-core Xeon with AVX-512F, no AVX-512 BF16). None in sys.modules halts the
# import and makes importlib.util.find_spec, which accelerate and transformers ask, answer None
# (Python's import system reference, "The module cache"). accelerate launch --use_deepspeed keeps it importable,
# so that train can refuse accelerate's DeepSpeed plugin with its own clear message.
OPTIONAL: dict[str, Callable[[dict[str, Any]], bool]] = {
    "deepspeed": lambda params: (params["train"].deepspeed is not None or
                                 os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"),
}


def unused_optional(params: dict[str, Any]) -> list[str]:
    """The names in OPTIONAL that ``params`` (every section, loaded) leave unused."""
    return [name for name, used in OPTIONAL.items() if not used(params)]


# Checks of a section against a registry above config (cleaning rule names), run by every stage
# before any work so that a misspelled name stops the first stage. Imported by name: a check
# cannot change a stage's outputs, so a stage depends (dvc.yaml) only on the code of the
# sections it reads, not on every registry it checks against. (The model presets and the
# cross-key checks are in the config layer: pretrain.config.load_all runs them.)
CROSS_CHECKS: dict[str, str] = {
    "clean": "pretrain.clean.registry:check_params",
}


def check_registries(params: dict[str, Any], where: str = "params.yaml") -> None:
    """Run ``CROSS_CHECKS`` on the loaded ``params``: cheap, nothing is built."""
    for section, target in CROSS_CHECKS.items():
        module, _, name = target.partition(":")
        getattr(importlib.import_module(module), name)(params[section], where)
