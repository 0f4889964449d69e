"""Output head: per-edge irreps -> Hamiltonian blocks of the universal basis, spinless or SOC.

Every shell pair (a, b) of :class:`tgkit.irreps.OrbitalBasis` gets its own direct-sum channels
(DeepH-E3's ``target_blocks_type=all`` with channels shared across element pairs), which the
orthonormal CG maps of :mod:`tgkit.irreps` turn into the (2l_a+1, 2l_b+1) block.

SOC: a spin-major block is ``sum_mu sigma_mu (x) A_mu`` with complex ``A_mu = Re + i Im``.
``A_0`` carries the irreps of l_a (x) l_b; the spin vector ``(A_x, A_y, A_z)`` carries, for every
L of l_a (x) l_b, the irreps of L (x) 1 with the parity of L (spin is axial). With
``U sigma_k U^dagger = sum_j R_jk sigma_j`` this makes the block rotate as
``(U (x) D) H (U (x) D)^dagger`` (SU(2) equivariance, tested).
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from tgkit.irreps import OrbitalBasis, cg_block_basis, irreps_from_l1l2
from tgkit.nn.linear import TypedLinear

# e3nn's l=1 component order is (y, z, x): cartesian component c sits at _CART_IN_E3NN[c]
_CART_IN_E3NN = (2, 0, 1)


def _spin_vector_irreps(l1: int, l2: int) -> o3.Irreps:
    """Irreps of sum_L L (x) 1, every J with the parity (-1)^(l1+l2) of L."""
    p = (-1) ** (l1 + l2)
    return o3.Irreps([(1, (J, p)) for L in range(abs(l1 - l2), l1 + l2 + 1)
                      for J in range(abs(L - 1), L + 2)])


def _spin_vector_basis(l1: int, l2: int) -> torch.Tensor:
    """(2l1+1, 2l2+1, 3, dim) float64 orthonormal map spin-vector irreps -> (A_y, A_z, A_x)."""
    c = cg_block_basis(l1, l2)  # (m1, m2, (L, M))
    cols, off = [], 0
    for L in range(abs(l1 - l2), l1 + l2 + 1):
        t = cg_block_basis(L, 1)  # (M, k, J-set): same numbers whatever the parity label
        cols.append(torch.einsum("abM,Mkj->abkj", c[..., off:off + 2 * L + 1], t))
        off += 2 * L + 1
    return torch.cat(cols, dim=-1)


def _sorted_layout(segments: list[o3.Irreps]) -> tuple[o3.Irreps, list[list[int]]]:
    """Simplified sorted irreps of the concatenated segments, and each segment's positions.

    The linear decoder outputs the simplified irreps (one e3nn instruction per irrep type);
    ``positions[s]`` lists, for segment s in its own order, the columns in that output.
    """
    types = sorted({ir for seg in segments for _, ir in seg})
    count = {ir: 0 for ir in types}
    placed: list[list[tuple[o3.Irrep, int]]] = []
    for seg in segments:
        row = []
        for mul, ir in seg:
            for _ in range(mul):
                row.append((ir, count[ir]))
                count[ir] += 1
        placed.append(row)
    out = o3.Irreps([(count[ir], ir) for ir in types])
    start = dict(zip(types, [s.start for s in out.slices()], strict=True))
    positions = []
    for row in placed:
        cols = []
        for ir, n in row:
            cols.extend(range(start[ir] + n * ir.dim, start[ir] + (n + 1) * ir.dim))
        positions.append(cols)
    return out, positions


def _block_layout(basis: OrbitalBasis, spinful: bool) -> tuple[o3.Irreps, torch.Tensor]:
    """Irreps of one (real or imaginary) half of the head output and its map to the blocks.

    Returns ``(irreps_half, to_block)`` with ``to_block`` of shape (irreps_half.dim, n_mu, B, B)
    float64, n_mu = 1 (spinless) or 4 (A_0, A_x, A_y, A_z).
    """
    b = basis.dim
    segments, maps, places = [], [], []
    for sa, sb in basis.shell_pairs():
        oa, ob = basis.shell_offset[sa], basis.shell_offset[sb]
        segments.append(irreps_from_l1l2(sa.l, sb.l))
        maps.append(cg_block_basis(sa.l, sb.l)[:, :, None, :])  # (ma, mb, 1, dim): A_0
        places.append((oa, ob, sa.dim, sb.dim, 0))
        if spinful:
            segments.append(_spin_vector_irreps(sa.l, sb.l))
            vec = _spin_vector_basis(sa.l, sb.l)[:, :, list(_CART_IN_E3NN), :]
            maps.append(vec)  # (ma, mb, 3 = A_x, A_y, A_z, dim)
            places.append((oa, ob, sa.dim, sb.dim, 1))
    half, positions = _sorted_layout(segments)
    # to_block[k, mu, i, j]: column k of one (real or imaginary) half -> A_mu[i, j]
    n_mu = 4 if spinful else 1
    to_block = torch.zeros(half.dim, n_mu, b, b, dtype=torch.float64)
    for cmap, (oa, ob, da, db, mu0), cols in zip(maps, places, positions, strict=True):
        block = cmap.permute(3, 2, 0, 1)  # (dim, mu, ma, mb)
        to_block[cols, mu0:mu0 + block.shape[1], oa:oa + da, ob:ob + db] = block
    return half, to_block


class HamiltonianHead(nn.Module):
    """Equivariant linear decoder and direct sum -> product conversion, with hermiticity.

    Args:
        irreps_in: irreps of the last edge features.
        basis: the dataset's universal orbital basis.
        spinful: predict complex spin-major (2B, 2B) blocks (SOC).

    Shapes: ``x (E, irreps_in.dim), reverse_edge (E,)`` -> ``(E, B, B)`` real or
    ``(E, 2B, 2B)`` complex. The output satisfies ``H_ji(-R) = H_ij(R)^dagger`` exactly:
    ``H_e = (h_e + h_rev(e)^dagger) / 2``.
    """

    def __init__(self, irreps_in: o3.Irreps | str, basis: OrbitalBasis, spinful: bool) -> None:
        super().__init__()
        self.basis, self.spinful = basis, spinful
        self.irreps_in = o3.Irreps(irreps_in)
        half, to_block = _block_layout(basis, spinful)
        self.register_buffer("to_block", to_block.flatten(1).to(torch.get_default_dtype()))
        self.irreps_half = half
        self.irreps_out = half + half if spinful else half
        self.linear = o3.Linear(self.irreps_in, self.irreps_out)
        self.linear_typed = TypedLinear(self.linear)  # runs self.linear (its parameters)

    @staticmethod
    def output_irreps(basis: OrbitalBasis, spinful: bool) -> o3.Irreps:
        """The irreps the head's linear decoder outputs for ``basis``."""
        half, _ = _block_layout(basis, spinful)
        return half + half if spinful else half

    def forward(self, x: torch.Tensor, reverse_edge: torch.Tensor) -> torch.Tensor:
        h = self.decode_blocks(x)
        return self.hermitian(h, h[reverse_edge])

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The equivariant linear decoder, per edge: ``(E, irreps_in.dim)`` ->
        ``(E, irreps_out.dim)``."""
        return self.linear_typed(x, self.linear)

    def decode_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Per edge, the (not yet hermitian) block: ``(E, irreps_in.dim)`` -> ``(E, B, B)``
        real or ``(E, 2B, 2B)`` complex. The model decodes every edge once and then pairs
        blocks with their reverse edges' chunk by chunk (:meth:`hermitian`).

        Spinless, the decoder and the map to blocks are both linear: their product, the
        decoder applied to the identity times ``to_block``, is one ``(irreps_in.dim, B^2)``
        matrix, so each edge costs one matmul row instead of the decoder's per-type products
        and a second matmul (same blocks to round-off, tested)."""
        if self.spinful:
            return self._blocks(self.decode(x))
        eye = torch.eye(self.irreps_in.dim, dtype=x.dtype, device=x.device)
        b = self.basis.dim
        return (x @ (self.decode(eye) @ self.to_block)).unflatten(-1, (b, b))

    def hermitian(self, h: torch.Tensor, h_reverse: torch.Tensor) -> torch.Tensor:
        """``H_e = (h_e + h_rev(e)^dagger) / 2`` from :meth:`decode_blocks` of edges and of
        their reverse edges."""
        h_rev = h_reverse.transpose(-1, -2)
        return 0.5 * (h + (h_rev.conj() if self.spinful else h_rev))

    def _blocks(self, y: torch.Tensor) -> torch.Tensor:
        b = self.basis.dim
        if not self.spinful:
            return (y @ self.to_block).unflatten(-1, (b, b))
        n = self.irreps_half.dim
        re = (y[:, :n] @ self.to_block).unflatten(-1, (4, b, b))
        im = (y[:, n:] @ self.to_block).unflatten(-1, (4, b, b))
        a0, ax, ay, az = torch.complex(re, im).unbind(1)
        return torch.cat([torch.cat([a0 + az, ax - 1j * ay], -1),
                          torch.cat([ax + 1j * ay, a0 - az], -1)], -2)


def element_mask(basis: OrbitalBasis, species_i: torch.Tensor, species_j: torch.Tensor,
                 spinful: bool = False) -> torch.Tensor:
    """(E, B, B) bool (or (E, 2B, 2B) spin-major): orbitals that exist on both atoms of an edge."""
    om = basis.orbital_mask().to(species_i.device)
    mask = om[species_i][:, :, None] & om[species_j][:, None, :]
    return mask.repeat(1, 2, 2) if spinful else mask


def block_mask(
    basis: OrbitalBasis, species_i: torch.Tensor, species_j: torch.Tensor
) -> torch.Tensor:
    """(E, P) bool: which shell-pair blocks (``basis.shell_pairs()`` order) exist on each edge."""
    has = torch.zeros(len(basis.species), len(basis.shells), dtype=torch.bool)
    om = basis.orbital_mask()
    for k, s in enumerate(basis.shells):
        has[:, k] = om[:, basis.shell_offset[s]]
    has = has.to(species_i.device)
    return (has[species_i][:, :, None] & has[species_j][:, None, :]).flatten(1)
