"""Orbital and irreps conventions: the only module that converts between them.

Conventions, all in one place:

* Files (DeepH format) store blocks in **OpenMX order** within each shell:
  p = (px, py, pz), d = (z2, x2-y2, xy, xz, yz), f = 7 functions (see ``OPENMX_TO_E3NN``).
* Inside tgkit, blocks are in **e3nn order** (real spherical harmonics m = -l..l) *in the
  permuted frame* where a cartesian vector (x, y, z) enters e3nn as (y, z, x). In that frame
  p = (y, z, x) and d = (xy, yz, z2, xz, x2-y2), with no sign changes from OpenMX.
* A shell pair (l1, l2) block is the direct product l1 (x) l2 = sum_L L, L = |l1-l2|..l1+l2,
  parity (-1)^(l1+l2). We use the *orthonormal* change of basis
  ``x_L = sqrt(2L+1) sum C[m1,m2,M] H[m1,m2]`` and ``H = sum_L sqrt(2L+1) C x_L`` with e3nn's
  ``wigner_3j`` C, so that ||H||_F^2 = sum_L ||x_L||^2 (the trace label of Theorem 1).
* Spinful blocks are spin-major ``[[uu, ud], [du, dd]]``; each spin half uses the orbital order
  above.
* **sisl** (and SIESTA, whose real harmonics sisl uses) labels orbitals by (l, m), m = -l..l:
  the e3nn order of m, with the Condon-Shortley sign (-1)^m. sisl orbital m of a shell is
  ``(-1)^m`` times OpenMX function ``OPENMX_TO_E3NN[l][m + l]``: p = (-py, pz, -px),
  d = (xy, -yz, z2, -xz, x2-y2) (see ``openmx_to_sisl_index``; checked against sisl's own
  spherical harmonics in tests/physics/test_sisl.py).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from e3nn import o3

# e3nn row k of a shell takes OpenMX row OPENMX_TO_E3NN[l][k] (pure permutations, no signs).
OPENMX_TO_E3NN: dict[int, tuple[int, ...]] = {
    0: (0,),
    1: (1, 2, 0),
    2: (2, 4, 0, 3, 1),
    3: (6, 4, 2, 0, 1, 3, 5),
}
# Cartesian (x, y, z) -> e3nn input order (y, z, x).
CART_TO_E3NN = (1, 2, 0)
LMAX_ORBITAL = max(OPENMX_TO_E3NN)
SHELL_LETTERS = "spdfgh"


def to_e3nn_frame(vec: torch.Tensor) -> torch.Tensor:
    """Permute cartesian vectors ``(..., 3)`` into e3nn's input order (y, z, x)."""
    return vec[..., list(CART_TO_E3NN)]


def rotation_to_e3nn_frame(rot: np.ndarray | torch.Tensor):
    """A cartesian 3x3 rotation expressed in e3nn's (y, z, x) frame: P R P^T."""
    p = list(CART_TO_E3NN)
    return rot[p][:, p]


def irreps_from_l1l2(l1: int, l2: int) -> o3.Irreps:
    """Irreps of the direct product l1 (x) l2: L = |l1-l2|..l1+l2 with parity (-1)^(l1+l2)."""
    p = (-1) ** (l1 + l2)
    return o3.Irreps([(1, (L, p)) for L in range(abs(l1 - l2), l1 + l2 + 1)])


@functools.cache
def _cg_stack(l1: int, l2: int) -> torch.Tensor:
    """(2l1+1, 2l2+1, dim(l1 x l2)) float64: orthonormal map irreps -> block."""
    mats = [
        o3.wigner_3j(l1, l2, L, dtype=torch.float64) * (2 * L + 1) ** 0.5
        for L in range(abs(l1 - l2), l1 + l2 + 1)
    ]
    return torch.cat(mats, dim=-1)


def cg_block_basis(l1: int, l2: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal tensor ``C`` with ``H[m1, m2] = sum_k C[m1, m2, k] x[k]``.

    ``x`` is laid out as ``irreps_from_l1l2(l1, l2)``. ``C`` reshaped to a square matrix is
    orthogonal, so ``x = einsum('abk,ab->k', C, H)`` inverts it exactly.
    """
    return _cg_stack(l1, l2).to(dtype)


def block_to_irreps(block: torch.Tensor, l1: int, l2: int) -> torch.Tensor:
    """``(..., 2l1+1, 2l2+1)`` block in e3nn order -> ``(..., irreps_from_l1l2(l1,l2).dim)``."""
    return torch.einsum("abk,...ab->...k", cg_block_basis(l1, l2, block.dtype), block)


def irreps_to_block(x: torch.Tensor, l1: int, l2: int) -> torch.Tensor:
    """``(..., irreps_from_l1l2(l1,l2).dim)`` -> ``(..., 2l1+1, 2l2+1)`` block in e3nn order."""
    return torch.einsum("abk,...k->...ab", cg_block_basis(l1, l2, x.dtype), x)


def shell_dim(l: int) -> int:
    """Number of orbitals (real harmonics m = -l..l) in a shell of angular momentum l."""
    return 2 * l + 1


def shell_dims(orbital_types: Sequence[int]) -> list[int]:
    """(2l+1) per shell of one atom, in its file order."""
    return [shell_dim(l) for l in orbital_types]


def num_orbitals(orbital_types: Sequence[int]) -> int:
    """Orbitals of one atom (spinless): the sum of :func:`shell_dims`."""
    return sum(shell_dims(orbital_types))


def shell_slices(orbital_types: Sequence[int]) -> list[slice]:
    """Per shell, its rows in the atom's block (the same in OpenMX and e3nn order: both only
    permute inside a shell). Spinful blocks: add ``num_orbitals`` for the spin-down half."""
    offsets = np.cumsum([0, *shell_dims(orbital_types)])
    return [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def openmx_to_e3nn_index(orbital_types: Sequence[int]) -> np.ndarray:
    """Permutation of one atom's orbitals: e3nn-ordered row k = OpenMX row ``idx[k]``."""
    idx = []
    for l, sl in zip(orbital_types, shell_slices(orbital_types), strict=True):
        if l not in OPENMX_TO_E3NN:
            raise ValueError(f"orbital l={l} is not supported (lmax {LMAX_ORBITAL})")
        idx.extend(sl.start + p for p in OPENMX_TO_E3NN[l])
    return np.asarray(idx, dtype=np.int64)


def openmx_to_e3nn_block(block: np.ndarray, types_i: Sequence[int], types_j: Sequence[int]):
    """Reorder a (n_i, n_j) OpenMX block to e3nn order: U_i H U_j^T (a pure permutation)."""
    ii, jj = openmx_to_e3nn_index(types_i), openmx_to_e3nn_index(types_j)
    return block[np.ix_(ii, jj)]


def e3nn_to_openmx_block(block: np.ndarray, types_i: Sequence[int], types_j: Sequence[int]):
    """Inverse of :func:`openmx_to_e3nn_block`."""
    ii = np.argsort(openmx_to_e3nn_index(types_i))
    jj = np.argsort(openmx_to_e3nn_index(types_j))
    return block[np.ix_(ii, jj)]


def sisl_sign(m: int) -> int:
    """Sign of sisl's real harmonic (l, m) against the OpenMX/e3nn function: (-1)^m."""
    return -1 if m % 2 else 1


def openmx_to_sisl_index(orbital_types: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """One atom's orbitals in sisl's order: orbital k = ``sign[k]`` * OpenMX orbital ``idx[k]``.

    Within a shell sisl orders m = -l..l (e3nn's order) and its real harmonics carry the
    Condon-Shortley phase (-1)^m relative to OpenMX's (which have none).

    Returns:
        ``(idx, sign)``: (n,) int64 and (n,) float64 (+-1).
    """
    idx = openmx_to_e3nn_index(orbital_types)
    sign = [float(sisl_sign(m)) for l in orbital_types for m in range(-l, l + 1)]
    return idx, np.asarray(sign)


def sisl_orbital_lm(orbital_types: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(l, m, zeta)`` of one atom's orbitals in sisl's order; zeta counts shells of equal l."""
    seen: dict[int, int] = {}
    out = []
    for l in orbital_types:
        seen[l] = seen.get(l, 0) + 1
        out.extend((l, m, seen[l]) for m in range(-l, l + 1))
    return out


def openmx_to_sisl_block(block: np.ndarray, types_i: Sequence[int], types_j: Sequence[int]):
    """(n_i, n_j) block, OpenMX order -> sisl order and signs: ``s_a H[idx_a, idx_b] s_b``."""
    ii, si = openmx_to_sisl_index(types_i)
    jj, sj = openmx_to_sisl_index(types_j)
    return si[:, None] * block[np.ix_(ii, jj)] * sj[None, :]


def sisl_to_openmx_block(block: np.ndarray, types_i: Sequence[int], types_j: Sequence[int]):
    """Inverse of :func:`openmx_to_sisl_block`."""
    ii, si = openmx_to_sisl_index(types_i)
    jj, sj = openmx_to_sisl_index(types_j)
    b = si[:, None] * block * sj[None, :]
    return b[np.ix_(np.argsort(ii), np.argsort(jj))]


def basis_conflict(known: Mapping[int, Sequence[int]], z: int, types: Sequence[int]
                   ) -> tuple[int, ...] | None:
    """The rule "one orbital basis per element": the basis ``known`` already holds for element
    ``z`` when it differs from ``types`` (the caller raises, naming both), else None."""
    have = known.get(int(z))
    return None if have is None or tuple(have) == tuple(types) else tuple(have)


@dataclass(frozen=True)
class Shell:
    """One radial shell of the universal basis: angular momentum ``l``, ``n``-th of that l."""

    l: int
    n: int

    @property
    def dim(self) -> int:
        return shell_dim(self.l)

    @property
    def label(self) -> str:
        """``s1``, ``p2``: the letter of l and the shell's number among those of that l."""
        return f"{SHELL_LETTERS[self.l]}{self.n + 1}"


class OrbitalBasis:
    """The orbital bases of a dataset's species, embedded in one universal basis.

    Each species has its own shells (``orbital_types.dat``, e.g. C ``0 0 1 1 2``). The
    universal basis holds, for every l, as many shells as the species that has most of them,
    ordered by l then n (C + Mo ``0 0 0 1 1 2 2`` -> s s s p p d d, B = 19). A species' n-th
    shell of degree l sits in universal shell (l, n). Every block of every edge is then a
    (B, B) matrix in e3nn order plus a mask, which makes batching of mixed bases uniform.

    Args:
        orbital_types: ``{Z: [l, l, ...]}`` in the species' file order.
    """

    def __init__(self, orbital_types: Mapping[int, Sequence[int]]) -> None:
        if not orbital_types:
            raise ValueError("an orbital basis needs at least one species")
        self.orbital_types = {int(z): tuple(int(l) for l in ls) for z, ls in orbital_types.items()}
        self.species = tuple(sorted(self.orbital_types))
        counts: dict[int, int] = {}
        for ls in self.orbital_types.values():
            for l in set(ls):
                counts[l] = max(counts.get(l, 0), ls.count(l))
        self.shells = tuple(Shell(l, n) for l in sorted(counts) for n in range(counts[l]))
        offsets = np.cumsum([0] + [s.dim for s in self.shells])
        self.shell_offset = {s: int(o) for s, o in zip(self.shells, offsets[:-1], strict=True)}
        self.dim = int(offsets[-1])
        self._index = {z: self._universal_index(ls) for z, ls in self.orbital_types.items()}

    @classmethod
    def union(cls, bases: Iterable[Mapping[int, Sequence[int]]]) -> OrbitalBasis:
        """Merge per-structure ``{Z: types}`` maps; a Z with two different bases is an error."""
        merged: dict[int, tuple[int, ...]] = {}
        for b in bases:
            for z, ls in b.items():
                if (have := basis_conflict(merged, z, ls)) is not None:
                    raise ValueError(f"element Z={z} has two orbital bases: {have} and {tuple(ls)}")
                merged.setdefault(int(z), tuple(ls))
        return cls(merged)

    def _universal_index(self, types: Sequence[int]) -> np.ndarray:
        seen: dict[int, int] = {}
        idx: list[int] = []
        perm = openmx_to_e3nn_index(types)  # e3nn row k <- OpenMX row perm[k]
        # position of each e3nn-ordered orbital in the universal basis
        pos_e3nn: list[int] = []
        for l in types:
            n = seen.get(l, 0)
            seen[l] = n + 1
            start = self.shell_offset[Shell(l, n)]
            pos_e3nn.extend(range(start, start + shell_dim(l)))
        # OpenMX row perm[k] goes to universal position pos_e3nn[k]
        idx = [0] * len(perm)
        for k, p in enumerate(perm):
            idx[p] = pos_e3nn[k]
        return np.asarray(idx, dtype=np.int64)

    def index(self, z: int) -> np.ndarray:
        """(n_Z,) universal position of each of species Z's orbitals, taken in OpenMX order."""
        return self._index[int(z)]

    def species_index(self, z: int) -> int:
        return self.species.index(int(z))

    def orbital_mask(self) -> torch.Tensor:
        """(num_species, B) bool: which universal orbitals each species has."""
        mask = torch.zeros(len(self.species), self.dim, dtype=torch.bool)
        for s, z in enumerate(self.species):
            mask[s, torch.as_tensor(self._index[z])] = True
        return mask

    def shell_pairs(self) -> list[tuple[Shell, Shell]]:
        """All (shell_i, shell_j) pairs of the universal basis, row-major."""
        return [(a, b) for a in self.shells for b in self.shells]

    # Labels: the one scheme for metrics, run outputs, figures and the CLI.

    def orbital_labels(self) -> list[str]:
        """(B,) label of each universal orbital, e3nn m order: ``s1``, ``p1:-1``, ``p1:+0``..."""
        return [sh.label + (f":{m:+d}" if sh.l else "")
                for sh in self.shells for m in range(-sh.l, sh.l + 1)]

    @staticmethod
    def block_label(z_i: int, z_j: int, shell_i: Shell, shell_j: Shell) -> str:
        """Basic block type label: element pair and shell pair, e.g. ``C-C s1-p2``."""
        from ase.data import chemical_symbols

        return (f"{chemical_symbols[int(z_i)]}-{chemical_symbols[int(z_j)]} "
                f"{shell_i.label}-{shell_j.label}")

    def to_dict(self) -> dict[str, list[int]]:
        return {str(z): list(ls) for z, ls in self.orbital_types.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Sequence[int]]) -> OrbitalBasis:
        return cls({int(z): ls for z, ls in d.items()})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrbitalBasis) and self.orbital_types == other.orbital_types

    def __repr__(self) -> str:
        return f"OrbitalBasis({self.orbital_types}, dim={self.dim})"


def spinful_index(index: np.ndarray, dim: int) -> np.ndarray:
    """Spin-major extension of an orbital index map: (2n,) into a (2*dim,) universal basis."""
    return np.concatenate([index, index + dim])


def wigner_D(l: int, rot: np.ndarray | torch.Tensor, parity: int = 1) -> torch.Tensor:
    """Exact float64 Wigner-D of degree l for a *cartesian* 3x3 rotation, in e3nn's frame.

    e3nn's ``D_from_matrix`` is only ~1e-7 accurate (single-precision J matrices). Here D is
    the least-squares solution of Y_l(Q x_k) = D Y_l(x_k) on well-spread points, with
    Q = P R P^T the rotation in e3nn's frame; exact to ~1e-14. Improper rotations (det -1)
    act as ``parity * D(-R)``.
    """
    rot = torch.as_tensor(rot, dtype=torch.float64)
    sign = 1.0
    if torch.det(rot) < 0:
        rot, sign = -rot, float(parity)
    q = rotation_to_e3nn_frame(rot)
    pts = _sphere_points(l)
    y = o3.spherical_harmonics(l, pts, normalize=False)
    y_rot = o3.spherical_harmonics(l, pts @ q.T, normalize=False)
    d = torch.linalg.lstsq(y, y_rot).solution.T
    return sign * d


def wigner_D_chain(rot: torch.Tensor, lmax: int, edges_last: bool = False
                   ) -> list[torch.Tensor]:
    """Exact Wigner-D of degrees 0..lmax for a batch of proper rotations in **e3nn's frame**.

    ``D^1 = rot`` (e3nn's l = 1 harmonics are its input coordinates), and each higher degree
    follows from the Clebsch-Gordan chain ``D^l = C^T (D^(l-1) x D^1) C`` with the isometry
    ``C = sqrt(2l+1) wigner_3j(l-1, 1, l)``: exact to round-off in float64 (unlike e3nn's
    ``D_from_matrix``) and cheap enough to run per edge.

    Shapes: ``rot (E, 3, 3)`` -> ``[(E, 2l+1, 2l+1) for l in 0..lmax]``, in ``rot``'s dtype;
    with ``edges_last``, ``[(2l+1, 2l+1, E)]`` (contiguous). That layout turns the chain's
    per-edge products into elementwise products over rows of E and two plain matmuls per
    degree, ~4x faster on a CPU than the batched tiny matmuls of the first layout
    (``bench/bench_edges_last.py``).
    """
    e = rot.shape[0]
    r = rot.permute(1, 2, 0).contiguous() if edges_last else rot   # (3, 3, E) or (E, 3, 3)
    ds = [rot.new_ones((1, 1, e) if edges_last else (e, 1, 1)), r][: lmax + 1]
    for l in range(2, lmax + 1):
        c = _cg_chain(l).to(dtype=rot.dtype, device=rot.device)
        prev, n = ds[-1], 3 * (2 * l - 1)
        if edges_last:
            kron = (prev[:, None, :, None, :] * r[None, :, None, :, :]).reshape(n, n * e)
            left = (c.T @ kron).view(2 * l + 1, n, e)   # C^T K, edges still last
            ds.append(torch.matmul(c.T, left))          # per row a of C^T K: C^T (C^T K)[a]
        else:
            kron = (prev[:, :, None, :, None] * r[:, None, :, None, :]).reshape(e, n, n)
            ds.append(c.T @ kron @ c)
    return ds


@functools.cache
def _cg_chain(l: int) -> torch.Tensor:
    """((2l-1) * 3, 2l+1) float64 isometry from (l-1) x 1 onto l."""
    return (o3.wigner_3j(l - 1, 1, l, dtype=torch.float64) * (2 * l + 1) ** 0.5).reshape(
        3 * (2 * l - 1), 2 * l + 1)


@functools.cache
def _sphere_points(l: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1234 + l)
    return torch.randn(8 * l + 8, 3, generator=gen, dtype=torch.float64)


def su2_matrix(rot: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(2, 2) complex128 spin-1/2 rotation U(R) = exp(-i theta/2 n.sigma), cartesian axes.

    Spin is axial, so an improper rotation acts on spin as its proper part -R. The overall
    sign of U is a gauge (U H U^dagger does not see it).
    """
    r = torch.as_tensor(rot, dtype=torch.float64)
    if torch.det(r) < 0:
        r = -r
    # axis-angle from the rotation matrix, robust near theta = pi through the quaternion
    w = 0.5 * torch.sqrt(torch.clamp(1 + torch.trace(r), min=0.0))
    x = 0.5 * torch.sqrt(torch.clamp(1 + r[0, 0] - r[1, 1] - r[2, 2], min=0.0))
    y = 0.5 * torch.sqrt(torch.clamp(1 - r[0, 0] + r[1, 1] - r[2, 2], min=0.0))
    z = 0.5 * torch.sqrt(torch.clamp(1 - r[0, 0] - r[1, 1] + r[2, 2], min=0.0))
    x = torch.copysign(x, r[2, 1] - r[1, 2])
    y = torch.copysign(y, r[0, 2] - r[2, 0])
    z = torch.copysign(z, r[1, 0] - r[0, 1])
    # U = w I - i (x sx + y sy + z sz) for the unit quaternion (w, x, y, z)
    return torch.tensor(
        [[complex(w, -z), complex(-y, -x)], [complex(y, -x), complex(w, z)]],
        dtype=torch.complex128,
    )


def orbital_rotation(types: Sequence[int], rot: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(n, n) float64 block-diagonal D for one atom's shells, **e3nn order**, exact."""
    return torch.block_diag(*[wigner_D(l, rot, parity=(-1) ** l) for l in types])


def basis_rotation(
    basis: OrbitalBasis, rot: np.ndarray | torch.Tensor, spinful: bool = False
) -> torch.Tensor:
    """D(R) of the universal basis, e3nn order: a block of H rotates as D H D^dagger.

    Returns (B, B) float64, or (2B, 2B) complex128 ``kron(U(R), D(R))`` when ``spinful``
    (spin-major layout, so the spin factor is the outer one).
    """
    d = torch.block_diag(*[wigner_D(s.l, rot, parity=(-1) ** s.l) for s in basis.shells])
    if not spinful:
        return d
    return torch.kron(su2_matrix(rot), d.to(torch.complex128))


def pyscf_to_openmx_index(orbital_types: Sequence[int]) -> np.ndarray:
    """Permutation of one atom's PySCF spherical AOs into OpenMX order.

    OpenMX row k = PySCF row ``idx[k]``. PySCF orders p as (x, y, z) (OpenMX's order) and
    l >= 2 as real solid harmonics m = -l..l, which is e3nn's order (d = xy, yz, z2, xz,
    x2-y2). Shells keep their order (PySCF lists a shell's contractions one after another).
    """
    idx = []
    for l, sl in zip(orbital_types, shell_slices(orbital_types), strict=True):
        if l == 1 or l == 0:
            idx.extend(range(sl.start, sl.stop))
        else:
            inv = np.argsort(OPENMX_TO_E3NN[l])  # OpenMX row q = e3nn row inv[q]
            idx.extend(sl.start + int(p) for p in inv)
    return np.asarray(idx, dtype=np.int64)


# Names of the OpenMX-ordered orbitals of one shell (for labels in figures and tables).
OPENMX_ORBITAL_NAMES: dict[int, tuple[str, ...]] = {
    0: ("s",),
    1: ("px", "py", "pz"),
    2: ("dz2", "dx2-y2", "dxy", "dxz", "dyz"),
    3: tuple(f"f{m}" for m in range(7)),
}


def orbital_labels(orbital_types: Sequence[int]) -> list[str]:
    """Labels of one atom's orbitals in file (OpenMX) order, e.g. ``1s 2s 1px ... 1dyz``.

    Shells of the same l are numbered from 1 in their order of appearance.
    """
    seen: dict[int, int] = {}
    out = []
    for l in orbital_types:
        seen[l] = seen.get(l, 0) + 1
        out.extend(f"{seen[l]}{name}" for name in OPENMX_ORBITAL_NAMES[l])
    return out


def atom_shells(orbital_types: Sequence[int]) -> list[Shell]:
    """One atom's shells in file order as universal :class:`Shell` s (n counts shells of l)."""
    seen: dict[int, int] = {}
    out = []
    for l in orbital_types:
        out.append(Shell(l, seen.get(l, 0)))
        seen[l] = seen.get(l, 0) + 1
    return out


def shell_labels(orbital_types: Sequence[int]) -> list[str]:
    """Labels of one atom's shells in file order, e.g. ``s1 s2 p1 p2 d1`` (:attr:`Shell.label`)."""
    return [sh.label for sh in atom_shells(orbital_types)]


# Pauli matrices, cartesian (x, y, z) order; spin is quantized along cartesian z.
PAULI = np.array([[[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


@functools.cache
def angular_momentum(l: int) -> np.ndarray:
    """(3, 2l+1, 2l+1) hermitian L_x, L_y, L_z (hbar = 1) on the real harmonics, e3nn order.

    Defined from :func:`wigner_D` so that D(exp(theta [n]_x)) = exp(-i theta n.L) exactly:
    L_a = i log(D(R_a(theta))) / theta at theta = 0.5 (principal matrix log, ~1e-13).
    """
    import scipy.linalg

    theta = 0.5
    out = []
    for axis in range(3):
        k = np.zeros((3, 3))
        a, b = [(1, 2), (2, 0), (0, 1)][axis]
        k[b, a], k[a, b] = 1.0, -1.0  # generator of a right-handed rotation about `axis`
        rot = scipy.linalg.expm(theta * k)
        d = wigner_D(l, rot).numpy()
        out.append(1j * scipy.linalg.logm(d) / theta)
    L = np.stack(out)
    return 0.5 * (L + L.conj().transpose(0, 2, 1))
