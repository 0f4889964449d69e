"""Rotate a structure and measure how equivariant a Hamiltonian predictor is.

A rigid rotation x -> R x of the atoms maps each block to H'_ij = D_i(R) H_ij D_j(R)^dagger,
with D the per-shell Wigner matrices of :mod:`tgkit.irreps` (parity (-1)^l for improper R),
and for spinful blocks the spin-major ``kron(U(R), D(R))`` with U the SU(2) matrix. The check
is model-agnostic: a predictor is any function ``Structure -> {key: block}`` (file order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from tgkit.data.deeph import Key, Structure
from tgkit.errors import TgkitError
from tgkit.irreps import (
    e3nn_to_openmx_block,
    num_orbitals,
    orbital_rotation,
    shell_slices,
    su2_matrix,
)

Predictor = Callable[[Structure], dict[Key, np.ndarray]]


class BlockType(NamedTuple):
    """One kind of shell-pair block: species and shell index (file order) of both atoms."""

    z_i: int
    z_j: int
    shell_i: int
    shell_j: int


def random_rotation(seed: int = 0, proper: bool = True) -> np.ndarray:
    """A uniformly random (3, 3) rotation (a QR of a Gaussian); ``proper=False`` adds -1."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q if proper else -q


def atom_rotations(structure: Structure, rot: np.ndarray) -> list[np.ndarray]:
    """Per atom, the matrix D with block' = D block D^dagger, in **file (OpenMX) order**.

    (n, n) real for spinless structures; (2n, 2n) complex ``kron(U, D)`` when spinful.
    """
    rot = _check_rotation(rot)
    cache: dict[tuple[int, ...], np.ndarray] = {}
    u = su2_matrix(rot).numpy() if structure.spinful else None
    out = []
    for types in structure.orbital_types:
        t = tuple(types)
        if t not in cache:
            d = e3nn_to_openmx_block(orbital_rotation(t, rot).numpy(), t, t)
            cache[t] = np.kron(u, d) if u is not None else d
        out.append(cache[t])
    return out


def rotate_blocks(
    structure: Structure, blocks: dict[Key, np.ndarray], rot: np.ndarray, spinless: bool = False
) -> dict[Key, np.ndarray]:
    """``{key: D_i H D_j^dagger}`` for blocks of ``structure`` (file order).

    Args:
        spinless: the blocks are spinless even if the structure is spinful (overlaps).
    """
    if spinless and structure.spinful:
        structure = replace(structure, spinful=False)
    ds = atom_rotations(structure, rot)
    return {k: ds[k[3]] @ b @ ds[k[4]].conj().T for k, b in blocks.items()}


def rotate(structure: Structure, rot: np.ndarray, with_blocks: bool = True) -> Structure:
    """The structure rigidly rotated by the cartesian (3, 3) matrix ``rot`` (x -> rot @ x).

    Lattice vectors and positions are rotated (keys and fractional coordinates are unchanged).
    With ``with_blocks`` the Hamiltonian and overlap blocks are rotated as D H D^dagger (the
    exact reference); otherwise they are dropped, for a predictor to fill in.
    """
    rot = _check_rotation(rot)
    new = replace(
        structure,
        lattice=structure.lattice @ rot.T,
        positions=structure.positions @ rot.T,
        hamiltonians={},
        overlaps=None,
        info=dict(structure.info),
    )
    if with_blocks:
        new.hamiltonians = rotate_blocks(structure, structure.hamiltonians, rot)
        if structure.overlaps is not None:
            new.overlaps = rotate_blocks(structure, structure.overlaps, rot, spinless=True)
    return new


def _shell_rows(types: list[int], spinful: bool) -> list[np.ndarray]:
    """Per shell, its row indices in the atom's file-ordered (spin-major) block."""
    n = num_orbitals(types)
    rows = [np.arange(sl.start, sl.stop) for sl in shell_slices(types)]
    return [np.concatenate([r, r + n]) for r in rows] if spinful else rows


def block_type_errors(
    structure: Structure, a: dict[Key, np.ndarray], b: dict[Key, np.ndarray]
) -> dict[BlockType, float]:
    """Max |a - b| per :class:`BlockType` over the keys the two dicts share."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise TgkitError(f"{structure.name}: the two block sets share no key")
    slices = [_shell_rows(t, structure.spinful) for t in structure.orbital_types]
    z = structure.numbers.tolist()
    out: dict[BlockType, float] = {}
    for k in keys:
        i, j = k[3], k[4]
        diff = np.abs(np.asarray(a[k]) - np.asarray(b[k]))
        for si, ri in enumerate(slices[i]):
            for sj, cj in enumerate(slices[j]):
                bt = BlockType(z[i], z[j], si, sj)
                err = float(diff[np.ix_(ri, cj)].max())
                if err > out.get(bt, -1.0):
                    out[bt] = err
    return out


def check_equivariance(
    predict_fn: Predictor, structure: Structure, rot: np.ndarray
) -> dict[BlockType, float]:
    """Max |H(R x) - D H(x) D^dagger| per block type for a predictor.

    Args:
        predict_fn: maps a :class:`Structure` (blocks may be empty) to predicted blocks
            ``{(Rx, Ry, Rz, i, j): block}`` in file order; spinful structures need
            (2n_i, 2n_j) spin-major blocks, checked with SU(2).
        structure: the geometry x.
        rot: (3, 3) cartesian rotation (proper or improper).

    Returns:
        ``{BlockType(Z_i, Z_j, shell_i, shell_j): max abs error}``, eV, over the keys that
        both predictions contain.
    """
    h = predict_fn(structure)
    h_rot = predict_fn(rotate(structure, rot, with_blocks=False))
    return block_type_errors(structure, h_rot, rotate_blocks(structure, h, rot))


def _check_rotation(rot: np.ndarray) -> np.ndarray:
    rot = np.asarray(rot, dtype=np.float64)
    if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-8):
        raise TgkitError(f"expected a (3, 3) orthogonal rotation matrix, got {rot!r}")
    return rot
