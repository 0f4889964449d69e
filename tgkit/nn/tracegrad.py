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
from tgkit.nn.compiled import call_compiled
from tgkit.runtime import cpu_prediction


class _RowDot(torch.autograd.Function):
    """``u[..., c] = sum_i p[..., c, i] f[..., i]`` with a backward of broadcast products.

    Autograd of a batched mat-vec would form ``dL/dp`` as a batched matmul of inner size 1,
    and of a broadcast product and sum through stride-0 views: both slower on a CPU than the
    products written here (``bench/bench_tracegrad_module.py``).
    """

    @staticmethod
    def forward(ctx, p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(p, f)
        return (p * f.unsqueeze(-2)).sum(-1)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, f = ctx.saved_tensors
        return g.unsqueeze(-1) * f.unsqueeze(-2), (g.unsqueeze(-2) @ p).squeeze(-2)


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
        # one group per irrep type (l, p): (2l+1, [(start, stop) of its entries in f], mul),
        # as plain ints, so that forward touches no e3nn object (torch.compile cannot trace
        # Irreps)
        self.groups: list[tuple[int, list[tuple[int, int]], int]] = []
        self._slices = [(sl.start, sl.stop) for sl in self.irreps_in.slices()]
        for ir in sorted({ir for mul, ir in self.irreps_in if mul > 0}):
            sls = [sl for (m, i), sl in zip(self.irreps_in, self._slices, strict=True)
                   if i == ir and m > 0]
            mul = sum(self.irreps_in[k].mul for k, (_, i) in enumerate(self.irreps_in) if i == ir)
            self.groups.append((ir.dim, sls, mul))
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
        # all W flattened side by side: the column of each entry's transpose (W + W^T in one
        # gather) and the CG coefficient to degree 0, 1/sqrt(2l+1), of each column
        transpose, scale, start = [], [], 0
        for dim, _, mul in self.groups:
            transpose.append(start + torch.arange(mul * mul).view(mul, mul).T.flatten())
            scale.append(torch.full((mul * mul,), dim**-0.5))
            start += mul * mul
        self.register_buffer("_transpose", torch.cat(transpose), persistent=False)
        self.register_buffer("_scale", torch.cat(scale), persistent=False)
        self._sizes = [mul * mul for _, _, mul in self.groups]
        # scalar types (l = 0) sort first: K's columns from here on are all of l > 0
        self._scalar_columns = sum(n for (dim, _, _), n in zip(self.groups, self._sizes,
                                                               strict=True) if dim == 1)
        dims = [dim for dim, _, _ in self.groups]
        assert dims == sorted(dims), "irrep types must sort by degree"

    def _split(self, f: torch.Tensor) -> list[torch.Tensor]:
        """f -> per irrep type ``(..., 2l+1, mul)`` (views where possible): components-major,
        so that the batched matmuls below have ``mul``, not ``2l+1``, columns (faster on a
        CPU: ``bench/bench_tracegrad_module.py``)."""
        lead = f.shape[:-1]
        # keyed by (start, stop): an empty entry (0x1o) starts where the next one does
        pieces = dict(zip(self._slices, f.split([b - a for a, b in self._slices], -1),
                          strict=True))
        out = []
        for dim, sls, _ in self.groups:
            xs = [pieces[sl].reshape(*lead, -1, dim) for sl in sls]
            out.append((xs[0] if len(xs) == 1 else torch.cat(xs, dim=-2)).transpose(-1, -2))
        return out

    def _merge(self, parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_split`."""
        lead = like.shape[:-1]
        pieces = {}
        for (dim, sls, _), x in zip(self.groups, parts, strict=True):
            sizes = [(b - a) // dim for a, b in sls]
            for sl, xs in zip(sls, x.transpose(-1, -2).split(sizes, dim=-2), strict=True):
                pieces[sl] = xs.reshape(*lead, -1)
        return torch.cat([pieces[sl] if sl in pieces else like.new_zeros(*lead, sl[1] - sl[0])
                          for sl in self._slices], dim=-1)

    def _weights(self) -> torch.Tensor:
        """``K = (W + W^T) / sqrt(2l+1)`` of all irrep types side by side, ``(num_invariants,
        sum mul^2)``, in a few operations on all W at once (per type, many small ones). The
        types sort by degree, so the columns of l > 0 are one block at the end."""
        w = torch.cat([w.flatten(1) for w in self.square_weights], dim=1)
        return (w + w.index_select(1, self._transpose)) * self._scale

    def square(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """``u = CGDecomp_ext(f (x) f, 0, W)``: ``(..., num_invariants)``, invariant."""
        return self._square(parts, self._weights())[0]

    def _square(self, parts: list[torch.Tensor], k: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """u, and per scalar type ``P_c = K^c f`` for v.

        ``u_c = sum_l sum_ij W^c_l[i, j] (f_l f_l^T)[i, j] / sqrt(2l+1)
        = 1/2 sum_l <K^c_l, f_l f_l^T>`` since the Gram matrix is symmetric.
        """
        u, cache, grams = 0.0, [], []
        for (dim, _, mul), x, k_t in zip(self.groups, parts, k.split(self._sizes, dim=1),
                                         strict=True):
            if dim == 1:
                # scalars: u_c = f^T K^c f / 2 from one matmul P = K f, which v reuses;
                # cheaper than the Gram matrix (a batched outer product) for the widest type
                f = x.squeeze(-2)
                p = f @ k_t.view(-1, mul, mul).transpose(0, 1).reshape(mul, -1)
                p = p.unflatten(-1, (-1, mul))
                u = u + _RowDot.apply(p, f)
                cache.append(p)
            else:
                grams.append((x.transpose(-1, -2) @ x).flatten(-2))  # rotation invariant
                cache.append(None)
        if grams:  # all degrees l > 0 in one matmul
            u = u + torch.cat(grams, dim=-1) @ k[:, self._scalar_columns:].T
        return u * 0.5, cache

    # torch.compile backend of the training path (tgkit.nn.compiled), or None: eager
    compile_backend: str | None = None

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return call_compiled(self, TraceGrad._forward, f)

    def _forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if f.dim() == 2 and cpu_prediction(f.device):
            return self._forward_items_last(f)
        parts, k = self._split(f), self._weights()
        u, cache = self._square(parts, k)
        if not self.use_grad:
            return f, self.s_nonlin(u)
        z, dz_du = self._nonlin_and_grad(u)
        # v = dZ/df: for scalars sum_c dZ/du_c P_c; for l > 0 m_l f_l with the symmetric
        # m_l = sum_c dZ/du_c K^c_l, all degrees from one matmul
        ms = iter((dz_du @ k[:, self._scalar_columns:]).split(
            [n for (dim, _, _), n in zip(self.groups, self._sizes, strict=True) if dim > 1], -1))
        v = []
        for (_, _, mul), x, p in zip(self.groups, parts, cache, strict=True):
            if p is not None:
                v.append(dz_du.unsqueeze(-2) @ p)
            else:  # (m f_l)^T = f_l^T m in the (2l+1, mul) layout, m symmetric
                v.append(x @ next(ms).unflatten(-1, (mul, mul)))
        return self._output(f, self._merge(v, f)), z

    def _forward_items_last(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_forward` for prediction on a CPU (no autograd), on ``f (N, irreps.dim)``
        transposed to ``(irreps.dim, N)``: each Gram matrix and each ``m_l f_l`` is then
        2l+1 or mul multiply-adds over rows of N items (vectorised), instead of N products
        of matrices 1-16 wide (~1-5 GFLOP/s on a CPU). Scalars take the Gram matrix too,
        unless they outnumber the invariants (then ``P = K f``, smaller). The same formulas,
        to round-off (tested); ``bench/bench_tracegrad_module.py`` times it."""
        n, ft, k = f.shape[0], f.t().contiguous(), self._weights()
        c = k.shape[0]
        u, cache = ft.new_zeros(c, n), []
        for (dim, sls, mul), k_t in zip(self.groups, k.split(self._sizes, dim=1), strict=True):
            xs = [ft[a:b].view((b - a) // dim, dim, n) for a, b in sls]
            x = xs[0] if len(xs) == 1 else torch.cat(xs)   # (mul, 2l+1, N)
            p = None
            if dim == 1 and mul > c:   # u_c = f^T P_c, as in _square
                p = (k_t.reshape(-1, mul) @ x[:, 0]).view(c, mul, n)
                u += (p * x[:, 0]).sum(1)
            else:   # u_c = <K^c, G> with G[i, j] = sum over m of f_i[m] f_j[m]
                g = x[:, None, 0] * x[None, :, 0]
                for m in range(1, dim):
                    g.addcmul_(x[:, None, m], x[None, :, m])
                u.addmm_(k_t, g.view(mul * mul, n))
            cache.append((x, p))
        u *= 0.5
        if not self.use_grad:
            return f, self.s_nonlin(u.t())
        z, dz_du = self._nonlin_and_grad(u.t())
        dz, vt = dz_du.t().contiguous(), torch.empty_like(ft)
        for (dim, sls, mul), k_t, (x, p) in zip(self.groups, k.split(self._sizes, dim=1),
                                                cache, strict=True):
            if p is not None:   # sum_c dZ/du_c P_c
                v = (p * dz.unsqueeze(1)).sum(0).unsqueeze(1)
            else:   # v[i] = sum_j m[i, j] f_j with m = sum_c dZ/du_c K^c, one j at a time
                m = (k_t.t() @ dz).view(mul, mul, n)
                v = m[:, 0, None] * x[0]
                for j in range(1, mul):
                    v.addcmul_(m[:, j, None], x[j])
            for (a, b), vs in zip(sls, v.split([(b - a) // dim for a, b in sls]), strict=True):
                vt[a:b] = vs.reshape(b - a, n)
        if self.normalize:
            vt = vt / (1.0 + vt.pow(2).mean(0, keepdim=True).sqrt())
        return (ft + vt).t().contiguous(), z

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
