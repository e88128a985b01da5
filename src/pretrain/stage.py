"""The shared entry point of stage scripts: arguments, params validation, one-line errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from pretrain.config import load_all
from pretrain.errors import PretrainError
from pretrain.filters import check_names
from pretrain.presets import resolve_sizes


def run_stage(description: str, paths: list[str], body: Callable[[argparse.Namespace, dict], Any],
              optional: tuple[str, ...] = ()) -> None:
    """Parse ``--<path>`` arguments (those in ``optional`` may be left out: None), validate
    every params section, run ``body``.

    All of params.yaml is validated before any work, so a typo in any section stops the
    pipeline at its first stage with a one-line error naming the key. So does a failure to
    read or write a file (OSError: its message names the file).
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
        body(args, params)
    except (PretrainError, OSError) as exc:
        print("error: " + " ".join(str(exc).splitlines()), file=sys.stderr)  # one line, always
        sys.exit(1)
    except KeyboardInterrupt as exc:
        print(f"interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
        sys.exit(130)


def check_registries(params: dict[str, Any], where: str = "params.yaml") -> None:
    """The checks that need registries above config: model sizes against the presets, filter
    names against the filters. Cheap (nothing is built), so every stage runs them first."""
    if params["model"].init == "random":
        resolve_sizes(params["model"], where)
    check_names(params["clean"].filters, where)
    check_names(params["clean"].code_filters, where, key="code_filters")
