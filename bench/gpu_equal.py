"""Equal predictions on CPU and CUDA (issue 18, item 6, on a GPU machine): each shipped model
predicts the shipped structures on both devices; prints and writes the largest difference in
eV. Run by bench/gpu_check.sh; exits 1 when a difference exceeds the float32 round-off bound.

    python bench/gpu_equal.py --out bench/results/gpu_equal.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from tgkit import models
from tgkit.data.deeph import read_structure
from tgkit.nn.inference import predict_structure

ROOT = Path(__file__).resolve().parents[1]
STRUCTURES = {"graphene": "datasets/graphene-8/0005", "bilayer": "datasets/tbg-21.8/t000"}
# float32 models: both devices round differently (other kernels, other summation order)
TOLERANCE_EV = 1e-4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "bench/results/gpu_equal.json"))
    args = p.parse_args()
    doc = {}
    for name, rel in STRUCTURES.items():
        s = read_structure(ROOT / rel)
        pred = {}
        for dev in ("cpu", "cuda"):
            model = models.load(name, device=dev).eval()
            pred[dev] = predict_structure(model, s, device=dev)
        diff = max(float(np.abs(pred["cpu"][k] - pred["cuda"][k]).max()) for k in pred["cpu"])
        scale = max(float(np.abs(b).max()) for b in pred["cpu"].values())
        doc[name] = {"structure": rel, "blocks": len(pred["cpu"]), "max_abs_diff_eV": diff,
                     "max_abs_H_eV": scale}
        print(f"{name} on {rel}: max |H_cpu - H_cuda| = {diff:.2e} eV "
              f"(|H| up to {scale:.1f} eV, {len(pred['cpu'])} blocks)", flush=True)
    doc["gpu"] = torch.cuda.get_device_name(0)
    doc["tolerance_eV"] = TOLERANCE_EV
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    raise SystemExit(0 if all(v["max_abs_diff_eV"] < TOLERANCE_EV for k, v in doc.items()
                              if isinstance(v, dict)) else 1)


if __name__ == "__main__":
    main()
