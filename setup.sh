#!/usr/bin/env bash
# One-command set-up: installs pretrain and its dependencies into the active Python
# environment (create and activate a virtualenv first if you want one).
#
#   ./setup.sh             the locked versions: PyTorch 2.13.0, then every other package at the
#                          version and hash in requirements/dev.lock (the committed run's
#                          environment; Linux x86_64, CPython 3.11), then the project itself
#   ./setup.sh --unlocked  the newest versions that pyproject.toml's ranges allow (pip resolves)
#
# On a machine without an NVIDIA GPU, PyTorch's CPU build is installed, so that pip does not pull
# several GB of CUDA packages: a CPU wheel already known to pip (e.g. through its configured
# find-links) is preferred, otherwise PyTorch's CPU index. With a GPU, PyTorch comes from PyPI as
# usual. docs/reproducibility.md says how the lock is updated (requirements/lock.sh).
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python}"
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements/torch.txt)
LOCK=requirements/dev.lock

mode=locked
case "${1:-}" in
    "") ;;
    --unlocked) mode=unlocked ;;
    *) echo "usage: ./setup.sh [--unlocked]" >&2; exit 2 ;;
esac

gpu() { command -v nvidia-smi >/dev/null 2>&1; }

if [ "$mode" = locked ]; then
    platform=$("$PY" -c 'import platform, sys; print(f"{platform.python_implementation()} {sys.version_info[0]}.{sys.version_info[1]} {sys.platform} {platform.machine()}")')
    if [ "$platform" != "CPython 3.11 linux x86_64" ]; then
        echo "setup: $LOCK is for CPython 3.11 on Linux x86_64, this is $platform: run" \
             "./setup.sh --unlocked (the built-in corpus may then differ: docs/reproducibility.md)" >&2
        exit 1
    fi
    # torch==X also matches the CPU build's X+cpu (PEP 440 ignores the local label).
    if [ "$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)" != "$TORCH_VERSION" ]; then
        if gpu; then
            "$PY" -m pip install "torch==$TORCH_VERSION"
        else
            echo "setup: installing the CPU build of PyTorch $TORCH_VERSION"
            # --no-deps: torch's own dependencies are in the lock, at their locked versions.
            "$PY" -m pip install --no-index --no-deps "torch==$TORCH_VERSION" 2>/dev/null \
                || "$PY" -m pip install --no-deps "torch==$TORCH_VERSION" \
                       --index-url https://download.pytorch.org/whl/cpu
        fi
    fi
    # --no-deps: the lock lists every dependency already (torch's included), so pip installs
    # exactly these files, each checked against its hash, and resolves nothing.
    "$PY" -m pip install --no-deps --require-hashes -r "$LOCK"
    "$PY" -m pip install --no-deps -e .
    "$PY" -m pip check
else
    if ! "$PY" -c "import torch" 2>/dev/null && ! gpu; then
        echo "setup: no GPU found, installing the CPU build of PyTorch"
        "$PY" -m pip install --no-index --no-deps torch 2>/dev/null \
            || "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
    fi
    "$PY" -m pip install -e ".[dev]"
fi
# The page template with which `dvc plots show` draws offline (.dvc/config: plots.html_template).
"$PY" -m pretrain.cli plots-template
echo "setup: done, $mode ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
