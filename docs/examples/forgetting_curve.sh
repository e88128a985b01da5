#!/usr/bin/env bash
# The forgetting-curve example of docs/merge.md, end to end in a fresh copy of this repository:
#  1. a base model: the default pipeline trained on the built-in corpus's prose only
#     (the Python reference manual, docstrings, package descriptions);
#  2. continued pretraining of that base on the standard library's source code
#     (profiles/continued.yaml), scored on held-out code (the domain) and on the base run's
#     held-out prose (evaluate.general_text: forgetting);
#  3. merged back with the base at several weights (merge.weights), and the final merged model
#     exported as GGUF F16 / Q8_0 / Q4_0.
# Usage: docs/examples/forgetting_curve.sh WORKDIR [STEPS]   (30 minutes on a 2-core Xeon, AVX-512F
# without AVX-512 BF16, fp32, shared with other jobs, 2026-11-29; the SLERP rerun, training restored from the run cache: 13 minutes)
set -euo pipefail
work="$1"; steps="${2:-200}"
here="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$work"
(cd "$here" && git ls-files -z --cached --others --exclude-standard | grep -zv '^dvc.lock$' \
    | grep -zv '^metrics/' | grep -zv '^dvclive/' | xargs -0 cp --parents -t "$work")
cd "$work"
git init -q && git add -A && git -c user.name=x -c user.email=x@x commit -qm "fresh copy"
python -m pretrain.cli plots-template

# 1. the base: prose only
dvc exp run -q -n base -S 'download.builtin_parts=[pydoc_topics,docstrings,package_docs]' \
    -S "train.max_steps=$steps"
mkdir -p models/bases data/sources
cp -r models/trained models/bases/prose-base
cp data/packed/heldout_docs.jsonl data/sources/general.jsonl   # prose the base never trained on

# 2 and 3. continued pretraining on code, merged back, exported
cp profiles/continued.yaml params.yaml
git add -A && git -c user.name=x -c user.email=x@x commit -qm "continued pretraining from the prose base"
dvc exp run -n continued-linear -S 'download.builtin_parts=[stdlib]' -S model.base=models/bases/prose-base \
    -S evaluate.general_text=data/sources/general.jsonl -S "train.max_steps=$steps" \
    -S merge.method=linear -S 'merge.weights=[0.2,0.4,0.6,0.8]' -S merge.select=0.6 \
    -S 'export.types=[F16,Q8_0,Q4_0]'
cp metrics/eval.json eval-linear.json
cp metrics/figures/forgetting.png forgetting-linear.png
# the same sweep with SLERP: only merge, evaluate, export and report rerun
dvc exp run -n continued-slerp -S 'download.builtin_parts=[stdlib]' -S model.base=models/bases/prose-base \
    -S evaluate.general_text=data/sources/general.jsonl -S "train.max_steps=$steps" \
    -S merge.method=slerp -S 'merge.weights=[0.2,0.4,0.6,0.8]' -S merge.select=0.6 \
    -S 'export.types=[F16,Q8_0,Q4_0]'
ls -l models/gguf
