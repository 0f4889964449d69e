#!/usr/bin/env bash
# One short GPU check (issue 18): on a CUDA machine, the train-step table of the four setups at
# DeepH-E3's widths, eager against train.compile's step (bench/bench_compile.py), CPU-vs-CUDA
# predictions of the shipped models (bench/gpu_equal.py) and the 10,444-atom twisted-bilayer
# inference, written to one JSON.
#   bash bench/gpu_check.sh [OUT_DIR]          (repository root; ~3-5 min on one modern GPU)
# Needs torch with CUDA (keep the machine's own build: pip install -e . without the CPU
# constraint). Exits 3 without a GPU, so a CPU machine cannot pass it off as a GPU figure.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-bench/results}}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
$PY - <<'PYEOF' || exit 3
import torch, sys
sys.exit(0 if torch.cuda.is_available() else 1)
PYEOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu_check_nvidia_smi.csv" || true
$PY bench/bench_step.py --device cuda --steps 20 --warmup 5 \
  --setups baseline trace grad tracegrad > "$OUT/gpu_check_step.txt"
$PY bench/bench_step.py --device cuda --steps 20 --warmup 5 --data datasets/graphene-8/0000 \
  --setups baseline tracegrad >> "$OUT/gpu_check_step.txt"
$PY bench/bench_compile.py --device cuda --config '' --setup tracegrad --steps 20 \
  > "$OUT/gpu_check_compile.txt" 2>&1 || echo "torch.compile failed (see gpu_check_compile.txt)"
$PY bench/gpu_equal.py --out "$OUT/gpu_check_equal.json" || echo "CPU and CUDA predictions differ"
$PY bench/bench_inference.py --device cuda --chunk 2000000 --m 9 19 29 --results "$OUT/gpu_check_inference.json"
$PY - "$OUT" <<'PYEOF'
import json, sys, pathlib, datetime, torch
out = pathlib.Path(sys.argv[1])
doc = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
       "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
       "cuda": torch.version.cuda,
       "train_step_table": (out / "gpu_check_step.txt").read_text(),
       "train_compile": (out / "gpu_check_compile.txt").read_text()[-2000:],
       "inference": json.loads((out / "gpu_check_inference.json").read_text()),
       "equal_predictions": json.loads((out / "gpu_check_equal.json").read_text())}
(out / "gpu_check.json").write_text(json.dumps(doc, indent=1) + "\n")
print(f"wrote {out / 'gpu_check.json'}")
PYEOF
