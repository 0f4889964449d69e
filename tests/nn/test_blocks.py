"""Encoder modules: each is equivariant in float64 with the exact Wigner-D (parity included)."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from tgkit import keys as K
from tgkit.nn import default_dtype
from tgkit.nn.blocks import (
    EdgeUpdateBlock,
    EquivariantConv,
    EquivariantLayerNorm,
    Gate,
    NodeUpdateBlock,
    SpeciesLinear,
)
from tgkit.nn.embedding import EdgeSphericalHarmonics, GaussianRadialBasis

from .conftest import TOL, irreps_rotation, rotate_graph, rotations

HIDDEN = o3.Irreps("6x0e+2x0o+3x1o+2x1e+2x2e+1x3o")
SH = o3.Irreps.spherical_harmonics(3)


def _rand(n: int, irreps: o3.Irreps, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, o3.Irreps(irreps).dim, dtype=torch.float64, generator=g)


def _check(fn, x: torch.Tensor, irreps_in, irreps_out) -> None:
    y = fn(x)
    assert y.abs().max() > 1e-3
    for rot in rotations():
        d_in, d_out = irreps_rotation(irreps_in, rot), irreps_rotation(irreps_out, rot)
        assert (fn(x @ d_in.T) - y @ d_out.T).abs().max() <= TOL


def test_gate_and_layer_norm():
    with default_dtype(torch.float64):
        gate, norm = Gate(HIDDEN), EquivariantLayerNorm(HIDDEN)
    _check(gate, _rand(5, gate.irreps_in), gate.irreps_in, gate.irreps_out)
    _check(norm, _rand(5, HIDDEN), HIDDEN, HIDDEN)
    y = norm(_rand(5, HIDDEN))
    n0 = HIDDEN[0].mul
    assert torch.allclose(y[:, :n0].mean(-1), torch.zeros(5, dtype=torch.float64), atol=1e-12)


def test_layer_norm_statistics_per_irrep_type():
    """Unit weights, zero bias: per item, the 0e channels (split over two entries here) have
    mean 0 and every irrep type's channels have mean squared norm 1; weight and bias then act
    per channel (the bias on 0e only)."""
    irreps = o3.Irreps("3x0e+2x1o+1x0e+2x2e+1x1o")
    with default_dtype(torch.float64):
        norm = EquivariantLayerNorm(irreps, eps=0.0)
    x = _rand(4, irreps, seed=3) * 5 + 1
    y = norm(x)
    by_type: dict = {}
    for (mul, ir), sl in zip(irreps, irreps.slices(), strict=True):
        by_type.setdefault(ir, []).append(y[:, sl].reshape(4, mul, ir.dim))
    for ir, parts in by_type.items():
        chans = torch.cat(parts, dim=1)
        if ir == o3.Irrep("0e"):
            torch.testing.assert_close(chans.mean((1, 2)), torch.zeros(4, dtype=torch.float64))
        one = torch.ones(4, dtype=torch.float64)
        torch.testing.assert_close(chans.pow(2).sum(-1).mean(-1), one)
    with torch.no_grad():
        norm.weight[4] = 3.0   # channel 4: the second channel of the first 1o entry
        norm.bias[3] = 0.5     # the fourth 0e channel: the one of the second 0e entry
    y2 = norm(x)
    sl1o = irreps.slices()[1]
    ch4 = slice(sl1o.start + 3, sl1o.start + 6)
    torch.testing.assert_close(y2[:, ch4], 3 * y[:, ch4])
    k0e = irreps.slices()[2].start
    torch.testing.assert_close(y2[:, k0e], y[:, k0e] + 0.5)


def test_species_linear():
    with default_dtype(torch.float64):
        lin = SpeciesLinear(HIDDEN, HIDDEN, 3)
    types = torch.tensor([0, 2, 1, 2, 0])
    _check(lambda x: lin(x, types), _rand(5, HIDDEN), HIDDEN, HIDDEN)


@pytest.mark.parametrize("num_types", [1, 3, SpeciesLinear.max_table_types + 1])
def test_species_linear_table_equals_per_item_weights(num_types):
    """The table path (every map on every item, then each item's own) equals e3nn's Linear
    with each item's weights, values and gradients (x and the table)."""
    with default_dtype(torch.float64):
        lin = SpeciesLinear(HIDDEN, "3x0e+2x1o+1x2e+1x1e", num_types)
    g = torch.Generator().manual_seed(7)
    types = torch.randint(0, num_types, (9,), generator=g)
    types[:num_types] = torch.arange(num_types)[:9]   # every type is used
    x = _rand(9, HIDDEN).requires_grad_(True)
    y, y_ref = lin(x, types), lin.linear(x, lin.table[types])
    torch.testing.assert_close(y, y_ref, atol=1e-13, rtol=0)
    assert y.abs().max() > 1e-2
    probe = torch.randn(y.shape, dtype=torch.float64, generator=g)
    grads = torch.autograd.grad((y * probe).sum(), [x, lin.table])
    grads_ref = torch.autograd.grad((y_ref * probe).sum(), [x, lin.table])
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


def test_conv_with_spherical_harmonics():
    with default_dtype(torch.float64):
        conv = EquivariantConv(HIDDEN, SH, HIDDEN, num_radial=4, radial_hidden=8)
        sh = EdgeSphericalHarmonics(3)
    vec = _rand(5, "1x1o", seed=1)
    radial = _rand(5, "4x0e", seed=2)
    x = _rand(5, HIDDEN)
    y = conv(x, sh(vec), radial)
    for rot in rotations():
        r = torch.as_tensor(rot)
        d_in, d_out = irreps_rotation(HIDDEN, rot), irreps_rotation(HIDDEN, rot)
        y_r = conv(x @ d_in.T, sh(vec @ r.T), radial)
        assert (y_r - y @ d_out.T).abs().max() <= TOL


def test_spherical_harmonics_exact_and_self_loops():
    sh = EdgeSphericalHarmonics(4)
    vec = torch.cat([_rand(4, "1x1o", seed=3), torch.zeros(1, 3, dtype=torch.float64)])
    y = sh(vec)
    assert torch.isfinite(y).all()
    assert y[-1, 0] == 1 and (y[-1, 1:] == 0).all()
    for rot in rotations():
        d = irreps_rotation(sh.irreps_out, rot)
        y_r = sh(vec @ torch.as_tensor(rot).T)
        assert (y_r - y @ d.T).abs().max() <= TOL


def test_radial_basis_smooth_cutoff():
    rb = GaussianRadialBasis(8, cutoff=5.0)
    r = torch.tensor([0.0, 2.5, 4.999, 5.0, 6.0], dtype=torch.float64)
    b = rb(r)
    assert b[0].max() > 0.9 and (b[3:] == 0).all() and b[2].abs().max() < 1e-8
    # zero slope at the cutoff: the envelope's derivative vanishes there
    r = torch.tensor([5.0 - 1e-4], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(rb(r).sum(), r)
    assert g.abs().max() < 1e-6


def test_node_and_edge_update_blocks(mixed_graph):
    with default_dtype(torch.float64):
        nb = NodeUpdateBlock(HIDDEN, HIDDEN, SH, HIDDEN, 3, 4, 8, avg_num_neighbors=5.0)
        eb = EdgeUpdateBlock(HIDDEN, HIDDEN, SH, HIDDEN, 3, 4, 8)
        sh = EdgeSphericalHarmonics(3)
    g = mixed_graph
    ei, sp = g[K.EDGE_INDEX], g[K.SPECIES]
    n, e = sp.shape[0], ei.shape[1]
    node, edge = _rand(n, HIDDEN, 4), _rand(e, HIDDEN, 5)
    radial = _rand(e, "4x0e", 6)

    def run(graph, node, edge):
        y = sh(graph[K.EDGE_VEC])
        node = nb(node, edge, ei, sp, y, radial)
        return node, eb(node, edge, ei, sp, y, radial)

    n0, e0 = run(g, node, edge)
    for rot in rotations():
        d = irreps_rotation(HIDDEN, rot)
        n_r, e_r = run(rotate_graph(g, rot), node @ d.T, edge @ d.T)
        assert (n_r - n0 @ d.T).abs().max() <= TOL
        assert (e_r - e0 @ d.T).abs().max() <= TOL
