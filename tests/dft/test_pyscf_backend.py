"""PySCF backend: Fourier transform and min-image logic (no PySCF), and real small PySCF runs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from tgkit.data.deeph import Structure, read_structure
from tgkit.data.structures import graphene
from tgkit.dft import build_structure, get_backend
from tgkit.dft.base import band_energies
from tgkit.dft.check import check_directory, hermiticity_error, parse_cp2k_basis
from tgkit.dft.pyscf_backend import (
    PySCFBackend,
    cp2k_basis_text,
    fermi_level,
    fourier_to_real_space,
    min_image_blocks,
)
from tgkit.physics.bands import BlochAssembler

# tiny periodic settings: 1s1p carbon, 2x2x1 mesh, low cutoff (~15 s on 2 busy cores)
TINY = dict(
    basis="gth-szv-molopt-sr", ke_cutoff=30.0, kmesh=(2, 2, 1), precision=1e-6, path_points=0
)


def _toy_structure(rng) -> Structure:
    """Two atoms (s + p each) in a skewed 2D cell with short-range random hermitian blocks."""
    lat = np.array([[2.5, 0.0, 0.0], [1.1, 2.3, 0.0], [0.0, 0.0, 9.0]])
    pos = np.array([[0.1, 0.2, 0.0], [1.6, 1.1, 0.3]])
    types = [[0, 1], [0, 1]]
    ham = {}
    for r in np.ndindex(5, 5, 1):
        rv = np.array(r) - np.array([2, 2, 0])
        for i in range(2):
            for j in range(2):
                key = (*map(int, rv), i, j)
                partner = (*map(int, -rv), j, i)
                d = np.linalg.norm(pos[j] + rv @ lat - pos[i])
                if d > 3.0 or key in ham:
                    continue
                b = rng.normal(size=(4, 4)) * np.exp(-d)
                if key == partner:
                    b = 0.5 * (b + b.T)
                ham[key], ham[partner] = b, b.T
    return Structure(np.array([6, 6]), lat, pos, types, ham)


def test_fourier_min_image_roundtrip_is_exact_on_and_near_mesh():
    """Blocks shorter than half the BvK supercell come back exactly from a mesh FT."""
    s = _toy_structure(np.random.default_rng(0))
    mesh = (4, 4, 1)
    kfrac = np.array(np.meshgrid(*[np.arange(n) / n for n in mesh], indexing="ij")).reshape(3, -1).T

    hk = np.stack([BlochAssembler(s, s.hamiltonians).dense(k) for k in kfrac])
    hr0, cells, imag = fourier_to_real_space(hk, kfrac, mesh)
    assert imag < 1e-12
    back = min_image_blocks(hr0, cells, mesh, s.lattice, s.positions, np.array([0, 4, 8]))
    for key, b in s.hamiltonians.items():
        np.testing.assert_allclose(back[key], b, atol=1e-12)
    assert hermiticity_error(back) < 1e-12
    rebuilt = Structure(s.numbers, s.lattice, s.positions, s.orbital_types, back)
    k_off = np.array([[0.137, 0.291, 0.0], [0.5, 1 / 3, 0.0]])
    np.testing.assert_allclose(band_energies(rebuilt, k_off), band_energies(s, k_off), atol=1e-10)


def test_min_image_splits_equidistant_images_and_keeps_mesh_exact():
    """On a 2x2 mesh the 1-atom chain's +-1 neighbours tie: each gets half, H(k) unchanged."""
    lat = np.diag([3.0, 20.0, 20.0])
    s = Structure(
        np.array([1]),
        lat,
        np.zeros((1, 3)),
        [[0]],
        {
            (0, 0, 0, 0, 0): np.array([[1.0]]),
            (1, 0, 0, 0, 0): np.array([[-0.5]]),
            (-1, 0, 0, 0, 0): np.array([[-0.5]]),
        },
    )

    kfrac = np.array([[0.0, 0, 0], [0.5, 0, 0]])
    hk = np.stack([BlochAssembler(s, s.hamiltonians).dense(k) for k in kfrac])
    hr0, cells, _ = fourier_to_real_space(hk, kfrac, (2, 1, 1))
    back = min_image_blocks(hr0, cells, (2, 1, 1), lat, s.positions, np.array([0, 1]))
    # R = 1 and R = -1 are congruent mod 2 and equidistant: -1 total, split in halves
    assert back[(1, 0, 0, 0, 0)][0, 0] == pytest.approx(-0.5)
    assert back[(-1, 0, 0, 0, 0)][0, 0] == pytest.approx(-0.5)


def test_fermi_level_smearing_and_gap():
    eigs = np.array([[-1.0, 0.0, 1.0], [-1.2, 0.1, 1.1]])  # 2 k points, 2 electrons per k
    mu = fermi_level(eigs, 2.0, 1e-3)
    assert -1.0 < mu < 0.0
    assert fermi_level(eigs, 2.0, 0.0) == pytest.approx(-0.5)


needs_pyscf = pytest.mark.skipif(
    importlib.util.find_spec("pyscf") is None, reason="pyscf not installed"
)


@needs_pyscf
def test_cp2k_basis_text_roundtrip():
    from pyscf import gto

    mol = gto.M(atom="O 0 0 0; H 0 0.76 0.59; H 0 -0.76 0.59", basis="def2-svp", verbose=0)
    basis = {s: parse_cp2k_basis(cp2k_basis_text(s, mol._basis[s])) for s in ("O", "H")}
    mol2 = gto.M(atom=mol.atom, basis=basis, verbose=0)
    np.testing.assert_allclose(mol2.intor("int1e_ovlp"), mol.intor("int1e_ovlp"), atol=1e-12)


@pytest.fixture(scope="module")
def graphene_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pyscf") / "g"
    stats = build_structure(graphene((1, 1), vacuum=6.0), out, get_backend("pyscf", **TINY), None)
    return out, stats


@needs_pyscf
def test_pyscf_builder_writes_a_valid_hermitian_deeph_directory(graphene_dir):
    out, stats = graphene_dir
    s = read_structure(out)
    assert s.orbital_types == [[0, 1], [0, 1]] and s.fermi_level is not None
    assert hermiticity_error(s.hamiltonians) < 1e-10
    assert hermiticity_error(s.overlaps) < 1e-12
    assert set(s.hamiltonians) == set(s.overlaps)
    info = json.loads((out / "info.json").read_text())
    assert info["backend"] == "pyscf" and info["kmesh"] == [2, 2, 1]
    # bands on the mesh, hermiticity, and S against independent PySCF overlaps at the stated
    # geometry (R labels, orbital order) all pass the data check
    report = check_directory(out)
    assert report.ok
    assert report.structures[0].errors["overlap_vs_pyscf"] < 1e-8
    assert stats["mesh_full_all"] < 1e-4


@needs_pyscf
def test_molecule_single_image_reproduces_mo_energies(tmp_path):
    from ase.build import molecule

    water = molecule("H2O")
    water.pbc = False
    backend = get_backend("pyscf", molecule_basis="sto-3g")
    assert isinstance(backend, PySCFBackend)
    stats = build_structure(water, tmp_path / "w", backend, None)
    s = read_structure(tmp_path / "w")
    assert {k[:3] for k in s.hamiltonians} == {(0, 0, 0)}
    assert s.orbital_types == [[0, 0, 1], [0], [0]]  # O 1s 2s 2p, H 1s (OpenMX order)
    ref = json.loads((tmp_path / "w" / "dft_bands.json").read_text())["references"][0]
    e = band_energies(s, np.zeros((1, 3)))
    np.testing.assert_allclose(e[0], ref["eigenvalues"][0], atol=1e-5)
    assert stats["mesh_full_all"] < 1e-5
    homo, lumo = e[0][4], e[0][5]
    assert s.fermi_level == pytest.approx(0.5 * (homo + lumo), abs=1e-5)
    assert check_directory(tmp_path / "w").ok


@needs_pyscf
@pytest.mark.slow
def test_dzvp_graphene_13_orbitals_passes_check(tmp_path):
    """The default 2s2p1d basis (as the CP2K backend's), 3x3x1 SCF mesh, default 15 A vacuum
    (with 6 A the vacuum-axis images alias into the overlaps, 1.6e-2): passes data check."""
    backend = get_backend("pyscf", kmesh=(3, 3, 1), ke_cutoff=60.0, path_points=2)
    stats = build_structure(graphene((1, 1)), tmp_path / "g", backend, None)
    s = read_structure(tmp_path / "g")
    assert s.orbital_types == [[0, 0, 1, 1, 2]] * 2
    assert stats["mesh_full_all"] < 1e-4
    report = check_directory(tmp_path / "g", raise_on_failure=False)
    assert report.ok, report.summary()
