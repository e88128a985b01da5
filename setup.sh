#!/usr/bin/env bash
# One-command set-up: installs pretrain and its dependencies into the active Python
# environment (create and activate a virtualenv first if you want one).
#
# On a machine without an NVIDIA GPU, PyTorch's CPU build is installed first so that
# pip does not pull several GB of CUDA packages: a CPU wheel already known to pip
# (e.g. through its configured find-links) is preferred, otherwise PyTorch's CPU index.
# With a GPU, or with torch already installed, torch is left to pip as usual.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python}"

if ! "$PY" -c "import torch" 2>/dev/null && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup: no GPU found, installing the CPU build of PyTorch"
    "$PY" -m pip install --no-index --no-deps torch 2>/dev/null \
        || "$PY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install -e ".[dev]"
# The page template with which `dvc plots show` draws offline (.dvc/config: plots.html_template).
"$PY" -m pretrain.cli plots-template
echo "setup: done ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
