"""The convolution's tensor product evaluated in each edge's own frame (the SO(2) / eSCN trick).

Rotate an edge so that it points along e3nn's polar axis (y): its spherical harmonics then have
only their m = 0 components, ``Y_l = s_l e_0``. A depthwise ('uvu') path ``(l1, l2) -> l3`` of
the product with ``Y`` becomes the fixed matrix ``path_weight * wigner_3j(l1, l2, l3)[:, m2=0,
:]`` times the per-edge weight and ``s_l2``; it couples only ``|m1| = |m3|``, so a path costs
O(L) per channel instead of e3nn's O(L^3), and the paths are batched into one matmul per
``|m|`` and input irrep (:class:`FrameProduct`).
Since the linear map after the product and the gate act on channels only, they commute with
rotations and run in the frame too; one rotation in and one out per convolution. Exact: by
equivariance ``TP(x, Y(r)) = D TP(D^T x, D^T Y(r))`` for any rotation D taking y onto r, and
the remaining freedom (a roll about the edge) leaves the m = 0 product unchanged.

:class:`FrameProduct` reproduces ``lin(tp(x, Y, w))`` of an e3nn ``TensorProduct`` +
``Linear`` pair from their instructions and the linear's weights (it owns no parameters, so
checkpoints are unchanged); the result equals e3nn's to round-off (tested).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from e3nn import o3
from torch import nn

from tgkit.irreps import to_e3nn_frame, wigner_D_chain


class EdgeFrame(NamedTuple):
    """Per-edge rotation onto the edge and the harmonics in that frame.

    ``wigner[l]``: ``(E, 2l+1, 2l+1)``, D^l of a rotation taking e3nn's y axis onto the edge;
    ``sh_m0``: ``(E, lmax+1)``, the m = 0 component of each degree of the edge's harmonics in
    the frame (``sqrt(2l+1)`` for an edge, ``(1, 0, ...)`` for a self-loop).
    """

    wigner: list[torch.Tensor]
    sh_m0: torch.Tensor


def edge_rotations(vec: torch.Tensor) -> torch.Tensor:
    """Rotations in e3nn's frame whose second column is the unit edge vector.

    Shapes: cartesian ``(E, 3)`` -> ``(E, 3, 3)``; zero vectors (self-loops) get the identity.
    """
    u = to_e3nn_frame(vec)
    n = u.norm(dim=-1, keepdim=True)
    zero = n < 1e-8
    ey = torch.zeros_like(u)
    ey[:, 1] = 1.0
    y = torch.where(zero, ey, u / n.clamp_min(1e-30))
    # any unit vector normal to y completes the frame: Gram-Schmidt on an axis far from y
    helper = torch.zeros_like(u)
    far = y[:, 0].abs() < 0.9
    helper[far, 0] = 1.0
    helper[~far, 2] = 1.0
    c0 = torch.nn.functional.normalize(helper - (helper * y).sum(-1, keepdim=True) * y, dim=-1)
    c2 = torch.linalg.cross(c0, y)
    return torch.stack([c0, y, c2], dim=-1)


def edge_frame(vec: torch.Tensor, sh: torch.Tensor, lmax: int,
               lmax_features: int | None = None) -> EdgeFrame:
    """The :class:`EdgeFrame` of cartesian edge vectors ``(E, 3)`` with their harmonics
    ``sh (E, (lmax+1)^2)`` (``EdgeSphericalHarmonics``); Wigner matrices up to the highest
    degree of the features to rotate, ``lmax_features`` (default ``lmax``)."""
    top = lmax if lmax_features is None else max(lmax, lmax_features)
    wigner = wigner_D_chain(edge_rotations(vec).to(sh.dtype), top)
    # m = 0 component of D^T Y: column l of D^l against Y_l (exact zero elsewhere, by choice of D)
    m0 = [(sh[:, l * l:(l + 1) ** 2] * wigner[l][:, :, l]).sum(-1) for l in range(lmax + 1)]
    return EdgeFrame(wigner, torch.stack(m0, dim=-1))


def rotate(x: torch.Tensor, irreps: o3.Irreps, wigner: list[torch.Tensor],
           to_frame: bool) -> torch.Tensor:
    """``D^T x`` (into the edge frame) or ``D x`` (back), per irrep of ``irreps``.

    Shapes: ``(E, irreps.dim)`` -> ``(E, irreps.dim)``.
    """
    e = x.shape[0]
    out = []
    for (mul, ir), sl in zip(irreps, irreps.slices(), strict=True):
        xs = x[:, sl]
        if ir.l > 0:
            d = wigner[ir.l] if to_frame else wigner[ir.l].transpose(1, 2)
            xs = torch.matmul(xs.reshape(e, mul, ir.dim), d).reshape(e, mul * ir.dim)
        out.append(xs)
    return torch.cat(out, dim=-1)


class FrameProduct(nn.Module):
    """``lin(tp(x, Y, w))`` for features ``x`` already in the edge frame.

    In the frame, a path ``l1 -> l3`` couples only components with ``|m1| = |m3|``. For each
    ``|m|`` and input irrep a, one matmul of its ``(channel u, +-m)`` components with a constant
    matrix (the m2 = 0 Clebsch-Gordan entries of a's paths) gives every ``(m3 = +-m, output
    type t, u, path)`` column; one elementwise product applies the per-edge weights (their
    order matches, so it is a contiguous product broadcast over the sign of m3), and a matmul
    per output type with the linear's weights finishes. All work is matmuls and contiguous
    products: no gathers over the wide product and no short inner loops, which on a CPU cost
    more than the arithmetic.

    Args:
        tp: e3nn ``TensorProduct`` with weighted 'uvu' paths and the spherical harmonics
            (one of each degree 0..lmax, in order) as second input.
        lin: the e3nn ``Linear`` applied to ``tp``'s output (no bias); its weights are read
            at each call, so it stays the owner of its parameters.

    Shapes: ``x (E, tp.irreps_in1.dim)``, ``weight (E, tp.weight_numel)`` *permuted by*
    ``weight_order`` (``tp_weight[:, weight_order]``), ``sh_m0 (E, lmax+1)`` ->
    ``(E, lin.irreps_out.dim)``, all in the edge frame.
    """

    def __init__(self, tp: o3.TensorProduct, lin: o3.Linear) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = tp.irreps_in1, lin.irreps_out
        in1, in2, mid = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        if any(ins.connection_mode != "uvu" or not ins.has_weight for ins in tp.instructions) \
                or [ir.l for _, ir in in2] != list(range(len(in2))) \
                or any(m != 1 for m, _ in in2) or lin.bias.numel():
            raise ValueError("FrameProduct needs weighted 'uvu' paths with 1x0e+1x1o+... "
                             "harmonics and a linear without bias")
        w_start = [0]
        for ins in tp.instructions:
            w_start.append(w_start[-1] + in1[ins.i_in1].mul)
        self.mid_chan, self.out_chan = _channel_offsets(mid), _channel_offsets(lin.irreps_out)
        self.types = [ir for ir in sorted(self.mid_chan.total) if self.out_chan.total.get(ir, 0)]
        # the product's columns: for input irrep a, output type t, channel u, path a -> t.
        # The weights are permuted into this order; the linear's rows of type t follow the
        # same (a, u, path) order, so the columns of (a, t) are rows j0:j1 of its matrix.
        cols: dict[o3.Irrep, list[tuple[int, int, object]]] = {ir: [] for ir in self.types}
        weight_order, sh_of_weight, parts = [], [], {}
        for a, (mul, _) in enumerate(in1):
            for ir_t in self.types:
                paths = [ins for ins in tp.instructions
                         if ins.i_in1 == a and mid[ins.i_out].ir == ir_t]
                if not paths:
                    continue
                j0 = len(cols[ir_t])
                parts[a, ir_t] = (len(weight_order), j0, j0 + mul * len(paths))
                for u in range(mul):
                    for ins in paths:
                        cols[ir_t].append((a, u, ins))
                        weight_order.append(w_start[tp.instructions.index(ins)] + u)
                        sh_of_weight.append(in2[ins.i_in2].ir.l)
        for k, ir in enumerate(self.types):
            rows = [self.mid_chan.start[ins.i_out] + u for _, u, ins in cols[ir]]
            self.register_buffer(f"rows_{k}", torch.tensor(rows), persistent=False)
        self.register_buffer("weight_order", torch.tensor(weight_order), persistent=False)
        self.register_buffer("sh_index", torch.tensor(sh_of_weight), persistent=False)
        # per (|m|, a): matrix (u, sign of m1) -> (sign of m3, [t, u, path] of a's columns)
        self.blocks = []
        for m in range(max(ir.l for _, ir in in1) + 1):
            signs = (1, -1) if m else (1,)
            for a, (mul, ir_a) in enumerate(in1):
                mine = [(ir_t, *parts[a, ir_t]) for ir_t in self.types
                        if (a, ir_t) in parts and ir_t.l >= m]
                if ir_a.l < m or not mine:
                    continue
                w0, w1 = mine[0][1], mine[-1][1] + mine[-1][3] - mine[-1][2]
                mat = torch.zeros(mul, len(signs), len(signs), w1 - w0, dtype=torch.float64)
                out_parts = []
                for ir_t, wk, j0, j1 in mine:
                    for j in range(j0, j1):
                        _, u, ins = cols[ir_t][j]
                        l2 = in2[ins.i_in2].ir.l
                        w3j = o3.wigner_3j(ir_a.l, l2, ir_t.l, dtype=torch.float64)
                        for i1, s1 in enumerate(signs):
                            for i3, s3 in enumerate(signs):
                                mat[u, i1, i3, wk - w0 + j - j0] = ins.path_weight * w3j[
                                    ir_a.l + s1 * m, l2, ir_t.l + s3 * m]
                    out_parts.append((ir_t, wk - w0, j0, j1))
                start = in1.slices()[a].start
                xcol = [start + u * ir_a.dim + ir_a.l + s * m for u in range(mul) for s in signs]
                k = len(self.blocks)
                self.register_buffer(f"xcol_{k}", torch.tensor(xcol), persistent=False)
                self.register_buffer(f"cg_{k}", mat.reshape(mul * len(signs), -1).to(
                    torch.get_default_dtype()), persistent=False)
                self.blocks.append((m, len(signs), w0, w1, out_parts))

    def type_matrices(self, lin: o3.Linear) -> dict[o3.Irrep, torch.Tensor]:
        """The linear map's ``(J_t, C_t)`` matrix per irrep type, path weights included, rows
        in the product's column order."""
        mats = {ir: lin.weight.new_zeros(self.mid_chan.total[ir], self.out_chan.total[ir])
                for ir in self.types}
        for i_in, i_out, w in linear_blocks(lin):
            ir = self.mid_chan.irrep[i_in]
            if ir in mats:
                r, c = self.mid_chan.start[i_in], self.out_chan.start[i_out]
                mats[ir][r:r + w.shape[0], c:c + w.shape[1]] = w
        return {ir: mats[ir].index_select(0, getattr(self, f"rows_{k}"))
                for k, ir in enumerate(self.types)}

    def forward(self, x: torch.Tensor, weight: torch.Tensor, sh_m0: torch.Tensor,
                lin: o3.Linear) -> torch.Tensor:
        e = x.shape[0]
        # each path also scales with its Y_l2 (sqrt(2 l2 + 1), or 0 for l2 > 0 on self-loops)
        weight = weight * sh_m0.index_select(1, self.sh_index)
        mats = self.type_matrices(lin)
        acc: dict[tuple[o3.Irrep, int], torch.Tensor] = {}
        for k, (m, ns, w0, w1, parts) in enumerate(self.blocks):
            z = x.index_select(1, getattr(self, f"xcol_{k}")) @ getattr(self, f"cg_{k}")
            z = z.view(e, ns, w1 - w0) * weight[:, None, w0:w1]
            for ir, off, j0, j1 in parts:
                out = z[:, :, off:off + j1 - j0].reshape(e * ns, -1) @ mats[ir][j0:j1]
                out = out.view(e, ns, -1)
                acc[ir, m] = out if (ir, m) not in acc else acc[ir, m] + out
        # (E, 2l+1, C_t) per type, rows m3 = -l..l, then each output irrep channel-major
        by_type = {}
        for ir in self.types:
            # acc[ir, m] holds rows (+m, -m); m3 = -l..l picks one row each
            rows = [acc[ir, abs(m3)][:, int(m3 < 0):int(m3 < 0) + 1]
                    for m3 in range(-ir.l, ir.l + 1)]
            by_type[ir] = torch.cat(rows, dim=1)
        pieces = []
        for k, (mul, ir) in enumerate(self.irreps_out):
            if ir in by_type:
                c = self.out_chan.start[k]
                pieces.append(by_type[ir][:, :, c:c + mul].transpose(1, 2).reshape(e, -1))
            else:  # no path reaches this output: e3nn's Linear gives zeros too
                pieces.append(x.new_zeros(e, mul * ir.dim))
        return torch.cat(pieces, dim=-1)


def linear_blocks(lin: o3.Linear) -> list[tuple[int, int, torch.Tensor]]:
    """An e3nn ``Linear`` (no bias) as ``(i_in, i_out, W)`` per instruction, W of shape
    ``(mul_in, mul_out)`` with the path weight included: ``out_(i_out) += W^T x_(i_in)``
    per component. Differentiable in ``lin.weight``."""
    if lin.bias.numel():
        raise ValueError("linear_blocks: e3nn Linear with biases is not supported")
    out, off = [], 0
    for ins in lin.instructions:
        m_in, m_out = ins.path_shape
        w = lin.weight[off:off + m_in * m_out].view(m_in, m_out)
        out.append((ins.i_in, ins.i_out, ins.path_weight * w))
        off += m_in * m_out
    return out


def linear_matrix(lin: o3.Linear) -> torch.Tensor:
    """An e3nn ``Linear`` (no bias) as one ``(irreps_in.dim, irreps_out.dim)`` matrix M with
    ``x @ M == lin(x)``: on large batches one dense matmul beats e3nn's per-path products."""
    mat = lin.weight.new_zeros(lin.irreps_in.dim, lin.irreps_out.dim)
    s_in, s_out = lin.irreps_in.slices(), lin.irreps_out.slices()
    for i_in, i_out, w in linear_blocks(lin):
        eye = torch.eye(lin.irreps_in[i_in].ir.dim, dtype=w.dtype, device=w.device)
        mat[s_in[i_in], s_out[i_out]] = torch.kron(w, eye)  # channel-major, component-minor
    return mat


class _Channels(NamedTuple):
    irrep: list[o3.Irrep]        # type of each irreps entry
    start: list[int]             # channel offset of each entry within its type
    total: dict[o3.Irrep, int]   # channels per type


def _channel_offsets(irreps: o3.Irreps) -> _Channels:
    total: dict[o3.Irrep, int] = {}
    start = []
    for mul, ir in irreps:
        start.append(total.get(ir, 0))
        total[ir] = total.get(ir, 0) + mul
    return _Channels([ir for _, ir in irreps], start, total)
