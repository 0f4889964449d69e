"""Why band errors near E_F are large: the pipeline's zero, noise baselines, on-site vs hopping.

For one trained model and one DFT structure it prints (JSON): the band error of the DFT H
itself through the same predict -> blocks -> bands path (must be ~0), of DFT H plus hermitian
Gaussian noise of a few sizes (uncorrelated errors of a given MAE), of the model, and the
model's MAE on on-site blocks (i = j, R = 0) and on hoppings separately.

Usage (repository root, after bench/bench_accuracy.py)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/band_error_check.py \\
        --model runs/bench-accuracy/grad/seed42/model.pt --data datasets/graphene-8/0000
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from tgkit import keys as K
from tgkit.data.deeph import read_structure
from tgkit.data.graph import graph_blocks, structure_to_graph
from tgkit.nn import load_model
from tgkit.physics.bands import compare_bands


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default="datasets/graphene-8/0000")
    p.add_argument("--noise", type=float, nargs="+", default=[0.001, 0.01, 0.03], help="eV")
    args = p.parse_args()
    torch.set_num_threads(1)
    s = read_structure(args.data)
    model = load_model(args.model)
    g = structure_to_graph(s, model.basis, dtype=next(model.parameters()).dtype)
    ref = g[K.HAMILTONIAN].double()

    def bands(h: torch.Tensor) -> dict:
        c = compare_bands(s, graph_blocks({**g, K.HAMILTONIAN: h}, model.basis),
                          path="GMKG", npoints=40)
        return {"band_max_meV": 1000 * c.max_error, "band_mean_meV": 1000 * c.mean_error}

    with torch.no_grad():
        out = model(g)
    hp, mask = out[K.H_PRED].double(), out[K.H_MASK]
    ei, shift = g[K.EDGE_INDEX], g[K.CELL_SHIFT]
    onsite = (ei[0] == ei[1]) & (shift == 0).all(1)
    err = (hp - ref).abs()
    doc = {"model_path": args.model, "data": args.data, "dft_through_pipeline": bands(ref),
           "model": {"mae_meV": 1000 * err[mask].mean().item(),
                     "max_abs_meV": 1000 * err[mask].max().item(),
                     "onsite_mae_meV": 1000 * err[onsite][mask[onsite]].mean().item(),
                     "hopping_mae_meV": 1000 * err[~onsite][mask[~onsite]].mean().item(),
                     **bands(hp)},
           "noise": []}
    rng = np.random.default_rng(0)
    for sigma in args.noise:
        noise = torch.as_tensor(rng.normal(0.0, sigma, ref.shape)) * mask
        noise = 0.5 * (noise + noise[g[K.REVERSE_EDGE]].transpose(-1, -2))
        doc["noise"].append({"sigma_eV": sigma, "mae_meV": 1000 * noise[mask].abs().mean().item(),
                             **bands(ref + noise)})
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
