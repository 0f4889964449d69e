"""CP2K backend: parsers (no CP2K needed), and real CP2K runs (``-m cp2k``, skipped without it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tgkit.data.deeph import read_structure
from tgkit.data.soc import to_spinful
from tgkit.data.structures import graphene, thermal_perturb
from tgkit.dft import CP2KBackend, CP2KSettings, build_structure, truncate
from tgkit.dft.base import band_energies
from tgkit.dft.check import check_directory
from tgkit.dft.cp2k import (
    CP2KError,
    find_cp2k,
    monkhorst_pack,
    parse_fermi,
    parse_images,
    read_csr,
)
from tgkit.errors import TgkitError
from tgkit.irreps import openmx_to_e3nn_index, orbital_rotation

TINY = Path(__file__).resolve().parents[2] / "datasets" / "graphene-tiny" / "0000"
HAVE_CP2K = any(shutil.which(n) for n in ("cp2k.psmp", "cp2k.ssmp", "cp2k"))
skip_no_cp2k = pytest.mark.skipif(not HAVE_CP2K, reason="cp2k executable not installed")


def test_read_csr_handles_empty_and_single_line(tmp_path):
    (tmp_path / "empty.csr").write_text("")
    (tmp_path / "one.csr").write_text("       2       3  0.15E+001\n")
    assert not read_csr(tmp_path / "empty.csr", 3).any()
    m = read_csr(tmp_path / "one.csr", 3)
    assert m[1, 2] == 1.5 and np.count_nonzero(m) == 1


def test_parse_images_and_fermi():
    out = (
        "  Fermi energy:   -0.1\n  Fermi energy:   -0.08055073630122\n"
        " KS CSR write|  3 periodic images\n      Number    X      Y      Z\n"
        "         1      0      0      0\n         2     -1      0      0\n"
        "         3      1      1      0\n trailing\n"
    )
    assert parse_images(out) == {1: (0, 0, 0), 2: (-1, 0, 0), 3: (1, 1, 0)}
    assert parse_fermi(out) == pytest.approx(-0.08055073630122 * 27.211386245988)
    with pytest.raises(CP2KError, match="periodic images"):
        parse_images("nothing here")


def test_monkhorst_pack_matches_cp2k_convention():
    k = monkhorst_pack((3, 3, 1))
    assert k.shape == (9, 3)
    assert sorted(set(np.round(k[:, 0], 12))) == pytest.approx([-1 / 3, 0, 1 / 3])


def test_missing_cp2k_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CP2K_EXE", raising=False)
    with pytest.raises(TgkitError, match="apt-get install -y cp2k.*PySCF"):
        find_cp2k()


def test_truncate_keeps_pairs_and_hermiticity():
    s = read_structure(TINY)
    t = truncate(s, 3.0)
    d = np.linalg.norm(t.edge_vectors(sorted(t.hamiltonians)), axis=1)
    assert d.max() < 3.0 and (0, 0, 0, 0, 0) in t.hamiltonians
    for rx, ry, rz, i, j in t.hamiltonians:
        assert (-rx, -ry, -rz, j, i) in t.hamiltonians
    assert set(t.overlaps) == set(t.hamiltonians)


def test_spinless_soc_doubles_bands():
    s = read_structure(TINY)
    k = np.array([[0.1, 0.2, 0.0]])
    e = band_energies(s, k)
    e2 = band_energies(to_spinful(s, {}), k)
    assert np.allclose(e2[:, ::2], e, atol=1e-9) and np.allclose(e2[:, 1::2], e, atol=1e-9)


# --------------------------------------------------------------------------- real CP2K runs


@pytest.mark.cp2k
@skip_no_cp2k
def test_cp2k_build_and_check_8_atoms(tmp_path):
    """One real 8-atom CP2K run (~20-30 s on 2 cores) through build and check."""
    atoms = thermal_perturb(graphene((2, 2)), seed=7)
    backend = CP2KBackend(CP2KSettings(kmesh=(3, 3, 1)))
    stats = build_structure(atoms, tmp_path / "g8", backend, pair_cutoff=7.0)
    assert stats["mesh_full_all"] < 1e-4 and stats["path_full_window"] < 1e-2
    assert not list(tmp_path.glob("tgkit-cp2k-*"))  # raw output deleted
    rep = check_directory(tmp_path / "g8")
    assert rep.ok and rep.structures[0].errors["overlap_vs_pyscf"] < 1e-6


@pytest.mark.cp2k
@skip_no_cp2k
def test_cp2k_rotation_proves_d_order(tmp_path):
    """The same 2-atom cell rigidly rotated in 3D and recomputed: blocks = D H D^T."""
    from scipy.spatial.transform import Rotation

    atoms = thermal_perturb(graphene((1, 1)), seed=3)
    rot = Rotation.from_rotvec([0.4, -0.7, 0.5]).as_matrix()
    turned = atoms.copy()
    turned.set_cell(atoms.cell[:] @ rot.T, scale_atoms=False)
    turned.positions = atoms.positions @ rot.T
    backend = CP2KBackend(CP2KSettings(kmesh=(3, 3, 1)))
    res = [backend.compute(a, tmp_path / name) for a, name in ((atoms, "a"), (turned, "b"))]
    s0, s1 = res[0].structure, res[1].structure
    types = s0.orbital_types[0]
    d = orbital_rotation(types, rot).numpy()
    inv = np.argsort(openmx_to_e3nn_index(types))
    d = d[np.ix_(inv, inv)]  # OpenMX order
    keys = [k for k in s0.hamiltonians if np.abs(s0.overlaps[k]).max() > 1e-3]
    assert keys and set(keys) <= set(s1.hamiltonians)
    err_s = max(np.abs(d @ s0.overlaps[k] @ d.T - s1.overlaps[k]).max() for k in keys)
    err_h = max(np.abs(d @ s0.hamiltonians[k] @ d.T - s1.hamiltonians[k]).max() for k in keys)
    assert err_s < 1e-6
    assert err_h < 2e-3  # eV: the real-space grid is not rotation invariant (egg-box effect)
