"""Orbital and irreps conventions, against cases worked by hand (not only round trips)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from tgkit.irreps import (
    OrbitalBasis,
    basis_rotation,
    block_to_irreps,
    e3nn_to_openmx_block,
    irreps_from_l1l2,
    irreps_to_block,
    openmx_to_e3nn_block,
    openmx_to_e3nn_index,
    rotation_to_e3nn_frame,
    su2_matrix,
    to_e3nn_frame,
    wigner_D,
    wigner_D_chain,
)


def test_irreps_from_l1l2_rule():
    assert irreps_from_l1l2(0, 0) == o3.Irreps("0e")
    assert irreps_from_l1l2(1, 1) == o3.Irreps("0e+1e+2e")
    assert irreps_from_l1l2(1, 2) == o3.Irreps("1o+2o+3o")
    assert irreps_from_l1l2(2, 2) == o3.Irreps("0e+1e+2e+3e+4e")
    assert irreps_from_l1l2(0, 3).dim == 7


def test_openmx_p_order_by_hand():
    # OpenMX p = (px, py, pz); e3nn p = (y, z, x)
    blk = np.zeros((3, 3))
    blk[0, 0] = 1.0  # <px|H|px>
    e = openmx_to_e3nn_block(blk, [1], [1])
    assert e[2, 2] == 1.0 and np.count_nonzero(e) == 1
    assert openmx_to_e3nn_index([0, 1]).tolist() == [0, 2, 3, 1]


def _d_openmx(n: np.ndarray) -> np.ndarray:
    """Real d harmonics in OpenMX order (z2, x2-y2, xy, xz, yz), written out by hand."""
    x, y, z = n
    return np.sqrt(5) * np.array(
        [
            (3 * z * z - 1) / 2,
            np.sqrt(3) / 2 * (x * x - y * y),
            np.sqrt(3) * x * y,
            np.sqrt(3) * x * z,
            np.sqrt(3) * y * z,
        ]
    )


def test_openmx_orders_are_e3nn_harmonics_without_signs():
    """A p or d orbital pointing along n, reordered, equals e3nn's Y_l(n) in the (y,z,x) frame."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        n = rng.standard_normal(3)
        n /= np.linalg.norm(n)
        nt = to_e3nn_frame(torch.as_tensor(n))
        y1 = o3.spherical_harmonics(1, nt, normalize=True, normalization="component").numpy()
        p_openmx = np.sqrt(3) * n  # (px, py, pz)
        np.testing.assert_allclose(p_openmx[openmx_to_e3nn_index([1])], y1, atol=1e-12)
        y2 = o3.spherical_harmonics(2, nt, normalize=True, normalization="component").numpy()
        np.testing.assert_allclose(_d_openmx(n)[openmx_to_e3nn_index([2])], y2, atol=1e-12)


def test_sp_block_is_its_own_irrep():
    # 0 (x) 1 = 1: the s-p row is the l=1 vector itself
    row = torch.tensor([[0.3, -1.2, 0.7]], dtype=torch.float64)
    np.testing.assert_allclose(
        block_to_irreps(row, 0, 1).numpy().ravel(), row.numpy().ravel(), atol=1e-14
    )


def test_pp_block_decomposition_by_hand():
    eye = torch.eye(3, dtype=torch.float64)
    x = block_to_irreps(eye, 1, 1)  # identity = pure L=0, |x_0| = sqrt(3)
    assert abs(abs(x[0].item()) - np.sqrt(3)) < 1e-14
    assert x[1:].abs().max() < 1e-14
    anti = torch.tensor([[0, 1, 0], [-1, 0, 2], [0, -2, 0]], dtype=torch.float64)
    x = block_to_irreps(anti, 1, 1)  # antisymmetric = pure L=1
    assert x[0].abs() < 1e-14 and x[4:].abs().max() < 1e-14
    sym = torch.tensor([[1, 2, 0], [2, -1, 0], [0, 0, 0]], dtype=torch.float64)  # traceless
    x = block_to_irreps(sym, 1, 1)  # symmetric traceless = pure L=2
    assert x[:4].abs().max() < 1e-14


@pytest.mark.parametrize("l1,l2", [(0, 0), (0, 2), (1, 1), (1, 2), (2, 2), (3, 2)])
def test_block_irreps_are_orthonormal_and_equivariant(l1, l2):
    h = torch.randn(2 * l1 + 1, 2 * l2 + 1, dtype=torch.float64)
    x = block_to_irreps(h, l1, l2)
    torch.testing.assert_close(irreps_to_block(x, l1, l2), h, atol=1e-13, rtol=0)
    assert abs(x.pow(2).sum() - h.pow(2).sum()) < 1e-12  # ||H||_F^2 = sum ||x_L||^2
    rot = Rotation.random(random_state=l1 + 3 * l2).as_matrix()
    d_out = torch.block_diag(*[wigner_D(ir.l, rot) for _, ir in irreps_from_l1l2(l1, l2)])
    rotated = wigner_D(l1, rot) @ h @ wigner_D(l2, rot).T
    torch.testing.assert_close(block_to_irreps(rotated, l1, l2), d_out @ x, atol=1e-12, rtol=0)


@pytest.mark.parametrize("l", [1, 2, 3, 4])
def test_exact_wigner_d_agrees_with_e3nn_and_is_orthogonal(l):
    rot = Rotation.random(random_state=l).as_matrix()
    d = wigner_D(l, rot)
    torch.testing.assert_close(
        d @ d.T, torch.eye(2 * l + 1, dtype=torch.float64), atol=1e-13, rtol=0
    )
    q = torch.as_tensor(rot)[[1, 2, 0]][:, [1, 2, 0]]
    ref = o3.Irrep(l, 1).D_from_matrix(q)
    torch.testing.assert_close(
        d, ref, atol=5e-6, rtol=0
    )  # e3nn D: single-precision J (~1e-6 at l=4)
    pts = torch.randn(10, 3, dtype=torch.float64)
    y = o3.spherical_harmonics(l, to_e3nn_frame(pts), normalize=False)
    y_rot = o3.spherical_harmonics(l, to_e3nn_frame(pts @ torch.as_tensor(rot).T), normalize=False)
    torch.testing.assert_close(y_rot, y @ d.T, atol=1e-12, rtol=0)


@pytest.mark.parametrize("edges_last", [False, True], ids=["edges-first", "edges-last"])
def test_wigner_d_chain_is_exact_for_a_batch(edges_last):
    rots = Rotation.random(6, random_state=7).as_matrix()
    q = torch.stack([rotation_to_e3nn_frame(torch.as_tensor(r)) for r in rots])
    chain = wigner_D_chain(q, 4, edges_last)
    if edges_last:  # (2l+1, 2l+1, E), contiguous
        assert all(d.is_contiguous() for d in chain)
        chain = [d.permute(2, 0, 1) for d in chain]
    assert [d.shape for d in chain] == [(6, 2 * l + 1, 2 * l + 1) for l in range(5)]
    for l, d in enumerate(chain):
        ref = torch.stack([wigner_D(l, r) for r in rots])
        torch.testing.assert_close(d, ref, atol=1e-13, rtol=0)


def test_round_trip_openmx_e3nn():
    types = [0, 0, 1, 1, 2, 3]
    n = sum(2 * l + 1 for l in types)
    h = np.random.default_rng(1).standard_normal((n, 4))
    back = e3nn_to_openmx_block(openmx_to_e3nn_block(h, types, [0, 1]), types, [0, 1])
    np.testing.assert_array_equal(back, h)


def test_universal_basis_for_mixed_species():
    b = OrbitalBasis({6: [0, 0, 1, 1, 2], 42: [0, 0, 0, 1, 1, 2, 2]})
    assert b.dim == 19 and [s.l for s in b.shells] == [0, 0, 0, 1, 1, 2, 2]
    # carbon's first p shell, OpenMX px, sits at universal e3nn position of (y,z,x)[2]
    idx = b.index(6)
    assert idx[2] == 3 + 2 and idx[3] == 3 + 0  # px -> slot x, py -> slot y
    assert idx[8:].tolist() == [9 + 2, 9 + 4, 9 + 0, 9 + 3, 9 + 1]  # s s s p p: d at 9
    mask = b.orbital_mask()
    assert mask.sum(1).tolist() == [13, 19]
    with pytest.raises(ValueError, match="two orbital bases"):
        OrbitalBasis.union([{6: [0, 1]}, {6: [0, 0, 1]}])


def test_su2_matches_vector_rotation_of_pauli_matrices():
    sig = [
        torch.tensor(m, dtype=torch.complex128)
        for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]])
    ]
    rot = torch.as_tensor(Rotation.random(random_state=7).as_matrix())
    u = su2_matrix(rot)
    for a in range(3):
        ref = sum(rot[b, a] * sig[b] for b in range(3))
        torch.testing.assert_close(u @ sig[a] @ u.conj().T, ref, atol=1e-14, rtol=0)
    # z rotation by 90 degrees is exp(-i pi/4 sz)
    rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    ref = torch.diag(torch.tensor([np.exp(-1j * np.pi / 4), np.exp(1j * np.pi / 4)]))
    torch.testing.assert_close(su2_matrix(rz), ref, atol=1e-14, rtol=0)


def test_basis_rotation_shapes():
    b = OrbitalBasis({6: [0, 0, 1, 1, 2]})
    rot = Rotation.random(random_state=2).as_matrix()
    assert basis_rotation(b, rot).shape == (13, 13)
    d = basis_rotation(b, rot, spinful=True)
    assert d.shape == (26, 26) and d.is_complex()
    torch.testing.assert_close(
        d @ d.conj().T, torch.eye(26, dtype=torch.complex128), atol=1e-13, rtol=0
    )


def test_one_label_scheme():
    from tgkit.irreps import OrbitalBasis, Shell, shell_labels

    basis = OrbitalBasis({6: (0, 0, 1), 1: (0,)})
    assert basis.orbital_labels() == ["s1", "s2", "p1:-1", "p1:+0", "p1:+1"]
    assert OrbitalBasis.block_label(6, 1, Shell(0, 1), Shell(1, 0)) == "C-H s2-p1"
    assert shell_labels((0, 0, 1, 1, 2)) == ["s1", "s2", "p1", "p2", "d1"]
