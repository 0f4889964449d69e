"""Fixtures built in code for tests, benchmarks and docs: small crystals with toy Hamiltonians.

The toy Hamiltonian is a two-centre model with the symmetry of a real one, so that tests of
the data layer and the model exercise true physics conventions rather than random arrays:

* an off-site shell block (l1, l2) between atoms i and j is
  ``sum_L c_L(Z_i, Z_j, shells) g_L(r) Y_L(d)`` mapped to the block with the CG basis of
  :mod:`tgkit.irreps` (only L with parity (-1)^(l1+l2) survive), times an invariant
  environment factor; it rotates exactly as D^l1 H D^l2^T,
* on-site blocks are shell energies plus a crystal-field term from the neighbours,
* H_ji(-R) = H_ij(R)^T holds by construction (the formula is symmetrised),
* overlaps use the same form with smaller, faster-decaying coefficients and 1 on-site.

Real DFT data lives in ``datasets/``; these fixtures exist so that tests need no DFT code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from e3nn import o3

from tgkit.data.deeph import Structure
from tgkit.data.graph import edges_from_cutoff
from tgkit.irreps import (
    e3nn_to_openmx_block,
    irreps_to_block,
    num_orbitals,
    shell_dim,
    shell_slices,
    to_e3nn_frame,
)

CARBON_13 = (0, 0, 1, 1, 2)  # C 2s2p1d, the paper's (and CP2K DZVP's) 13-orbital basis
DEFAULT_BASIS: dict[int, tuple[int, ...]] = {6: CARBON_13, 1: (0, 0, 1), 8: (0, 0, 1, 1, 2)}


def random_crystal(
    numbers: Sequence[int],
    seed: int = 0,
    cell: float = 4.0,
    min_dist: float = 1.2,
    vacuum_axis: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A random triclinic cell and positions with no two atoms closer than ``min_dist``.

    Returns:
        (lattice (3, 3) rows, positions (N, 3)) in Angstrom.
    """
    rng = np.random.default_rng(seed)
    lattice = cell * (np.eye(3) + 0.15 * rng.standard_normal((3, 3)))
    if vacuum_axis is not None:
        lattice[vacuum_axis] = 0.0
        lattice[:, vacuum_axis] = 0.0
        lattice[vacuum_axis, vacuum_axis] = 12.0
    pos: list[np.ndarray] = []
    for _ in range(len(numbers)):
        for _attempt in range(1000):
            frac = rng.random(3)
            if vacuum_axis is not None:
                frac[vacuum_axis] = 0.05 * rng.standard_normal()
            p = frac @ lattice
            if all(_min_image_dist(p - q, lattice) >= min_dist for q in pos):
                pos.append(p)
                break
        else:
            raise RuntimeError("could not place atoms; use a larger cell")
    return lattice, np.asarray(pos)


def _min_image_dist(d: np.ndarray, lattice: np.ndarray) -> float:
    shifts = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    return float(np.min(np.linalg.norm(d + shifts @ lattice, axis=1)))


def _coeff(seed: int, *tag: int) -> float:
    return float(np.random.default_rng([seed, *tag]).standard_normal())


def _shell_table(types: Sequence[int]) -> list[tuple[int, int, slice]]:
    """(l, shell index, rows in the atom's block) per shell."""
    return [(l, s, sl) for s, (l, sl) in enumerate(zip(types, shell_slices(types), strict=True))]


def _pair_block(
    za: int,
    zb: int,
    ta: Sequence[int],
    tb: Sequence[int],
    vec: torch.Tensor,
    env: torch.Tensor,
    seed: int,
    scale: float,
    decay: float,
) -> torch.Tensor:
    """(E, n_a, n_b) e3nn-ordered off-site blocks for edges from species za to zb."""
    r = vec.norm(dim=-1).clamp_min(1e-9)
    out = torch.zeros(
        len(vec), num_orbitals(ta), num_orbitals(tb), dtype=torch.float64
    )
    for l1, s1, o1 in _shell_table(ta):
        for l2, s2, o2 in _shell_table(tb):
            parts = []
            for L in range(abs(l1 - l2), l1 + l2 + 1):
                if (L - l1 - l2) % 2:  # Y_L has parity (-1)^L; the block needs (-1)^(l1+l2)
                    parts.append(torch.zeros(len(vec), 2 * L + 1, dtype=torch.float64))
                    continue
                c = _coeff(seed, za, zb, s1, s2, L)
                radial = scale * c * torch.exp(-r / (decay * (1.0 + 0.2 * L))) * env
                y = o3.spherical_harmonics(L, to_e3nn_frame(vec), normalize=True)
                parts.append(radial[:, None] * y)
            x = torch.cat(parts, dim=-1)
            out[:, o1, o2] = irreps_to_block(x, l1, l2)
    return out


def toy_structure(
    numbers: Sequence[int],
    lattice: np.ndarray,
    positions: np.ndarray,
    basis: Mapping[int, Sequence[int]] | None = None,
    cutoff: float = 5.0,
    seed: int = 0,
    fermi_level: float = 0.0,
    name: str = "toy",
) -> Structure:
    """A spinless :class:`Structure` whose blocks follow the toy two-centre model.

    Args:
        numbers: atomic numbers.
        lattice: (3, 3) lattice vectors as rows, Angstrom.
        positions: (N, 3) cartesian positions, Angstrom.
        basis: ``{Z: orbital_types}``; default :data:`DEFAULT_BASIS`.
        cutoff: pair cutoff radius in Angstrom (edges as a neighbour list gives them).
        seed: selects the model's coefficients; the same seed is the same "material".
        fermi_level: stored in info.json, eV.
    """
    basis = dict(DEFAULT_BASIS if basis is None else basis)
    numbers = np.asarray(numbers, dtype=np.int64)
    types = [list(basis[int(z)]) for z in numbers]
    lattice = np.asarray(lattice, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    edges = edges_from_cutoff(positions, lattice, cutoff)
    vec = torch.as_tensor(positions[edges[:, 4]] + edges[:, :3] @ lattice - positions[edges[:, 3]])
    dist = vec.norm(dim=-1)
    onsite = dist < 1e-8
    # invariant environment: a smooth coordination number, so blocks depend non-linearly on
    # more than their own pair (as real ones do)
    cn = torch.zeros(len(numbers), dtype=torch.float64)
    cn.index_add_(0, torch.as_tensor(edges[:, 3]), torch.where(onsite, 0.0, torch.exp(-dist)))
    ii, jj = torch.as_tensor(edges[:, 3]), torch.as_tensor(edges[:, 4])
    env = 1.0 + 0.3 * torch.tanh(cn[ii] + cn[jj] - 1.0)

    ham: dict = {}
    ovl: dict = {}
    keys = [tuple(int(v) for v in row) for row in edges]
    for za in set(numbers.tolist()):
        for zb in set(numbers.tolist()):
            sel = np.nonzero(
                (numbers[edges[:, 3]] == za) & (numbers[edges[:, 4]] == zb) & ~onsite.numpy()
            )[0]
            if len(sel) == 0:
                continue
            ta, tb, v, e = basis[za], basis[zb], vec[sel], env[sel]
            # symmetrise f(a, b, d) with f(b, a, -d)^T so that H_ji(-R) = H_ij(R)^T exactly
            h = 0.5 * (
                _pair_block(za, zb, ta, tb, v, e, seed, 3.0, 1.2)
                + _pair_block(zb, za, tb, ta, -v, e, seed, 3.0, 1.2).transpose(1, 2)
            )
            s = 0.5 * (
                _pair_block(za, zb, ta, tb, v, e, seed + 7, 0.1, 0.8)
                + _pair_block(zb, za, tb, ta, -v, e, seed + 7, 0.1, 0.8).transpose(1, 2)
            )
            for n, k in enumerate(sel.tolist()):
                ham[keys[k]] = e3nn_to_openmx_block(h[n].numpy(), ta, tb)
                ovl[keys[k]] = e3nn_to_openmx_block(s[n].numpy(), ta, tb)
    for a, z in enumerate(numbers.tolist()):
        ham[(0, 0, 0, a, a)] = _onsite_block(a, z, basis[z], edges, vec, seed)
        ovl[(0, 0, 0, a, a)] = np.eye(len(ham[(0, 0, 0, a, a)]))
    return Structure(
        numbers=numbers,
        lattice=lattice,
        positions=positions,
        orbital_types=types,
        hamiltonians=ham,
        overlaps=ovl,
        spinful=False,
        fermi_level=fermi_level,
        name=name,
    )


def _onsite_block(
    atom: int, z: int, types: Sequence[int], edges: np.ndarray, vec: torch.Tensor, seed: int
) -> np.ndarray:
    """Shell energies plus a crystal field sum_k g(r_k) Y_L(d_k) (even L), symmetrised."""
    n = num_orbitals(types)
    blk = torch.zeros(n, n, dtype=torch.float64)
    shells = _shell_table(types)
    for l, s, o in shells:
        blk[o, o] += (-8.0 + 4.0 * l + _coeff(seed, z, s)) * torch.eye(shell_dim(l))
    sel = (edges[:, 3] == atom) & (np.linalg.norm(vec.numpy(), axis=1) > 1e-8)
    v = vec[torch.as_tensor(sel)]
    if len(v):
        r = v.norm(dim=-1)
        for l1, s1, o1 in shells:
            for l2, s2, o2 in shells:
                parts = []
                for L in range(abs(l1 - l2), l1 + l2 + 1):
                    if (L - l1 - l2) % 2:
                        parts.append(torch.zeros(2 * L + 1, dtype=torch.float64))
                        continue
                    g = 0.5 * _coeff(seed + 3, z, s1, s2, L) * torch.exp(-r / 1.5)
                    y = o3.spherical_harmonics(L, to_e3nn_frame(v), normalize=True)
                    parts.append((g[:, None] * y).sum(0))
                blk[o1, o2] += irreps_to_block(
                    torch.cat(parts), l1, l2
                )
    blk = 0.5 * (blk + blk.T)
    return e3nn_to_openmx_block(blk.numpy(), types, types)


def toy_dataset(
    num: int, numbers: Sequence[int] = (6, 6, 6, 6), seed: int = 0, **kwargs
) -> list[Structure]:
    """``num`` random crystals of the same toy material (same ``seed`` model), named s000.."""
    out = []
    for k in range(num):
        lat, pos = random_crystal(numbers, seed=1000 * seed + k)
        out.append(toy_structure(numbers, lat, pos, seed=seed, name=f"s{k:03d}", **kwargs))
    return out
