"""tgkit.nn.linear: e3nn Linear maps as per-type matmuls equal e3nn's, values and gradients."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3

from tgkit.nn import default_dtype
from tgkit.nn.linear import TypedLinear


@pytest.mark.parametrize(("irreps_in", "irreps_out"), [
    ("3x0e+2x1o+1x0e+2x2e+1x1o", "2x0e+1x1o+3x2e+2x1o"),  # repeated types on both sides
    ("2x0e+0x1o+2x1o", "1x0e+2x1o+1x2e"),                  # an empty entry; 2e unreachable
])
def test_typed_linear_equals_e3nn_linear(irreps_in, irreps_out):
    with default_dtype(torch.float64):
        lin = o3.Linear(irreps_in, irreps_out)
        typed = TypedLinear(lin)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(6, lin.irreps_in.dim, dtype=torch.float64, generator=g, requires_grad=True)
    y_ref, y = lin(x), typed(x, lin)
    torch.testing.assert_close(y, y_ref, atol=1e-14, rtol=0)
    assert y.abs().max() > 1e-3
    probe = torch.randn(y.shape, dtype=torch.float64, generator=g)
    gx_ref, gw_ref = torch.autograd.grad((y_ref * probe).sum(), [x, lin.weight])
    gx, gw = torch.autograd.grad((typed(x, lin) * probe).sum(), [x, lin.weight])
    torch.testing.assert_close(gx, gx_ref, atol=1e-14, rtol=0)
    torch.testing.assert_close(gw, gw_ref, atol=1e-14, rtol=0)


def test_restrictions_to_input_entries_sum_to_the_linear():
    # how the blocks split the convolution's first linear into node_i, node_j and edge parts
    irreps_in = o3.Irreps("2x0e+1x1o+2x0e+1x1o+1x0e+1x2e")
    with default_dtype(torch.float64):
        lin = o3.Linear(irreps_in, "3x0e+2x1o+1x2e")
        parts = [TypedLinear(lin, list(range(a, b))) for a, b in ((0, 2), (2, 4), (4, 6))]
    x = torch.randn(5, irreps_in.dim, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(2))
    pieces = x.split([p.irreps_in.dim for p in parts], dim=-1)
    y = sum(p(xp, lin) for p, xp in zip(parts, pieces, strict=True))
    torch.testing.assert_close(y, lin(x), atol=1e-14, rtol=0)
    # the part without a 1o input still fills the 1o outputs with zeros
    assert parts[2](pieces[2], lin).shape == (5, lin.irreps_out.dim)
