"""Bands from H(R), S(R) built by the PySCF builder reproduce PySCF's own eigenvalues."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pyscf")

from tgkit.data.deeph import read_structure  # noqa: E402
from tgkit.data.structures import graphene, thermal_perturb  # noqa: E402
from tgkit.dft import build_structure, get_backend  # noqa: E402
from tgkit.physics.bands import BandSolver, band_energies  # noqa: E402


def test_pyscf_bands_on_scf_mesh_from_stored_blocks(tmp_path):
    """Perturbed 2-atom graphene, 2x2x1 SCF mesh: stored H(R), S(R) give PySCF's bands."""
    atoms = thermal_perturb(graphene((1, 1), vacuum=6.0), seed=3)
    backend = get_backend(
        "pyscf",
        basis="gth-szv-molopt-sr",
        ke_cutoff=30.0,
        kmesh=(2, 2, 1),
        precision=1e-6,
        path_points=1,
    )
    build_structure(atoms, tmp_path / "g", backend, pair_cutoff=None)
    s = read_structure(tmp_path / "g")
    refs = json.loads((tmp_path / "g" / "dft_bands.json").read_text())["references"]
    mesh = next(r for r in refs if r["kind"] == "mesh")
    ref = np.asarray(mesh["eigenvalues"])
    e = band_energies(s, np.asarray(mesh["kpoints"]))[:, : ref.shape[1]]
    assert np.abs(e - ref).max() < 1e-4
    # the same from the solver without overlap projection
    e2 = BandSolver(s, overlap_threshold=1e-10).bands(np.asarray(mesh["kpoints"])).energies
    assert np.abs(e2[:, : ref.shape[1]] - ref).max() < 1e-4
    # off the mesh: H(R) comes from the Fock matrix on a 6x6 mesh (fourier_factor 3), so
    # the Born-von Karman aliasing is small (measured in datasets/README.md, "PySCF backend")
    path = next(r for r in refs if r["kind"] == "path")
    kp, ref_p = np.asarray(path["kpoints"]), np.asarray(path["eigenvalues"])
    ep = band_energies(s, kp)[:, : ref_p.shape[1]]
    window = np.abs(ref_p - s.fermi_level) <= 2.0
    assert window.any()
    assert np.abs(ep - ref_p)[window].max() < 1e-2
    assert np.abs(ep - ref_p)[:, :4].max() < 1e-2
