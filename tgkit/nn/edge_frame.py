"""The convolution's tensor product evaluated in each edge's own frame (the SO(2) / eSCN trick).

Rotate an edge so that it points along e3nn's polar axis (y): its spherical harmonics then have
only their m = 0 components, ``Y_l = s_l e_0``. A depthwise ('uvu') path ``(l1, l2) -> l3`` of
the product with ``Y`` becomes one fixed ``(2l1+1, 2l3+1)`` matrix, ``path_weight *
wigner_3j(l1, l2, l3)[:, m2=0, :]``, times the per-edge weight and ``s_l2``: O(L^2) work per
path instead of e3nn's O(L^3), and all paths that read the same input degree are one matmul.
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


def edge_frame(vec: torch.Tensor, sh: torch.Tensor, lmax: int) -> EdgeFrame:
    """The :class:`EdgeFrame` of cartesian edge vectors ``(E, 3)`` with their harmonics
    ``sh (E, (lmax+1)^2)`` (``EdgeSphericalHarmonics``)."""
    wigner = wigner_D_chain(edge_rotations(vec).to(sh.dtype), lmax)
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

    In the frame, a path ``l1 -> l3`` couples only components with ``|m1| = |m3|``. So the
    product is one dense matmul per ``|m|``: the ``|m|`` components of every input channel
    times a constant matrix (the m2 = 0 Clebsch-Gordan entries of every path) give, for each
    output type t and ``m3 = +-|m|``, all (input channel, path) columns J_t at once. The
    per-edge weights scale those columns, and one matmul with the linear's (J_t, C_t) matrix
    finishes. Everything is a large matmul or a contiguous elementwise product: no gathers
    over the wide product and no short inner loops (both cost more than the arithmetic on CPU).

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
        # columns J_t of each output type: (input irrep a, channel u, path a -> t)
        cols: dict[o3.Irrep, list[tuple[int, int, object]]] = {}
        weight_order, sh_of_weight, rows = [], [], {}
        for ir_t in self.types:
            cols[ir_t], rows[ir_t] = [], []
            for a, (mul, _) in enumerate(in1):
                paths = [ins for ins in tp.instructions
                         if ins.i_in1 == a and mid[ins.i_out].ir == ir_t]
                for u in range(mul):
                    for ins in paths:
                        cols[ir_t].append((a, u, ins))
                        weight_order.append(w_start[tp.instructions.index(ins)] + u)
                        sh_of_weight.append(in2[ins.i_in2].ir.l)
                        rows[ir_t].append(self.mid_chan.start[ins.i_out] + u)
        self.num_cols = {ir: len(c) for ir, c in cols.items()}
        for k, ir in enumerate(self.types):
            self.register_buffer(f"rows_{k}", torch.tensor(rows[ir]), persistent=False)
        self.register_buffer("weight_order", torch.tensor(weight_order), persistent=False)
        onehot = torch.zeros(len(in2), len(weight_order))
        onehot[torch.tensor(sh_of_weight), torch.arange(len(weight_order))] = 1.0
        self.register_buffer("sh_onehot", onehot, persistent=False)
        # one matmul per |m|: input components (a, u, +-m) -> (type t, m3 = +m / -m, J_t)
        self.m_types = []
        for m in range(max(ir.l for _, ir in in1) + 1):
            xin = [(a, u, s) for a, (mul, ir) in enumerate(in1) if ir.l >= m
                   for u in range(mul) for s in ((1, -1) if m else (1,))]
            types = [ir for ir in self.types if ir.l >= m]
            if not xin or not types:
                continue
            signs = (1, -1) if m else (1,)
            xcol = [in1.slices()[a].start + u * in1[a].ir.dim + in1[a].ir.l + s * m
                    for a, u, s in xin]
            mat = torch.zeros(len(xin), sum(len(signs) * len(cols[ir]) for ir in types),
                              dtype=torch.float64)
            row_of = {key: r for r, key in enumerate(xin)}
            off = 0
            for ir_t in types:
                for s3 in signs:
                    for j, (a, u, ins) in enumerate(cols[ir_t]):
                        l1, l2 = in1[a].ir.l, in2[ins.i_in2].ir.l
                        if l1 < m:
                            continue
                        w3j = o3.wigner_3j(l1, l2, ir_t.l, dtype=torch.float64)
                        for s1 in signs:
                            mat[row_of[(a, u, s1)], off + j] = (
                                ins.path_weight * w3j[l1 + s1 * m, l2, ir_t.l + s3 * m])
                    off += len(cols[ir_t])
            self.register_buffer(f"xcol_{m}", torch.tensor(xcol), persistent=False)
            self.register_buffer(f"cg_{m}", mat.to(torch.get_default_dtype()), persistent=False)
            self.m_types.append((m, types))
        self.lin_instructions = [(i.i_in, i.i_out, i.path_shape, i.path_weight)
                                 for i in lin.instructions]

    def type_matrices(self, lin_weight: torch.Tensor) -> dict[o3.Irrep, torch.Tensor]:
        """The linear map's ``(J_t, C_t)`` matrix per irrep type, path weights included."""
        mats = {ir: lin_weight.new_zeros(self.mid_chan.total[ir], self.out_chan.total[ir])
                for ir in self.types}
        off = 0
        for i_in, i_out, (m_in, m_out), pw in self.lin_instructions:
            ir = self.mid_chan.irrep[i_in]
            if ir in mats:
                r, c = self.mid_chan.start[i_in], self.out_chan.start[i_out]
                mats[ir][r:r + m_in, c:c + m_out] = pw * lin_weight[off:off + m_in * m_out].view(
                    m_in, m_out)
            off += m_in * m_out
        return {ir: mats[ir].index_select(0, getattr(self, f"rows_{k}"))
                for k, ir in enumerate(self.types)}

    def forward(self, x: torch.Tensor, weight: torch.Tensor, sh_m0: torch.Tensor,
                lin: o3.Linear) -> torch.Tensor:
        e = x.shape[0]
        weight = weight * (sh_m0 @ self.sh_onehot)  # each path also scales with its Y_l2
        w_of, off = {}, 0
        for ir in self.types:
            w_of[ir] = weight[:, None, off:off + self.num_cols[ir]]
            off += self.num_cols[ir]
        mats = self.type_matrices(lin.weight)
        rows: dict[o3.Irrep, dict[int, torch.Tensor]] = {ir: {} for ir in self.types}
        for m, types in self.m_types:
            z = x.index_select(1, getattr(self, f"xcol_{m}")) @ getattr(self, f"cg_{m}")
            off, signs = 0, ((1, -1) if m else (1,))
            for ir in types:
                n = len(signs) * self.num_cols[ir]
                zt = z[:, off:off + n].view(e, len(signs), -1) * w_of[ir]
                out = (zt.reshape(-1, zt.shape[-1]) @ mats[ir]).view(e, len(signs), -1)
                for k, s in enumerate(signs):
                    rows[ir][s * m] = out[:, k:k + 1]
                off += n
        # (E, 2l+1, C_t) per type, then each output irrep as (E, mul * (2l+1)), channel-major
        by_type = {ir: torch.cat([rows[ir][m3] for m3 in range(-ir.l, ir.l + 1)], dim=1)
                   for ir in self.types}
        pieces = []
        for k, (mul, ir) in enumerate(self.irreps_out):
            if ir in by_type:
                c = self.out_chan.start[k]
                pieces.append(by_type[ir][:, :, c:c + mul].transpose(1, 2).reshape(e, -1))
            else:  # no path reaches this output: e3nn's Linear gives zeros too
                pieces.append(x.new_zeros(e, mul * ir.dim))
        return torch.cat(pieces, dim=-1)


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
