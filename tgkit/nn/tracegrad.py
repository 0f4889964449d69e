"""TraceGrad (paper sections 4 and 8): the trace label, the invariant branch and the Grad operator.

* **Trace** (Theorem 1): ``T_b = tr(H_b H_b^dagger) = ||H_b||_F^2`` for every shell-pair block b
  of every edge is SO(3)- (and SU(2)-) invariant. :func:`trace_labels` computes it from the
  targets; :class:`TraceDecoder` predicts it from the last module's invariant features z.
* **Grad** (Theorem 2, eq. 9): in each encoder module, for features f,
  ``u = square(f) = CGDecomp_ext(f (x) f, 0, W)``, ``z = s_nonlin(u)`` and ``v = dz/df``;
  the module outputs ``o = f + v``.

``square`` pairs only channels of the same degree *and parity*: their CG product to degree 0
is ``f_i . f_j / sqrt(2l+1)``, so ``u_c = sum_l sum_ij W^c_l[i, j] (f_l f_l^T)[i, j] /
sqrt(2l+1)``. Then the gradient has a closed form,
``v_l = sum_c (dZ/du_c) (W^c_l + W^c_l^T) f_l / sqrt(2l+1)`` with ``Z = sum(z)``, and dZ/du
of the small MLP ``s_nonlin`` is written out as well, so v needs no ``autograd.grad`` call
(training differentiates it once, like any other layer). It equals ``torch.autograd.grad`` of
the whole chain (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from e3nn import o3
from torch import nn

from tgkit.irreps import OrbitalBasis


class TraceGrad(nn.Module):
    """Invariant branch ``z = s_nonlin(square(f))`` and, when ``use_grad``, ``o = f + dz/df``.

    Args:
        irreps: irreps of f (and of o).
        num_invariants: width of u.
        hidden: hidden width of s_nonlin.
        num_z: width of z.
        use_grad: add v to f (Grad); otherwise o = f and only z is computed (Trace only).
        zero_init: start s_nonlin's last layer at zero, so v = 0 at initialisation.
        normalize: divide v by ``1 + rms(v)`` per item (an invariant, so still equivariant).

    Shapes: ``f (..., irreps.dim)`` -> ``(o (..., irreps.dim), z (..., num_z))``; z is 0e.
    """

    def __init__(
        self, irreps: o3.Irreps | str, num_invariants: int, hidden: int, num_z: int,
        use_grad: bool = True, zero_init: bool = False, normalize: bool = False,
    ) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        self.irreps_z = o3.Irreps(f"{num_z}x0e")
        self.use_grad, self.normalize = use_grad, normalize
        # one group per irrep type (l, p): slices of f that are channels of that type
        self.groups: list[tuple[o3.Irrep, list[slice], int]] = []
        for ir in sorted({ir for mul, ir in self.irreps_in if mul > 0}):
            sls = [sl for (m, i), sl in zip(self.irreps_in, self.irreps_in.slices(), strict=True)
                   if i == ir and m > 0]
            mul = sum(self.irreps_in[k].mul for k, (_, i) in enumerate(self.irreps_in) if i == ir)
            self.groups.append((ir, sls, mul))
        # W of eq. 9: W[c, i, j] mixes channel pair (i, j) of one degree into invariant c
        self.square_weights = nn.ParameterList([
            nn.Parameter(torch.randn(num_invariants, mul, mul) / (mul * len(self.groups) ** 0.5))
            for _, _, mul in self.groups
        ])
        self.s_nonlin = nn.Sequential(
            nn.Linear(num_invariants, hidden), nn.LayerNorm(hidden), nn.SiLU(),
            nn.Linear(hidden, num_z),
        )
        if zero_init:
            nn.init.zeros_(self.s_nonlin[-1].weight)

    def _split(self, f: torch.Tensor) -> list[torch.Tensor]:
        """f -> per irrep type ``(..., mul, 2l+1)`` (one split of f, no per-slice copies)."""
        lead = f.shape[:-1]
        # keyed by (start, stop): an empty entry (0x1o) starts where the next one does
        pieces = dict(zip([(sl.start, sl.stop) for sl in self.irreps_in.slices()],
                          f.split([sl.stop - sl.start for sl in self.irreps_in.slices()], -1),
                          strict=True))
        out = []
        for ir, sls, _ in self.groups:
            xs = [pieces[sl.start, sl.stop].reshape(*lead, -1, ir.dim) for sl in sls]
            out.append(xs[0] if len(xs) == 1 else torch.cat(xs, dim=-2))
        return out

    def _merge(self, parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_split`."""
        lead = like.shape[:-1]
        pieces = {}
        for (ir, sls, _), x in zip(self.groups, parts, strict=True):
            sizes = [(sl.stop - sl.start) // ir.dim for sl in sls]
            for sl, xs in zip(sls, x.split(sizes, dim=-2), strict=True):
                pieces[sl.start, sl.stop] = xs.reshape(*lead, -1)
        return torch.cat([pieces[sl.start, sl.stop] if (sl.start, sl.stop) in pieces else
                          like.new_zeros(*lead, sl.stop - sl.start)
                          for sl in self.irreps_in.slices()], dim=-1)

    def square(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``u = CGDecomp_ext(f (x) f, 0, W)``: ``(..., num_invariants)``, invariant."""
        return self._square(parts)[0]

    def _square(self, parts: list[torch.Tensor]
                ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """u, and per scalar group ``P_c = S^c f`` (``S^c = (W^c + W^c^T) / 2``) for v."""
        u, cache = 0.0, []
        for (ir, _, mul), x, w in zip(self.groups, parts, self.square_weights, strict=True):
            if ir.dim == 1:
                # scalars: u_c = f^T S^c f from one matmul P = S f, which v reuses; cheaper
                # than the Gram matrix (a batched outer product) for the widest channels.
                # Both contractions with P are batched mat-vecs: less module time than a
                # broadcast mul + sum, which builds (..., C, mul) temporaries (table in
                # bench/README.md, bench/bench_tracegrad_module.py)
                f = x.squeeze(-1)
                sym = (w + w.transpose(-1, -2)) / 2
                p = (f @ sym.transpose(0, 1).flatten(1)).unflatten(-1, (-1, mul))
                u = u + (p @ f.unsqueeze(-1)).squeeze(-1)
                cache.append(p)
                continue
            gram = x @ x.transpose(-1, -2)  # (..., mul, mul), rotation invariant
            u = u + gram.flatten(-2) @ w.flatten(1).T / ir.dim**0.5
            cache.append(None)
        return u, cache

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = self._split(f)
        u, cache = self._square(parts)
        if not self.use_grad:
            return f, self.s_nonlin(u)
        z, dz_du = self._nonlin_and_grad(u)
        v = []
        for (ir, _, mul), x, w, p in zip(self.groups, parts, self.square_weights, cache,
                                         strict=True):
            if p is not None:  # scalars: v = 2 sum_c dZ/du_c S^c f
                v.append(2 * (dz_du.unsqueeze(-2) @ p).transpose(-1, -2))
                continue
            # sum_c dZ/du_c (W^c + W^c^T), symmetrised on the small W rather than per item
            m = (dz_du @ (w + w.transpose(-1, -2)).flatten(1)).unflatten(-1, (mul, mul))
            v.append(m @ x / ir.dim**0.5)
        return self._output(f, self._merge(v, f)), z

    def _nonlin_and_grad(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = s_nonlin(u)`` and ``dZ/du`` (``Z = sum(z)``) in closed form, in one forward
        pass: no ``autograd.grad`` call (and no graph for second derivatives); autograd
        differentiates both once, and inference needs no autograd at all.

        ``a = L1 u``, ``y = LN(a)``, ``z = L2 silu(y)``: ``dZ/dy = (1^T L2) silu'(y)``, through
        the normalisation ``dZ/da = (g - mean(g) - xhat mean(g xhat)) / sigma`` with
        ``g = gamma dZ/dy``, and ``dZ/du = L1^T dZ/da``. Tested against autograd.
        """
        lin1, norm, _, lin2 = self.s_nonlin
        a = lin1(u)
        centred = a - a.mean(-1, keepdim=True)
        rstd = torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + norm.eps)
        xhat = centred * rstd
        y = xhat * norm.weight + norm.bias
        sig = torch.sigmoid(y)
        z = lin2(y * sig)
        g = lin2.weight.sum(0) * norm.weight * sig * (1 + y * (1 - sig))
        g_a = rstd * (g - g.mean(-1, keepdim=True) - xhat * (g * xhat).mean(-1, keepdim=True))
        return z, g_a @ lin1.weight

    def _output(self, f: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``o = f + v`` (v divided by ``1 + rms(v)`` with ``normalize``)."""
        if self.normalize:
            v = v / (1.0 + v.pow(2).mean(-1, keepdim=True).sqrt())
        return f + v

    def _autograd(self, f: torch.Tensor, create_graph: bool
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v, z)`` with ``v = d(sum z)/df`` by plain autograd through square and s_nonlin."""
        with torch.enable_grad():
            f_in = f if f.requires_grad else f.detach().requires_grad_(True)
            z = self.s_nonlin(self.square(self._split(f_in)))
            (v,) = torch.autograd.grad(z.sum(), f_in, create_graph=create_graph)
        return v, z

    def forward_autograd(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` with v by plain autograd through square and s_nonlin instead of the
        closed form (what ``bench/bench_step.py`` times the closed form against)."""
        if not self.use_grad:
            return self.forward(f)
        v, z = self._autograd(f, create_graph=self.training)
        return self._output(f, v), z

    def grad_autograd(self, f: torch.Tensor) -> torch.Tensor:
        """Reference ``v = d(sum z)/df`` by plain autograd through square and s_nonlin (tests)."""
        return self._autograd(f.detach(), create_graph=False)[0]


class NoGrad(nn.Module):
    """A module position without Grad (``tracegrad.grad_where``): ``f -> (f, None)``."""

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, None]:
        return f, None


class TraceDecoder(nn.Module):
    """Shallow invariant decoder: z of the last module -> predicted T per shell-pair block.

    Shapes: ``(E, num_z)`` -> ``(E, num_pairs)``.
    """

    def __init__(self, num_z: int, hidden: int, num_pairs: int) -> None:
        super().__init__()
        self.irreps_in = o3.Irreps(f"{num_z}x0e")
        self.irreps_out = o3.Irreps(f"{num_pairs}x0e")
        self.mlp = nn.Sequential(nn.Linear(num_z, hidden), nn.SiLU(), nn.Linear(hidden, num_pairs))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z)


def shell_membership(dims: Sequence[int], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(sum(dims), len(dims)) 0/1 matrix: orbital -> its shell (contiguous shells of ``dims``)."""
    m = torch.zeros(sum(dims), len(dims), dtype=dtype)
    start = 0
    for k, d in enumerate(dims):
        m[start:start + d, k] = 1.0
        start += d
    return m


def block_traces(h: torch.Tensor, row_dims: Sequence[int], col_dims: Sequence[int]) -> torch.Tensor:
    """``T_b = tr(H_b H_b^dagger) = ||H_b||_F^2`` of every shell-pair sub-block b of blocks h.

    The one definition of the trace label: :func:`trace_labels` (universal basis, targets of
    the model) and the dashboards' records (per-atom bases, file order) both call it. T does
    not depend on the order of orbitals inside a shell, so file and e3nn order give the same T.

    Args:
        h: ``(..., n_r, n_c)`` real or ``(..., 2 n_r, 2 n_c)`` spin-major blocks, where
            ``n_r = sum(row_dims)``, ``n_c = sum(col_dims)``.
        row_dims, col_dims: dimensions of the contiguous shells along rows and columns.

    Returns:
        ``(..., len(row_dims), len(col_dims))`` real. For spinful blocks the four spin
        sub-blocks of a shell pair are summed, which keeps T invariant under SU(2) as well.
    """
    sq = h.abs().pow(2) if h.is_complex() else h.pow(2)
    r, c = sum(row_dims), sum(col_dims)
    if sq.shape[-2:] == (2 * r, 2 * c):
        sq = (sq[..., :r, :c] + sq[..., :r, c:] + sq[..., r:, :c] + sq[..., r:, c:])
    m_r = shell_membership(row_dims, sq.dtype).to(sq.device)
    m_c = shell_membership(col_dims, sq.dtype).to(sq.device)
    return m_r.T @ sq @ m_c


def trace_labels(h: torch.Tensor, basis: OrbitalBasis) -> torch.Tensor:
    """Trace labels ``T_b = tr(H_b H_b^dagger)`` of every shell-pair block of every edge.

    Args:
        h: ``(E, B, B)`` real or ``(E, 2B, 2B)`` complex spin-major blocks (e3nn order).
        basis: the universal basis; pairs are ordered as ``basis.shell_pairs()``.

    Returns:
        ``(E, P)`` real, P = num_shells**2 (:func:`block_traces` flattened row-major).
    """
    dims = [s.dim for s in basis.shells]
    return block_traces(h, dims, dims).flatten(-2)
