"""TraceGrad: Theorem 1 (T invariant), Theorem 2 (v equivariant), closed form = autograd."""

from __future__ import annotations

import pytest
import torch

from tgkit.irreps import basis_rotation, block_to_irreps
from tgkit.nn import TraceGrad, default_dtype, trace_labels
from tgkit.nn.tracegrad import block_traces

from .conftest import TOL, irreps_rotation, rotations

IRREPS = "4x0e+3x1o+2x1e+2x2e+1x2o+2x3o+1x0o"


@pytest.fixture(scope="module")
def module() -> TraceGrad:
    torch.manual_seed(1)
    with default_dtype(torch.float64):
        return TraceGrad(IRREPS, num_invariants=6, hidden=12, num_z=5)


def _features(n: int = 7) -> torch.Tensor:
    from e3nn import o3

    return torch.randn(n, o3.Irreps(IRREPS).dim, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(2))


def test_theorem1_trace_labels_invariant(basis):
    """T_b = tr(H_b H_b^dagger) of a rotated block equals T_b, spinless and spinful."""
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(5, basis.dim, basis.dim, dtype=torch.float64, generator=gen)
    hs = torch.randn(5, 2 * basis.dim, 2 * basis.dim, dtype=torch.complex128, generator=gen)
    for rot in rotations():
        d, ds = basis_rotation(basis, rot), basis_rotation(basis, rot, spinful=True)
        t, ts = trace_labels(h, basis), trace_labels(hs, basis)
        assert (trace_labels(d @ h @ d.T, basis) - t).abs().max() <= TOL * t.max()
        assert (trace_labels(ds @ hs @ ds.conj().T, basis) - ts).abs().max() <= TOL * ts.max()


def test_trace_labels_are_block_norms(basis):
    """T of a shell pair is the squared norm of its direct-sum irreps (orthonormal CG)."""
    h = torch.randn(3, basis.dim, basis.dim, dtype=torch.float64)
    t = trace_labels(h, basis)
    for p, (sa, sb) in enumerate(basis.shell_pairs()):
        oa, ob = basis.shell_offset[sa], basis.shell_offset[sb]
        blk = h[:, oa:oa + sa.dim, ob:ob + sb.dim]
        x = block_to_irreps(blk, sa.l, sb.l)
        assert torch.allclose(t[:, p], x.pow(2).sum(-1), atol=1e-12)
        assert torch.allclose(t[:, p], torch.einsum("eab,eab->e", blk, blk), atol=1e-12)


def test_block_traces_of_rectangular_and_spinful_blocks():
    """Shell pairs of two different per-atom bases; spinful sums the four spin sub-blocks."""
    h = torch.randn(4, 2 * 4, 2 * 9, dtype=torch.complex128)  # rows: s, p; columns: s, p, d
    t = block_traces(h, [1, 3], [1, 3, 5])
    assert t.shape == (4, 2, 3)
    sub = h[:, 1:4, 4:9], h[:, 1:4, 13:18], h[:, 5:8, 4:9], h[:, 5:8, 13:18]
    assert torch.allclose(t[:, 1, 2], sum(b.abs().pow(2).sum((-1, -2)) for b in sub))


def test_theorem2_v_equivariant_and_z_invariant(module):
    f = _features()
    o, z = module(f)
    v = o - f
    assert v.abs().max() > 1e-3
    for rot in rotations():  # improper ones check parity too
        d = irreps_rotation(IRREPS, rot)
        o_r, z_r = module(f @ d.T)
        assert (o_r - f @ d.T - v @ d.T).abs().max() <= TOL
        assert (z_r - z).abs().max() <= TOL


def test_closed_form_equals_autograd(module):
    f = _features()
    o, _ = module(f)
    assert (o - f - module.grad_autograd(f)).abs().max() <= 1e-12


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("irreps", [IRREPS, "2x0e+1x1o+0x1o+3x0e+2x1o+1x0o+1x0o"])
def test_forward_autograd_equals_forward(normalize, irreps):
    """The autograd variant bench_step times: same (o, z), and the same gradients of the
    parameters and of f through o (second derivatives while training), also with repeated
    and empty entries of one irrep type and two scalar types."""
    from e3nn import o3

    torch.manual_seed(1)
    with default_dtype(torch.float64):
        m = TraceGrad(irreps, num_invariants=6, hidden=12, num_z=5, normalize=normalize)
    f = torch.randn(7, o3.Irreps(irreps).dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    grads = []
    for fwd in (m.forward, m.forward_autograd):
        o, z = fwd(f)
        grads.append(torch.autograd.grad((o.pow(2).sum() + z.sum()), [f, *m.parameters()]))
        grads.append((o.detach(), z.detach()))
    for a, b in zip(grads[0] + grads[1], grads[2] + grads[3], strict=True):
        assert (a - b).abs().max() <= 1e-10


@pytest.mark.parametrize("use_grad", [True, False], ids=["grad", "trace-only"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("irreps", [IRREPS, "2x0e+1x1o+0x1o+3x0e+2x1o+1x0o+1x0o+1x4e"])
@pytest.mark.parametrize("n", [1, 9])
def test_items_last_prediction_path_equals_training_path(use_grad, normalize, irreps, n):
    """Without autograd on a CPU, forward runs on f transposed (items last): the same o and z
    as the path that training differentiates, also with repeated and empty entries of one
    type, two scalar types, and one item."""
    from e3nn import o3

    torch.manual_seed(1)
    with default_dtype(torch.float64):
        m = TraceGrad(irreps, num_invariants=6, hidden=12, num_z=5, use_grad=use_grad,
                      normalize=normalize)
    f = torch.randn(n, o3.Irreps(irreps).dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2))
    ref = [t.detach() for t in m(f)]
    with torch.no_grad():
        out = m(f)
    assert out[0].shape == f.shape and out[0].is_contiguous() and out[1].shape == (n, 5)
    if n and use_grad:
        assert (ref[0] - f).abs().max() > 1e-3   # v is not zero
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


def test_square_pairs_only_same_degree_and_parity(module):
    """Flipping the sign of the 1e channels leaves u unchanged: 1e pairs only with 1e, never
    with 1o (that product is 0o, which inversion flips)."""
    from e3nn import o3

    f = _features()
    irreps = o3.Irreps(IRREPS)
    g = f.clone()
    for (_, ir), sl in zip(irreps, irreps.slices(), strict=True):
        if ir == o3.Irrep("1e"):
            g[:, sl] = -g[:, sl]
    assert torch.allclose(module.square(module._split(f)), module.square(module._split(g)))


def test_works_under_no_grad_and_eval(module):
    f = _features()
    ref, _ = module(f)
    module.eval()
    with torch.no_grad():
        o, z = module(f)
    module.train()
    assert not o.requires_grad and not z.requires_grad
    assert (o - ref).abs().max() <= 1e-14


def test_training_backprops_through_the_gradient(module):
    """create_graph while training: a loss on o reaches s_nonlin (second derivatives)."""
    module.train()
    f = _features().requires_grad_(True)
    o, _ = module(f)
    o.pow(2).sum().backward()
    assert module.s_nonlin[0].weight.grad.abs().sum() > 0
    assert module.square_weights[0].grad.abs().sum() > 0
    module.zero_grad()


def test_trace_only_returns_f_unchanged():
    with default_dtype(torch.float64):
        m = TraceGrad(IRREPS, 4, 8, 3, use_grad=False)
    f = _features()
    o, z = m(f)
    assert o is f and z.shape == (f.shape[0], 3)


def test_compiled_training_path_equals_eager(module):
    """train.compile: TraceGrad through torch.compile (dynamo's 'eager' backend: the tracing,
    without inductor's compiling) gives the same o, z and gradients on two item counts."""
    import warnings

    results = {}
    for backend in (None, "eager"):
        module.compile_backend = backend
        results[backend] = []
        for n in (7, 5):
            f = _features(n).requires_grad_(True)
            with warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)   # what a fallback warns
                o, z = module(f)
            grads = torch.autograd.grad(o.pow(2).sum() + z.sum(), [f, *module.parameters()])
            results[backend].append([o.detach(), z.detach(), *grads])
    assert module.compile_backend == "eager"   # still compiled: no fallback happened
    module.compile_backend = None
    for got, want in zip(results["eager"], results[None], strict=True):
        for a, b in zip(got, want, strict=True):
            assert (a - b).abs().max() <= 1e-12 * (1 + b.abs().max())
