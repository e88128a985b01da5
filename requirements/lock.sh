#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml's ranges (docs/reproducibility.md "Updating the
# lock"). Needs uv (`pip install uv`); run from anywhere, then commit requirements/*.lock and the
# pipeline outputs that change (the built-in corpus's package descriptions follow core.lock).
#
#   requirements/lock.sh              keep every pinned version that still satisfies the ranges
#   requirements/lock.sh --upgrade    take the newest versions (or --upgrade-package NAME)
#
# What the lock is for: Linux x86_64, CPython 3.11 (the committed run's platform), with the
# PyTorch of requirements/torch.txt, which setup.sh installs by version before the lock;
# torch itself is left out of the lock files (pip's hash check would refuse the local CPU
# build, whose hashes differ from PyPI's). dev.lock is resolved first; core.lock is the same
# versions for the project without its extras.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null || { echo "lock: uv is missing (pip install uv)" >&2; exit 1; }
# The lock holds the dependencies of PyTorch's CPU build (no CUDA packages): resolve against
# torch==X+cpu, from a local folder of wheels pip is configured with (PIP_FIND_LINKS) when it
# has one, else from PyTorch's CPU index.
cpu_pin=$(mktemp)
trap 'rm -f "$cpu_pin"' EXIT
sed -n 's/^torch==\(.*\)$/torch==\1+cpu/p' requirements/torch.txt > "$cpu_pin"
if [ -n "${PIP_FIND_LINKS:-}" ]; then
    where=(--find-links "$PIP_FIND_LINKS")
else
    where=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
common=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes
        --no-emit-package torch --custom-compile-command "requirements/lock.sh"
        -c "$cpu_pin" "${where[@]}" "$@")
uv pip compile pyproject.toml --extra dev "${common[@]}" -o requirements/dev.lock
uv pip compile pyproject.toml -c requirements/dev.lock "${common[@]}" -o requirements/core.lock
