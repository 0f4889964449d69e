"""Band error against the pair cutoff for one CP2K structure (the table in datasets/README.md).

OMP_NUM_THREADS=1 .venv/bin/python datasets/truncation_curve.py --seed 0
"""

from __future__ import annotations

import argparse
import tempfile

from tgkit.data.structures import DEFAULT_SIGMA, graphene, thermal_perturb
from tgkit.dft import CP2KBackend, CP2KSettings
from tgkit.dft.build import BAND_WINDOW, measure


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cutoffs", type=float, nargs="+", default=[6, 6.5, 7, 7.5, 8, 9, 10, 12])
    args = p.parse_args()
    atoms = thermal_perturb(graphene((2, 2)), DEFAULT_SIGMA, seed=args.seed)
    with tempfile.TemporaryDirectory() as work:
        res = CP2KBackend(CP2KSettings(kmesh=(3, 3, 1))).compute(atoms, work)
    print(
        f"| cutoff (A) | blocks | mesh, all bands | mesh, E_F +- {BAND_WINDOW} eV | "
        f"path, all bands | path, E_F +- {BAND_WINDOW} eV |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for rc in args.cutoffs:
        try:
            m = measure(res, rc)
        except Exception as exc:  # truncated S may stop being positive definite
            print(f"| {rc} | - | S not positive definite ({type(exc).__name__}) | | | |")
            continue
        print(
            f"| {rc} | {m['num_blocks']} | {m['mesh_truncated_all']:.1e} | "
            f"{m['mesh_truncated_window']:.1e} | {m['path_truncated_all']:.1e} | "
            f"{m['path_truncated_window']:.1e} |"
        )


if __name__ == "__main__":
    main()
