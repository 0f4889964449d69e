"""The edge-frame (SO(2)) convolution equals e3nn's tensor product, values and gradients."""

from __future__ import annotations

import warnings

import pytest
import torch
from e3nn import o3

from tgkit import keys as K
from tgkit.nn import default_dtype
from tgkit.nn.blocks import EdgeUpdateBlock, EquivariantConv, NodeUpdateBlock
from tgkit.nn.edge_frame import edge_frame, edge_rotations, rotate, rotate_edges_last
from tgkit.nn.embedding import EdgeSphericalHarmonics

from .conftest import TOL

HIDDEN = o3.Irreps("6x0e+2x0o+3x1o+2x1e+2x2e+1x3o")


def _vectors(seed: int = 0) -> torch.Tensor:
    """Random edges plus the hard cases: self-loops, edges along each axis and its negative,
    and edges at the frame's helper-axis switch (|y_e3nn . x| = 0.9)."""
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(3, dtype=torch.float64)
    switch = torch.tensor([[0.0, 0.9, (1 - 0.81) ** 0.5]], dtype=torch.float64)  # cart (x,y,z)
    return torch.cat([torch.randn(12, 3, dtype=torch.float64, generator=g) * 2,
                      torch.zeros(2, 3, dtype=torch.float64), 1.7 * eye, -2.3 * eye, switch])


def test_edge_rotations_are_proper_and_point_along_the_edge():
    vec = _vectors()
    rot = edge_rotations(vec)
    eye = torch.eye(3, dtype=torch.float64).expand_as(rot)
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, eye, atol=1e-14, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(len(vec), dtype=torch.float64))
    u = vec[:, [1, 2, 0]]  # e3nn's (y, z, x) order
    n = u.norm(dim=-1, keepdim=True)
    live = n[:, 0] > 0
    torch.testing.assert_close(rot[live, :, 1], (u / n)[live], atol=1e-15, rtol=0)
    torch.testing.assert_close(rot[~live], eye[~live])


@pytest.mark.parametrize("edges_last", [False, True], ids=["edges-first", "edges-last"])
@pytest.mark.parametrize("lmax", [2, 4])
def test_harmonics_in_the_frame_are_m0_only(lmax, edges_last):
    vec = _vectors(1)
    sh = EdgeSphericalHarmonics(lmax)(vec)
    frame = edge_frame(vec, sh, lmax, edges_last=edges_last)
    assert frame.edges_last == edges_last
    for l in range(lmax + 1):
        d = frame.wigner[l].permute(2, 0, 1) if edges_last else frame.wigner[l]
        in_frame = (sh[:, l * l:(l + 1) ** 2, None] * d).sum(1)  # D^T Y
        expected = torch.zeros_like(in_frame)
        expected[:, l] = frame.sh_m0[:, l]
        torch.testing.assert_close(in_frame, expected, atol=1e-13, rtol=0)
        live = vec.norm(dim=-1) > 0
        want = torch.where(live, (2 * l + 1) ** 0.5, 1.0 if l == 0 else 0.0)
        torch.testing.assert_close(frame.sh_m0[:, l], want.to(torch.float64))


@pytest.mark.parametrize("to_frame", [True, False], ids=["into", "back"])
def test_rotation_layouts_agree_and_invert(to_frame):
    """Edges-last rotations (prediction on a CPU) equal the batched products, every degree
    and parity, scalars untouched; into the frame and back is the identity."""
    irreps = o3.Irreps("3x0e+1x0o+2x1o+1x1e+2x2e+1x3o+1x3e+2x4e")
    vec = _vectors(2)
    sh = EdgeSphericalHarmonics(4)(vec)
    first, last = edge_frame(vec, sh, 4), edge_frame(vec, sh, 4, edges_last=True)
    x = torch.randn(len(vec), irreps.dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(3))
    ref = rotate(x, irreps, first.wigner, to_frame)
    out = rotate_edges_last(x.t().contiguous(), irreps, last.wigner, to_frame)
    assert out.shape == x.t().shape
    torch.testing.assert_close(out.t(), ref, atol=1e-14, rtol=0)
    assert (out.t() - x)[:, irreps.dim - 9:].abs().max() > 1e-2   # l = 4 really rotated
    torch.testing.assert_close(out[:4], x.t()[:4], atol=0, rtol=0)   # scalars as they are
    back = rotate_edges_last(out, irreps, last.wigner, not to_frame)
    torch.testing.assert_close(back.t(), x, atol=1e-13, rtol=0)


@pytest.mark.parametrize(("irreps_out", "lmax"), [
    (HIDDEN, 4), ("4x0e+2x1o+2x2e+2x3o+1x4e+1x2o+1x1e", 4),
    ("4x0e+2x1o+2x2e+2x3o+1x4e+1x2o+1x1e", 2),  # features above the harmonics' degree
])
@pytest.mark.parametrize("edges_last", [False, True], ids=["gathers", "blocks-edges-last"])
def test_frame_conv_equals_e3nn_tensor_product(irreps_out, lmax, edges_last):
    """The edge-frame convolution equals e3nn's product: the training path (gather plan,
    values and gradients) and the prediction path on a CPU (edges-last Wigner matrices and
    rotations, block plan, gate on transposed features)."""
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        conv = EquivariantConv(HIDDEN, o3.Irreps.spherical_harmonics(lmax), irreps_out, 5, 8)
        sh_module = EdgeSphericalHarmonics(lmax)
    for p in conv.parameters():  # O(1) weights everywhere, so no path hides behind a small one
        torch.nn.init.normal_(p)
    vec = _vectors(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(len(vec), HIDDEN.dim, dtype=torch.float64, generator=g)
    radial = torch.randn(len(vec), 5, dtype=torch.float64, generator=g)
    sh = sh_module(vec)
    ref = conv(x, sh, radial)
    with torch.set_grad_enabled(not edges_last):
        frame = edge_frame(vec, sh, lmax, lmax_features=4, edges_last=edges_last)
        out = conv(x, sh, radial, frame)
    assert ref.abs().max() > 1.0 and out.shape == ref.shape and out.is_contiguous()
    assert (out - ref).abs().max() <= TOL * ref.abs().max()
    if edges_last:
        return
    # gradients too: training runs the frame path
    grads = []
    for frame in (None, edge_frame(vec, sh, lmax, lmax_features=4)):
        conv.zero_grad()
        conv(x, sh, radial, frame).pow(2).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in conv.parameters()]))
    assert grads[0].abs().max() > 1.0
    assert (grads[1] - grads[0]).abs().max() <= TOL * grads[0].abs().max()


def test_update_blocks_frame_equals_reference(mixed_graph):
    sh_irreps = o3.Irreps.spherical_harmonics(3)
    with default_dtype(torch.float64):
        torch.manual_seed(1)
        nb = NodeUpdateBlock(HIDDEN, HIDDEN, sh_irreps, HIDDEN, 3, 4, 8, avg_num_neighbors=5.0)
        eb = EdgeUpdateBlock(HIDDEN, HIDDEN, sh_irreps, HIDDEN, 3, 4, 8)
    g = mixed_graph
    ei, sp, vec = g[K.EDGE_INDEX], g[K.SPECIES], g[K.EDGE_VEC]
    gen = torch.Generator().manual_seed(4)
    node = torch.randn(len(sp), HIDDEN.dim, dtype=torch.float64, generator=gen)
    edge = torch.randn(ei.shape[1], HIDDEN.dim, dtype=torch.float64, generator=gen)
    radial = torch.randn(ei.shape[1], 4, dtype=torch.float64, generator=gen)
    sh = EdgeSphericalHarmonics(3)(vec)
    frame = edge_frame(vec, sh, 3)
    for frame_arg in (None, frame):
        n = nb(node, edge, ei, sp, sh, radial, frame_arg)
        e = eb(n, edge, ei, sp, sh, radial, frame_arg)
        if frame_arg is None:
            n_ref, e_ref = n, e
    assert (n - n_ref).abs().max() <= TOL and (e - e_ref).abs().max() <= TOL



def _broken_backend(gm, example_inputs):
    raise RuntimeError("no C++ compiler here")


def test_compiled_training_path_equals_eager_and_falls_back():
    """train.compile: the frame product through torch.compile (dynamo with its 'eager'
    backend here: the tracing, without inductor's minute of compiling) gives the same values
    and gradients on two edge counts; a backend that fails warns once and runs eagerly."""
    with default_dtype(torch.float64):
        torch.manual_seed(0)
        conv = EquivariantConv(HIDDEN, o3.Irreps.spherical_harmonics(2), "4x0e+2x1o+2x2e", 5, 8)
        sh_module = EdgeSphericalHarmonics(2)
    fp = conv.frame_product
    g = torch.Generator().manual_seed(3)
    cases = []
    for n in (21, 15):  # two sizes: dynamic shapes
        vec = _vectors(2)[:n]
        sh = sh_module(vec)
        cases.append((torch.randn(n, HIDDEN.dim, dtype=torch.float64, generator=g),
                      sh, torch.randn(n, 5, dtype=torch.float64, generator=g),
                      edge_frame(vec, sh, 2, lmax_features=4)))
    results = {}
    for mode, backend in (("eager", None), ("compiled", "eager"), ("broken", _broken_backend)):
        fp.compile_backend = backend
        results[mode] = []
        for x, sh, radial, frame in cases:
            conv.zero_grad()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = conv(x, sh, radial, frame)
            out.pow(2).sum().backward()
            grads = torch.cat([p.grad.flatten() for p in conv.parameters()])
            results[mode].append((out.detach(), grads, [str(w.message) for w in caught]))
    assert fp.compile_backend is None   # the broken backend switched it off
    for mode in ("compiled", "broken"):
        for (o, gr, _), (o_ref, gr_ref, _) in zip(results[mode], results["eager"], strict=True):
            assert (o - o_ref).abs().max() <= 1e-12 * o_ref.abs().max()
            assert (gr - gr_ref).abs().max() <= 1e-12 * gr_ref.abs().max()
    assert [len(w) for *_, w in results["compiled"]] == [0, 0]
    broken_warnings = [w for *_, ws in results["broken"] for w in ws]
    assert len(broken_warnings) == 1 and "no C++ compiler here" in broken_warnings[0]
