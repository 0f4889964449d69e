"""Output head: irreps -> blocks, spinless and SOC (SU(2)), hermiticity, masks."""

from __future__ import annotations

import pytest
import torch

from tgkit.irreps import basis_rotation
from tgkit.nn import default_dtype
from tgkit.nn.heads import HamiltonianHead, block_mask, element_mask

from .conftest import TOL, irreps_rotation, rotations


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
def test_head_equivariant(spinful, basis):
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        head = HamiltonianHead(HamiltonianHead.output_irreps(basis, spinful), basis, spinful)
    x = torch.randn(6, head.irreps_in.dim, dtype=torch.float64)
    rev = torch.tensor([1, 0, 2, 4, 3, 5])
    h = head(x, rev)
    for rot in rotations():
        d = basis_rotation(basis, rot, spinful)
        d = d if spinful else d.to(h.dtype)
        h_r = head(x @ irreps_rotation(head.irreps_in, rot).T, rev)
        assert (h_r - d @ h @ d.conj().T).abs().max() <= TOL


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
def test_to_block_is_orthonormal(spinful, basis):
    """The direct sum -> product map is an isometry per (real/imaginary) half."""
    with default_dtype(torch.float64):
        head = HamiltonianHead("1x0e", basis, spinful)
    m = head.to_block
    assert m.shape[1] == (4 if spinful else 1) * basis.dim**2
    assert torch.allclose(m @ m.T, torch.eye(m.shape[0], dtype=m.dtype), atol=1e-12)
    assert m.shape[0] == m.shape[1]  # every element of every block is reachable


def test_symmetrisation_is_hermitian(basis):
    with default_dtype(torch.float64):
        head = HamiltonianHead("4x0e+2x1o+2x1e+2x2e", basis, True)
    x = torch.randn(4, head.irreps_in.dim, dtype=torch.float64)
    rev = torch.tensor([1, 0, 2, 3])
    h = head(x, rev)
    assert (h - h[rev].transpose(-1, -2).conj()).abs().max() <= 1e-14
    assert (h[2] - h[2].conj().T).abs().max() <= 1e-14  # self-loop: hermitian on-site


def test_masks(basis):
    s_h, s_c = basis.species_index(1), basis.species_index(6)
    si, sj = torch.tensor([s_h, s_c]), torch.tensor([s_c, s_c])
    m = element_mask(basis, si, sj)
    assert m[0].sum() == 5 * 13 and m[1].all()
    ms = element_mask(basis, si, sj, spinful=True)
    assert ms.shape == (2, 26, 26) and ms[0].sum() == 4 * 5 * 13
    bm = block_mask(basis, si, sj)
    assert bm.shape == (2, len(basis.shells) ** 2) and bm[0].sum() == 3 * 5 and bm[1].all()


def test_spinless_blocks_in_one_matmul_equal_decoder_then_map(basis):
    """Spinless, decode_blocks folds the decoder and the map to blocks into one matrix: the
    same blocks and the same gradients as the two steps."""
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        head = HamiltonianHead("4x0e+2x1o+2x1e+2x2e+1x3o+1x4e", basis, False)
    for p in head.parameters():
        torch.nn.init.normal_(p)
    x = torch.randn(5, head.irreps_in.dim, dtype=torch.float64)
    ref, out = head._blocks(head.decode(x)), head.decode_blocks(x)
    assert out.shape == (5, basis.dim, basis.dim) and ref.abs().max() > 0.1
    torch.testing.assert_close(out, ref, atol=1e-13, rtol=0)
    g = torch.randn_like(ref)
    grads = [torch.autograd.grad((y * g).sum(), list(head.parameters()))
             for y in (head._blocks(head.decode(x)), head.decode_blocks(x))]
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
