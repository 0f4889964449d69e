"""Equivariance error of the model: max |H(R x) - D(R) H(x) D(R)^dagger| over every block.

For each setup (or a trained ``model.pt``), random proper and improper rotations of a shipped
CP2K graphene structure and of a 21.8 degree twisted bilayer; D is the exact float64
Wigner-D of :mod:`tgkit.irreps` (e3nn's own D is only ~1e-7 accurate). Models are built in
float64 (a float32 model is equivariant only to float32 round-off, ~1e-6 relative).

    .venv/bin/python bench/bench_equivariance.py                 # the four setups, untrained
    .venv/bin/python bench/bench_equivariance.py --model runs/default/model.pt

Writes ``bench/results/equivariance.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import platform
from pathlib import Path

import torch

from tgkit.config import load_config
from tgkit.data.deeph import Structure, read_structure
from tgkit.data.structures import twisted_bilayer_graphene
from tgkit.irreps import OrbitalBasis
from tgkit.nn import HamiltonianModel, load_model
from tgkit.nn.inference import predict_structure
from tgkit.physics.equivariance import check_equivariance, random_rotation

ROOT = Path(__file__).resolve().parents[1]


def structures() -> list[Structure]:
    g = read_structure(ROOT / "datasets" / "graphene-8" / "0000")
    atoms = twisted_bilayer_graphene(1, 2)
    tbg = Structure(atoms.numbers, atoms.cell.array, atoms.positions,
                    [list(g.orbital_types[0])] * len(atoms), {}, name="tbg-21.8deg")
    # both predicted on neighbour-list graphs, so x and R x have the same edges
    return [dataclasses.replace(g, hamiltonians={}, overlaps=None), tbg]


def max_error(model: HamiltonianModel, rotations: int) -> dict[str, float]:
    out = {}
    for s in structures():
        errs = []
        for k in range(rotations):
            for proper in (True, False):
                e = check_equivariance(lambda st: predict_structure(model, st), s,
                                       random_rotation(k, proper=proper))
                errs.append(max(e.values()))
        out[s.name] = max(errs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--model", default=None, help="a trained model.pt (cast to float64)")
    p.add_argument("--rotations", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "equivariance.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    basis = OrbitalBasis({6: (0, 0, 1, 1, 2)})
    results: dict[str, dict[str, float]] = {}
    if args.model:
        model = load_model(args.model).double().export_inference()
        results[f"trained:{args.model}"] = max_error(model, args.rotations)
    else:
        cfg = load_config(args.config)
        for setup in ("baseline", "trace", "grad", "tracegrad"):
            torch.manual_seed(0)
            tg = dataclasses.replace(cfg.tracegrad, setup=setup)
            model = HamiltonianModel(basis, model=cfg.model, tracegrad=tg,
                                     dtype=torch.float64).eval()
            results[setup] = max_error(model, args.rotations)
    for name, errs in results.items():
        print(f"{name:12s} " + "  ".join(f"{s}: {e:.2e} eV" for s, e in errs.items()))
    record = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "command": "bench/bench_equivariance.py " + (f"--model {args.model}" if args.model
                                                     else f"--config {args.config}"),
        "rotations_per_structure": 2 * args.rotations,
        "max_abs_error_eV": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
