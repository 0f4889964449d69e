#!/usr/bin/env bash
# The capacity ladder (issue 14, item 6) on one CUDA GPU: baseline and +TraceGrad at the narrow
# (configs/default.yaml), medium and paper widths (64x0e+32x1o+16x2e+8x3o+8x4e, 3 blocks), on the
# shipped graphene-8 with the main job's recipe (configs/default.yaml: to the plateau, at most
# 1,300 steps), all runs at once on the one GPU. Resumable: rerun to continue stopped runs.
#   bash bench/gpu_ladder.sh [SEEDS] [OUT_ROOT]     (repository root; a few minutes on an H200)
# Table and numbers: bench/results/ladder_cuda.json (wall ms/step is the GPU measure).
# The same ladder on CPU: bench_converged.py --set graphene-8 --config configs/default.yaml
#   --width narrow medium paper --setups baseline,tracegrad (hours on 2 cores at paper widths).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${1:-1}
ROOT_OUT=${2:-runs/ladder}
$PY - <<'PYEOF' || exit 3
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
$PY bench/bench_converged.py --set graphene-8 --config configs/default.yaml \
  --setups baseline,tracegrad --seeds "$SEEDS" --width narrow medium paper --device cuda \
  --jobs $((6 * SEEDS)) --out "$ROOT_OUT" --results bench/results/ladder_cuda.json
