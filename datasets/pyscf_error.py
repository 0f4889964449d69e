"""Measure the PySCF backend's error: bands from its stored H(R), S(R) against PySCF's own.

    OMP_NUM_THREADS=2 python datasets/pyscf_error.py [--basis gth-dzvp-molopt-sr] \
        [--ke-cutoff 60] [--mesh 2 3] [--factor 3] [--vacuum 6]

Primitive graphene (2 atoms), one PySCF k-point PBE run per SCF mesh N x N x 1, H(R) Fourier
transformed from the Fock matrix re-evaluated on a mesh ``factor`` times denser; prints, per mesh,
the band error (eV) on the SCF mesh and along the path off it (all bands / E_F +- 2 eV), the
overlap aliasing of the mesh, and the wall time. Plus water with def2-SVP (molecule path).
"""

import argparse
import json
import tempfile
import time

from ase.build import molecule

from tgkit.data.structures import graphene
from tgkit.dft import build_structure, get_backend

ap = argparse.ArgumentParser()
ap.add_argument("--basis", default="gth-dzvp-molopt-sr")
ap.add_argument("--ke-cutoff", type=float, default=60.0)
ap.add_argument("--mesh", type=int, nargs="+", default=[2, 3])
ap.add_argument("--factor", type=int, default=3)
ap.add_argument("--vacuum", type=float, default=6.0)
ap.add_argument("--path-points", type=int, default=4)
ap.add_argument("--precision", type=float, default=1e-8)
args = ap.parse_args()

rows = []
for n in args.mesh:
    backend = get_backend(
        "pyscf",
        basis=args.basis,
        ke_cutoff=args.ke_cutoff,
        kmesh=(n, n, 1),
        fourier_factor=args.factor,
        precision=args.precision,
        path_points=args.path_points,
    )
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        st = build_structure(graphene((1, 1), vacuum=args.vacuum), d + "/g", backend, None)
        info = json.load(open(d + "/g/info.json"))
    rows.append(
        {
            "system": f"graphene 2 atoms, {args.basis}, SCF mesh {n}x{n}x1, factor {args.factor}",
            "mesh_all": st["mesh_full_all"],
            "path_window": st["path_full_window"],
            "path_all": st["path_full_all"],
            "overlap_alias": info["overlap_alias_error"],
            "scf_s": info["scf_wall_s"],
            "fock_dense_s": info["bands_wall_s"],
            "total_s": round(time.perf_counter() - t0, 1),
        }
    )
    print(json.dumps(rows[-1]), flush=True)

water = molecule("H2O")
water.pbc = False
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    st = build_structure(water, d + "/w", get_backend("pyscf"), None)
    print(
        json.dumps(
            {
                "system": "H2O def2-SVP",
                "mesh_all": st["mesh_full_all"],
                "total_s": round(time.perf_counter() - t0, 1),
            }
        ),
        flush=True,
    )
