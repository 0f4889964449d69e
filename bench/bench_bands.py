"""Time bands near E_F of a 1000+-atom sheet with the sparse shift-invert solver.

The structure is an n x n graphene supercell (2 n^2 atoms) with its atoms rattled by 0.05
Angstrom (so no exact symmetry degeneracies, as in a twisted bilayer), carrying the toy
two-centre Hamiltonian of :mod:`tgkit.testing` (C basis s+p, 4 orbitals, cutoff 3 Angstrom).
sigma = E_F is taken at half filling of the primitive cell on a 12x12 k grid.

Usage::

    OMP_NUM_THREADS=2 .venv/bin/python bench/bench_bands.py --n 24 --num-bands 10 --nk 3

Prints one JSON line: atoms, orbitals, non-zeros, seconds to build the structure, to build the
index arrays, and per k point for the sparse solve; with ``--dense-check`` it also solves one
k densely and reports the max difference of the eigenvalues nearest E_F.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from tgkit.physics.bands import BandSolver, band_energies
from tgkit.testing import toy_structure


def graphene_sheet(n: int) -> tuple[np.ndarray, np.ndarray]:
    a = 2.46
    prim = np.array([[a, 0, 0], [a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]])
    frac = np.array([[i + b, j + b, 0.5] for i in range(n) for j in range(n)
                     for b in (1 / 3, 2 / 3)])
    return np.diag([n, n, 1.0]) @ prim, frac @ prim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="supercell size: 2 n^2 atoms")
    ap.add_argument("--num-bands", type=int, default=10)
    ap.add_argument("--nk", type=int, default=3, help="k points along Gamma-M (complex H(k))")
    ap.add_argument("--dense-check", action="store_true")
    args = ap.parse_args()

    basis = {6: (0, 1)}
    lat1, pos1 = graphene_sheet(1)
    prim = toy_structure([6, 6], lat1, pos1, basis=basis, cutoff=3.0, seed=0)
    grid = np.array([[i / 12, j / 12, 0] for i in range(12) for j in range(12)])
    e = np.sort(band_energies(prim, grid).ravel())
    ef = float(0.5 * (e[len(e) // 2 - 1] + e[len(e) // 2]))

    lat, pos = graphene_sheet(args.n)
    pos = pos + 0.05 * np.random.default_rng(0).standard_normal(pos.shape)
    t0 = time.perf_counter()
    s = toy_structure([6] * len(pos), lat, pos, basis=basis, cutoff=3.0, seed=0)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    solver = BandSolver(s)
    t_index = time.perf_counter() - t0
    kpts = np.array([[0.5 * (i + 1) / args.nk / args.n, 0.0, 0.0] for i in range(args.nk)])
    times, energies = [], []
    for k in kpts:
        t0 = time.perf_counter()
        energies.append(solver.bands([k], solver="sparse", num_bands=args.num_bands,
                                     sigma=ef).energies[0])
        times.append(time.perf_counter() - t0)
    out = {
        "atoms": s.num_atoms, "orbitals": solver.dim, "nnz_H": int(len(solver.h.lin)),
        "num_bands": args.num_bands, "sigma_eV": round(ef, 4),
        "build_structure_s": round(t_build, 2), "index_arrays_s": round(t_index, 2),
        "sparse_s_per_k": [round(t, 2) for t in times],
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if args.dense_check:
        t0 = time.perf_counter()
        e_d = solver.solve_dense(kpts[0])
        out["dense_s_one_k"] = round(time.perf_counter() - t0, 2)
        near = np.sort(e_d[np.argsort(np.abs(e_d - ef))[: args.num_bands]])
        out["max_diff_sparse_vs_dense_eV"] = float(np.abs(near - energies[0]).max())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
