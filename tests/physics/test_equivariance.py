"""Equivariance API: rotate(), check_equivariance() with exact and broken predictors, SU(2)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tgkit.data.deeph import Structure
from tgkit.data.soc import to_spinful
from tgkit.errors import TgkitError
from tgkit.irreps import shell_slices, su2_matrix
from tgkit.physics.equivariance import (
    BlockType,
    atom_rotations,
    check_equivariance,
    random_rotation,
    rotate,
    rotate_blocks,
)
from tgkit.testing import random_crystal, toy_structure

NUMBERS = (6, 8, 1)
CUTOFF = 4.5


def toy_predictor(structure: Structure) -> dict:
    """The toy model recomputed on the given geometry: exactly equivariant."""
    return toy_structure(structure.numbers, structure.lattice, structure.positions,
                         cutoff=CUTOFF, seed=0).hamiltonians


@pytest.fixture(scope="module")
def crystal() -> Structure:
    lat, pos = random_crystal(NUMBERS, seed=2)
    return toy_structure(NUMBERS, lat, pos, cutoff=CUTOFF, seed=0)


# ------------------------------------------------------------------ spin-orbit toy (SU(2))


# on-site lambda L.S per element and shell degree (p and d), eV
SOC = {6: {1: 0.2, 2: 0.3}, 8: {1: 0.25, 2: 0.1}, 1: {1: 0.2}}


def spinify(structure: Structure) -> Structure:
    """Spinful copy: I2 (x) H plus on-site lambda L.S (the library's SOC variant)."""
    return to_spinful(structure, SOC)


def spinful_predictor(structure: Structure) -> dict:
    s = replace(structure, spinful=False)
    return spinify(replace(s, hamiltonians=toy_predictor(s))).hamiltonians


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("proper", [True, False])
def test_rotate_matches_cartesian_rotation(crystal, proper):
    """Independent of the Wigner code: OpenMX's p orbitals (px, py, pz) rotate as R itself,
    s orbitals not at all, so s-s, s-p and p-p sub-blocks go to H, H R^T and R H R^T."""
    rot = random_rotation(5, proper=proper)
    r = rotate(crystal, rot)
    d = {0: np.eye(1), 1: rot}
    checked = 0
    for k, blk in crystal.hamiltonians.items():
        ta, tb = crystal.orbital_types[k[3]], crystal.orbital_types[k[4]]
        for la, sa in zip(ta, shell_slices(ta), strict=True):
            for lb, sb in zip(tb, shell_slices(tb), strict=True):
                if la <= 1 and lb <= 1:
                    want = d[la] @ blk[sa, sb] @ d[lb].T
                    assert np.abs(r.hamiltonians[k][sa, sb] - want).max() < 1e-12
                    checked += la + lb > 0
    assert checked
    assert np.allclose(r.lattice, crystal.lattice @ rot.T)
    assert np.allclose(r.positions, crystal.positions @ rot.T)
    # blocks rotate back
    back = rotate(r, rot.T)
    assert max(np.abs(back.hamiltonians[k] - b).max()
               for k, b in crystal.hamiltonians.items()) < 1e-12
    assert rotate(crystal, rot, with_blocks=False).hamiltonians == {}


@pytest.mark.parametrize("proper", [True, False])
def test_toy_predictor_is_equivariant(crystal, proper):
    errors = check_equivariance(toy_predictor, crystal, random_rotation(1, proper=proper))
    # every (Z_i, Z_j, shell_i, shell_j) with an edge is reported
    shells = {z: len(t)
              for z, t in zip(crystal.numbers.tolist(), crystal.orbital_types, strict=True)}
    assert set(errors) == {BlockType(a, b, si, sj) for a in shells for b in shells
                           for si in range(shells[a]) for sj in range(shells[b])}
    assert max(errors.values()) <= 1e-10


def test_broken_predictor_is_caught(crystal):
    """A predictor whose d orbitals do not rotate (kept from the unrotated geometry)."""
    h0 = toy_predictor(crystal)

    def broken(structure):
        h = toy_predictor(structure)
        out = {}
        for k, b in h.items():
            b = b.copy()
            for side, atom in ((0, k[3]), (1, k[4])):
                types = structure.orbital_types[atom]
                off = 0
                for l in types:
                    if l == 2:
                        sl = slice(off, off + 5)
                        if side == 0:
                            b[sl, :] = h0[k][sl, :]
                        else:
                            b[:, sl] = h0[k][:, sl]
                    off += 2 * l + 1
            out[k] = b
        return out

    errors = check_equivariance(broken, crystal, random_rotation(4))
    d_shell = {z: t.index(2) if 2 in t else None
               for z, t in zip(crystal.numbers.tolist(), crystal.orbital_types, strict=True)}
    with_d = [e for bt, e in errors.items()
              if bt.shell_i == d_shell[bt.z_i] or bt.shell_j == d_shell[bt.z_j]]
    without_d = [e for bt, e in errors.items()
                 if bt.shell_i != d_shell[bt.z_i] and bt.shell_j != d_shell[bt.z_j]]
    assert max(with_d) > 1e-2
    assert max(without_d) <= 1e-10


def test_su2_spinful_equivariance(crystal):
    spinful = spinify(crystal)
    # the SOC term is really there: non-zero spin-flip (ud) parts on site
    n0 = crystal.num_orbitals(0)
    assert np.abs(spinful.hamiltonians[(0, 0, 0, 0, 0)][:n0, n0:]).max() > 1e-2
    rot = random_rotation(7)
    errors = check_equivariance(spinful_predictor, spinful, rot)
    assert max(errors.values()) <= 1e-10
    errors = check_equivariance(spinful_predictor, spinful, random_rotation(7, proper=False))
    assert max(errors.values()) <= 1e-10
    # rotating the orbitals alone (U = 1) leaves a large error: the spin rotation matters
    h = spinful_predictor(spinful)
    h_rot = spinful_predictor(rotate(spinful, rot, with_blocks=False))
    d_orb = atom_rotations(replace(spinful, spinful=False), rot)
    wrong = {k: np.kron(np.eye(2), d_orb[k[3]]) @ b @ np.kron(np.eye(2), d_orb[k[4]]).T
             for k, b in h.items()}
    assert max(np.abs(h_rot[k] - wrong[k]).max() for k in h) > 1e-2


def test_spinful_rotation_uses_kron_u_d(crystal):
    spinful = spinify(crystal)
    rot = random_rotation(9)
    ds = atom_rotations(spinful, rot)
    u = su2_matrix(rot).numpy()
    d0 = atom_rotations(crystal, rot)[0]
    assert np.allclose(ds[0], np.kron(u, d0), atol=1e-14)
    # overlaps stay spinless and real under rotate()
    r = rotate(spinful, rot)
    s_ref = rotate_blocks(crystal, crystal.overlaps, rot)
    assert all(np.allclose(r.overlaps[k], s_ref[k], atol=1e-13) for k in s_ref)
    assert all(np.isrealobj(b) for b in r.overlaps.values())


def test_bad_rotation_raises(crystal):
    with pytest.raises(TgkitError, match="orthogonal"):
        rotate(crystal, 2 * np.eye(3))
