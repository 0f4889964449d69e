"""The spinful (SOC) variant: layout, hermiticity, and SU(2) covariance on real DFT blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tgkit.data.deeph import read_structure
from tgkit.data.soc import lds_matrix, onsite_soc, to_spinful
from tgkit.irreps import PAULI, angular_momentum, openmx_to_e3nn_index, orbital_rotation, su2_matrix

TINY = Path(__file__).resolve().parents[2] / "datasets" / "graphene-tiny" / "0000"


def _openmx_rotation(types, rot) -> np.ndarray:
    """D of one atom's orbitals in OpenMX (file) order."""
    d = orbital_rotation(types, rot).numpy()
    p = openmx_to_e3nn_index(types)  # e3nn row k = OpenMX row p[k]
    inv = np.argsort(p)
    return d[np.ix_(inv, inv)]


@pytest.mark.parametrize("l", [1, 2, 3])
def test_angular_momentum_algebra(l):
    L = angular_momentum(l)
    assert np.allclose(L[0] @ L[1] - L[1] @ L[0], 1j * L[2], atol=1e-12)
    assert np.allclose(sum(x @ x for x in L), l * (l + 1) * np.eye(2 * l + 1), atol=1e-12)
    # L.S eigenvalues: l/2 (j = l + 1/2, 2l+2 states) and -(l+1)/2 (j = l - 1/2, 2l states)
    ev = np.linalg.eigvalsh(lds_matrix(l))
    assert np.allclose(ev[: 2 * l], -(l + 1) / 2) and np.allclose(ev[2 * l :], l / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soc_blocks_are_su2_covariant(seed):
    """Rotating the spinless blocks (D H D^T) and adding SOC equals rotating the SOC blocks
    with U(R) (x) D(R): the on-site L.S term is exactly rotation invariant."""
    s = read_structure(TINY)
    rot = Rotation.random(random_state=seed).as_matrix()
    types = s.orbital_types[0]
    d = _openmx_rotation(types, rot)
    u = su2_matrix(rot).numpy()
    lam = {6: {1: 0.3, 2: 0.1}}
    h = s.hamiltonians[(0, 0, 0, 0, 0)]
    soc_then_rotate = (
        np.kron(u, d) @ (np.kron(np.eye(2), h) + onsite_soc(types, lam[6])) @ np.kron(u, d).conj().T
    )
    rotated = d @ h @ d.T
    rotate_then_soc = np.kron(np.eye(2), rotated) + onsite_soc(types, lam[6])
    assert np.abs(soc_then_rotate - rotate_then_soc).max() < 1e-10
    # the Pauli/U pairing itself: U sigma_a U^dagger = sum_b R_ba sigma_b
    assert np.allclose(
        np.einsum("ij,ajk,lk->ail", u, PAULI, u.conj()),
        np.einsum("ba,bij->aij", rot, PAULI),
        atol=1e-12,
    )


def test_to_spinful_layout_and_bands():
    s = read_structure(TINY)
    soc = to_spinful(s, {6: {1: 0.0}})
    assert soc.spinful and soc.overlaps is s.overlaps
    n = s.num_orbitals(0)
    for key, b in soc.hamiltonians.items():
        assert b.shape == (2 * n, 2 * n) and b.dtype == np.complex128
        assert np.array_equal(b[:n, :n], s.hamiltonians[key]) and not b[:n, n:].any()
    strong = to_spinful(s, {6: {1: 0.2}})
    onsite = strong.hamiltonians[(0, 0, 0, 0, 0)]
    assert np.abs(onsite - onsite.conj().T).max() < 1e-12
    assert np.abs(onsite[:n, n:]).max() > 0.01  # spin-flip terms present
    assert strong.info["soc_model"]["lambda_eV"] == {"6": {"1": 0.2}}


def test_to_spinful_round_trip(tmp_path):
    from tgkit.data.deeph import write_structure

    s = read_structure(TINY)
    soc = to_spinful(s)
    write_structure(soc, tmp_path / "soc")
    back = read_structure(tmp_path / "soc")
    assert back.spinful
    key = (0, 0, 0, 0, 0)
    assert np.array_equal(back.hamiltonians[key], soc.hamiltonians[key])
