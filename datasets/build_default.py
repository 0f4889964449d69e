"""Rebuild the shipped default dataset ``datasets/graphene-8`` (and its tiny slice) with CP2K.

Exact command used (from the repository root, 2 cores, CP2K 2023.1 from Debian)::

    OMP_NUM_THREADS=1 .venv/bin/python datasets/build_default.py

Structures: 2x2 monolayer graphene supercells (8 atoms, a = 2.46 A, 15 A vacuum), thermally
perturbed with independent Gaussian displacements sigma = (0.05, 0.05, 0.10) A (seed = index),
PBE, DZVP-MOLOPT-SR-GTH (2s2p1d, 13 orbitals) + GTH-PBE-q4, 3x3x1 k mesh, pair cutoff 7.0 A.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tgkit.data.structures import DEFAULT_SIGMA, graphene, thermal_perturb
from tgkit.dft import CP2KBackend, CP2KSettings, build_dataset

HERE = Path(__file__).resolve().parent
PAIR_CUTOFF = 7.0
NUM_STRUCTURES = 6
TINY = ("0000", "0001")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(HERE / "graphene-8"))
    p.add_argument("--tiny", default=str(HERE / "graphene-tiny"))
    p.add_argument("--num", type=int, default=NUM_STRUCTURES)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--mpi-procs", type=int, default=2)
    args = p.parse_args()
    atoms = [thermal_perturb(graphene((2, 2)), DEFAULT_SIGMA, seed=k) for k in range(args.num)]
    backend = CP2KBackend(CP2KSettings(kmesh=(3, 3, 1), mpi_procs=args.mpi_procs))
    info = [
        {"generator": "graphene((2, 2)) + thermal_perturb", "sigma": list(DEFAULT_SIGMA), "seed": k}
        for k in range(args.num)
    ]
    stats = build_dataset(
        atoms, args.out, backend, pair_cutoff=PAIR_CUTOFF, jobs=args.jobs, extra_info=info
    )
    out = Path(args.out)
    (out / "build_stats.json").write_text(
        json.dumps(sorted(stats, key=lambda s: s["name"]), indent=1) + "\n"
    )
    if not args.tiny:  # --tiny "": no tiny slice (the large sets)
        return
    tiny = Path(args.tiny)
    for name in TINY:
        if (out / name).exists():
            shutil.rmtree(tiny / name, ignore_errors=True)
            shutil.copytree(out / name, tiny / name)


if __name__ == "__main__":
    main()
