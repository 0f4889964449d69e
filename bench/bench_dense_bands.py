"""Dense band solve on real CP2K structures: the overlap projection against the Cholesky solve.

``BandSolver.solve_dense`` solves ``H c = e S c`` at one k either by projecting S's small
eigenvalues out (S diagonalised with eigenvectors, then ``X^dagger H X``: always correct) or,
where S keeps every direction, by Cholesky of S (LAPACK ``zhegv``). This times, alternating on
the same k points of each structure's standard band path: ``projected`` (always project),
``auto`` (S's eigenvalues first, then Cholesky where none is below the threshold: ``tgkit
bands``, reference bands) and ``cholesky`` (no check: the predicted bands of
``BandReference.compare``, where the reference kept every direction), and checks that all
give the same eigenvalues. Process CPU time, so machine load affects each mode alike.

Usage (repository root)::

    .venv/bin/python bench/bench_dense_bands.py datasets/tbg-21.8/t000 \\
        datasets/large/twisted-13.2/t001 --npoints 6 --out bench/results/dense_bands.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit.data.deeph import read_structure  # noqa: E402
from tgkit.physics.bands import BandSolver, kpath  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("structures", nargs="+", type=Path)
    p.add_argument("--npoints", type=int, default=6, help="k points of the path to time")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    for d in args.structures:
        s = read_structure(d)
        solver = BandSolver(s)
        ks = kpath(s.lattice, None, args.npoints).kpts
        times: dict[str, list[float]] = {"projected": [], "auto": [], "cholesky": []}
        diff, full_rank = 0.0, 0
        for k in ks:
            out = {}
            for name, project in (("projected", True), ("auto", None), ("cholesky", False)):
                t = time.process_time()
                out[name] = solver.solve_dense(k, project=project)
                times[name].append(time.process_time() - t)
            full_rank += int(not np.isnan(out["projected"]).any())
            diff = max(diff, *(float(np.nanmax(np.abs(out["projected"] - out[n])))
                               for n in ("auto", "cholesky")))
        row = {"structure": str(d), "atoms": s.num_atoms, "orbitals": solver.dim,
               "kpoints": len(ks), "kpoints_full_rank": full_rank,
               "projected_cpu_s_per_k": statistics.median(times["projected"]),
               "auto_cpu_s_per_k": statistics.median(times["auto"]),
               "cholesky_cpu_s_per_k": statistics.median(times["cholesky"]),
               "max_abs_diff_eV": diff}
        row["speedup_auto"] = row["projected_cpu_s_per_k"] / row["auto_cpu_s_per_k"]
        row["speedup_cholesky"] = row["projected_cpu_s_per_k"] / row["cholesky_cpu_s_per_k"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
