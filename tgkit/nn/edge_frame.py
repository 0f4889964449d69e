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
from tgkit.nn.compiled import call_compiled
from tgkit.nn.linear import cumulative, gather_weights, linear_sources


class EdgeFrame(NamedTuple):
    """Per-edge rotation onto the edge and the harmonics in that frame.

    ``wigner[l]``: ``(E, 2l+1, 2l+1)``, D^l of a rotation taking e3nn's y axis onto the edge,
    or ``(2l+1, 2l+1, E)`` when ``edges_last``;
    ``sh_m0``: ``(E, lmax+1)``, the m = 0 component of each degree of the edge's harmonics in
    the frame (``sqrt(2l+1)`` for an edge, ``(1, 0, ...)`` for a self-loop);
    ``loops``: ``(L,)`` int64, the rows that are self-loops (zero vectors);
    ``edges_last``: the layout of ``wigner`` (:func:`rotate` takes the first,
    :func:`rotate_edges_last` the second).
    """

    wigner: list[torch.Tensor]
    sh_m0: torch.Tensor
    loops: torch.Tensor
    edges_last: bool = False


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
               lmax_features: int | None = None, edges_last: bool = False) -> EdgeFrame:
    """The :class:`EdgeFrame` of cartesian edge vectors ``(E, 3)`` with their harmonics
    ``sh (E, (lmax+1)^2)`` (``EdgeSphericalHarmonics``); Wigner matrices up to the highest
    degree of the features to rotate, ``lmax_features`` (default ``lmax``), in the layout
    ``edges_last`` picks (:func:`tgkit.irreps.wigner_D_chain`)."""
    top = lmax if lmax_features is None else max(lmax, lmax_features)
    wigner = wigner_D_chain(edge_rotations(vec).to(sh.dtype), top, edges_last)
    # m = 0 component of D^T Y: column l of D^l against Y_l (exact zero elsewhere, by choice of D)
    if edges_last:
        m0 = [(sh[:, l * l:(l + 1) ** 2].t() * wigner[l][:, l]).sum(0) for l in range(lmax + 1)]
    else:
        m0 = [(sh[:, l * l:(l + 1) ** 2] * wigner[l][:, :, l]).sum(-1) for l in range(lmax + 1)]
    # the same test for a zero vector as the harmonics and the rotations use
    loops = torch.nonzero(vec.norm(dim=-1) < 1e-8).squeeze(1)
    return EdgeFrame(wigner, torch.stack(m0, dim=-1), loops, edges_last)


def rotate(x: torch.Tensor, irreps: o3.Irreps, wigner: list[torch.Tensor],
           to_frame: bool) -> torch.Tensor:
    """``D^T x`` (into the edge frame) or ``D x`` (back), per irrep of ``irreps``.

    Shapes: ``(E, irreps.dim)`` -> ``(E, irreps.dim)``, with ``(E, 2l+1, 2l+1)`` Wigner
    matrices (the training path; :func:`rotate_edges_last` for prediction on a CPU).
    """
    e = x.shape[0]
    out = []
    # one split (one backward op) rather than a slice per irrep, whose backward each
    # allocate and fill a zero tensor of x's size
    for (mul, ir), xs in zip(irreps, x.split([mul * ir.dim for mul, ir in irreps], dim=1),
                             strict=True):
        if ir.l > 0:
            d = wigner[ir.l] if to_frame else wigner[ir.l].transpose(1, 2)
            xs = torch.matmul(xs.reshape(e, mul, ir.dim), d).reshape(e, mul * ir.dim)
        out.append(xs)
    return torch.cat(out, dim=-1)


def rotate_edges_last(x: torch.Tensor, irreps: o3.Irreps, wigner: list[torch.Tensor],
                      to_frame: bool) -> torch.Tensor:
    """:func:`rotate` with edges last: features ``(irreps.dim, E)`` -> ``(irreps.dim, E)``
    with ``(2l+1, 2l+1, E)`` Wigner matrices (``EdgeFrame.edges_last``).

    Each irrep's rotation is then 2l+1 multiply-adds over contiguous rows of edges
    (vectorised) instead of E products of tiny matrices (3-9 wide, ~1.5 GFLOP/s on a CPU):
    ~3x faster even with a transpose on each side (``bench/bench_edges_last.py``). Not for
    autograd: its backward would be 2l+1 operations per irrep.
    """
    e = x.shape[1]
    out = torch.empty_like(x)
    start = 0
    for mul, ir in irreps:
        rows = slice(start, start + mul * ir.dim)
        start = rows.stop
        if ir.l == 0:
            out[rows] = x[rows]
            continue
        d = wigner[ir.l] if to_frame else wigner[ir.l].transpose(0, 1)   # [i, j, edge]
        xs, os = x[rows].view(mul, ir.dim, e), out[rows].view(mul, ir.dim, e)
        # out[u, j] = sum_i x[u, i] d[i, j], one i at a time over (u, j, edges)
        torch.mul(xs[:, :1], d[0], out=os)
        for i in range(1, ir.dim):
            os.addcmul_(xs[:, i:i + 1], d[i])
    return out


class FrameProduct(nn.Module):
    """``lin(tp(x, Y, w))`` for features ``x`` already in the edge frame.

    In the frame, a path ``l1 -> l3`` couples only components with ``|m1| = |m3|``, through
    the m2 = 0 Clebsch-Gordan entries. Each product column ``(sign of m3, input irrep a,
    channel u, path a -> t)`` is one or two input components times constants, so for each
    ``|m|`` the product is a gather and an elementwise product over all inputs at once; the
    per-edge weights multiply it elementwise, and one matmul per ``(|m|, output type t)`` with
    the linear's weights (gathered into one matrix per call) finishes, summing over inputs
    and paths. A final gather puts the result in the output irreps' layout. About 10
    operations per ``|m|``: the op count, not the arithmetic, bounds these small products on
    both CPU and GPU (bench/README.md, "GPU").

    Prediction on a CPU (no autograd) runs a second plan with the same columns on features
    laid out edges last, ``edges_last=True``: per ``(|m|, input irrep a)`` one matmul of a
    constant Clebsch-Gordan matrix with a's ``(u, sign of m1)`` rows, the per-edge weights as
    one product over rows, and per output type one matmul with the linear's weights
    (:meth:`_build_block_matrices`), every matmul with E columns. Forward only, it takes
    0.2-0.9x the gather plan's CPU time from 256 edges up, 2.2x at 64 edges
    (``bench/bench_frame_plans.py``); it has no backward.

    Args:
        tp: e3nn ``TensorProduct`` with weighted 'uvu' paths and the spherical harmonics
            (one of each degree 0..lmax, in order) as second input.
        lin: the e3nn ``Linear`` applied to ``tp``'s output (no bias); its weights are read
            at each call, so it stays the owner of its parameters.

    Shapes: ``x (E, tp.irreps_in1.dim)``, ``weight (E, tp.weight_numel)`` *permuted by*
    ``weight_order`` and *times each path's harmonic in the frame* (``tp_weight[:,
    weight_order] * sh_m0[:, sh_index]``: :meth:`frame_weights`) -> ``(E, lin.irreps_out.dim)``,
    all in the edge frame; with ``edges_last``, each of the three transposed.
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
        mid_chan, out_chan = _channel_offsets(mid), _channel_offsets(lin.irreps_out)
        types = [ir for ir in sorted(mid_chan.total) if out_chan.total.get(ir, 0)]
        # the weights are permuted into (input a, output type t, channel u, path) order
        weight_order, sh_of_weight = [], []
        columns = {}  # (a, t) -> [(weight position, u, path)]
        for a, (mul, _) in enumerate(in1):
            for ir_t in types:
                paths = [ins for ins in tp.instructions
                         if ins.i_in1 == a and mid[ins.i_out].ir == ir_t]
                for u in range(mul):
                    for ins in paths:
                        columns.setdefault((a, ir_t), []).append((len(weight_order), u, ins))
                        weight_order.append(w_start[tp.instructions.index(ins)] + u)
                        sh_of_weight.append(in2[ins.i_in2].ir.l)
        self.register_buffer("weight_order", torch.tensor(weight_order), persistent=False)
        self.register_buffer("sh_index", torch.tensor(sh_of_weight), persistent=False)
        # on every edge that is not a self-loop, a path's Y_l2 in the frame is sqrt(2 l2 + 1)
        # (its m = 0 component; component normalisation); on a self-loop it is 1 for l2 = 0
        # and 0 otherwise
        sh_of = torch.tensor(sh_of_weight, dtype=torch.float64)
        self.register_buffer("path_norm", (2 * sh_of + 1).sqrt().to(torch.get_default_dtype()),
                             persistent=False)
        self.register_buffer("on_loops", (sh_of == 0).to(torch.get_default_dtype()),
                             persistent=False)
        # the linear's dense (mid channel, output channel) sources, per channel of each type
        lin_index, lin_scale = linear_sources(lin)
        mid_c = cumulative([m for m, _ in mid])
        # output channels of each type, in the order of the type's entries
        out_cols = {ir: [c + k for c, (m, i) in zip(cumulative([m for m, _ in lin.irreps_out]),
                                                     lin.irreps_out, strict=True)
                         if i == ir for k in range(m)] for ir in types}
        # per |m|: gather indices and CG constants of the product, the weights' positions, and
        # per output type t (l >= m) the rows of the linear's matrix for its columns
        self.plan: list[tuple[int, list[int], list[int]]] = []   # (ns, W per type, C per type)
        self.plan_types: list[list[o3.Irrep]] = []
        self.plan_m: list[int] = []
        l_index, l_scale, big_offset = [], [], {}
        # the columns of x and of the weights that every |m| reads, all |m| in one index each:
        # one gather per call, so backward fills one zero tensor of x's (and the weights')
        # size instead of one per |m|
        gidx_all, widx_all = [], []
        offset = 0
        for m in range(max(ir.l for _, ir in in1) + 1):
            signs = (1, -1) if m else (1,)
            ns = len(signs)
            gidx = [[] for _ in signs]
            coef = [[[] for _ in signs] for _ in signs]  # [i1][i3] -> per column
            widx, widths, chans, ts = [], [], [], []
            for ir_t in types:
                if ir_t.l < m:
                    continue
                n_before = len(widx)
                for a, (_, ir_a) in enumerate(in1):
                    if ir_a.l < m or (a, ir_t) not in columns:
                        continue
                    start = in1.slices()[a].start
                    for pos, u, ins in columns[a, ir_t]:
                        l2 = in2[ins.i_in2].ir.l
                        w3j = o3.wigner_3j(ir_a.l, l2, ir_t.l, dtype=torch.float64)
                        widx.append(pos)
                        for i1, s1 in enumerate(signs):
                            gidx[i1].append(start + u * ir_a.dim + ir_a.l + s1 * m)
                            for i3, s3 in enumerate(signs):
                                coef[i1][i3].append(ins.path_weight * float(
                                    w3j[ir_a.l + s1 * m, l2, ir_t.l + s3 * m]))
                        row = mid_c[ins.i_out] + u
                        l_index.extend(lin_index[row][c] for c in out_cols[ir_t])
                        l_scale.extend(lin_scale[row][c] for c in out_cols[ir_t])
                if len(widx) > n_before:
                    widths.append(len(widx) - n_before)
                    chans.append(out_chan.total[ir_t])
                    ts.append(ir_t)
                    big_offset[m, ir_t] = offset
                    offset += ns * out_chan.total[ir_t]
            if not widx:
                continue
            k = len(self.plan)
            gidx_all.extend(i for row in gidx for i in row)
            widx_all.extend(widx)
            self.register_buffer(f"coef_{k}", torch.tensor(coef).to(torch.get_default_dtype()),
                                 persistent=False)   # (ns, ns, W): [i1, i3, column]
            self.plan.append((ns, widths, chans))
            self.plan_types.append(ts)
            self.plan_m.append(m)
        self.register_buffer("gidx_all", torch.tensor(gidx_all), persistent=False)
        self.register_buffer("widx_all", torch.tensor(widx_all), persistent=False)
        # split sizes of the two gathers: per |m| its weights, and per (|m|, sign of m1) its x
        self.w_sizes = [sum(ws) for _, ws, _ in self.plan]
        self.x_sizes = [n for (ns, _, _), n in zip(self.plan, self.w_sizes, strict=True)
                        for _ in range(ns)]
        self.register_buffer("lin_index", torch.tensor(l_index), persistent=False)
        self.register_buffer("lin_scale", torch.tensor(l_scale).to(torch.get_default_dtype()),
                             persistent=False)
        # sizes of the gathered linear matrices, per (|m|, output type) in plan order
        self.mat_sizes = [w * c for _, ws, cs in self.plan for w, c in zip(ws, cs, strict=True)]
        # output column <- row (sign of m3) of (|m3|, t), channel; past the end: a zero column
        # for outputs no path reaches (e3nn's Linear: zeros too)
        final = _output_index(lin.irreps_out, out_chan, big_offset, offset)
        self.register_buffer("final_index", torch.tensor(final), persistent=False)
        self._build_blocks(in1, in2, types, columns)
        self._build_block_matrices(out_chan)

    def _build_blocks(self, in1: o3.Irreps, in2: o3.Irreps, types: list[o3.Irrep],
                      columns: dict) -> None:
        """The block plan: per (|m|, a), rows (u, sign of m1) of x, a CG matrix to columns
        (sign of m3, [t, u, path] of a), the columns' weight range, and per type t the rows
        of the m = 0 linear matrix of t (rows in (a, u, path) order) that they meet."""
        row0 = {}  # (a, t) -> first row of a's columns in the m = 0 matrix of t
        for ir_t in types:
            j = 0
            for a in range(len(in1)):
                if (a, ir_t) in columns:
                    row0[a, ir_t] = j
                    j += len(columns[a, ir_t])
        self.blocks: list[tuple[int, int, int, int, list]] = []   # (m, ns, w0, w1, parts)
        for m in self.plan_m:
            signs = (1, -1) if m else (1,)
            ns = len(signs)
            for a, (mul, ir_a) in enumerate(in1):
                cols = [(ir_t, c) for ir_t in types if ir_t.l >= m and (a, ir_t) in columns
                        for c in columns[a, ir_t]]
                if ir_a.l < m or not cols:
                    continue
                w0, w1 = cols[0][1][0], cols[-1][1][0] + 1
                assert [c[0] for _, c in cols] == list(range(w0, w1))   # contiguous weights
                mat = torch.zeros(mul, ns, ns, w1 - w0, dtype=torch.float64)
                parts = []
                for ir_t, (pos, u, ins) in cols:
                    l2 = in2[ins.i_in2].ir.l
                    w3j = o3.wigner_3j(ir_a.l, l2, ir_t.l, dtype=torch.float64)
                    for i1, s1 in enumerate(signs):
                        for i3, s3 in enumerate(signs):
                            mat[u, i1, i3, pos - w0] = ins.path_weight * w3j[
                                ir_a.l + s1 * m, l2, ir_t.l + s3 * m]
                for ir_t in types:
                    if ir_t.l >= m and (a, ir_t) in columns:
                        n = len(columns[a, ir_t])
                        off = columns[a, ir_t][0][0] - w0
                        parts.append((ir_t, off, row0[a, ir_t], n))
                start = in1.slices()[a].start
                xcol = [start + u * ir_a.dim + ir_a.l + s * m for u in range(mul) for s in signs]
                k = len(self.blocks)
                self.register_buffer(f"xcol_{k}", torch.tensor(xcol), persistent=False)
                # transposed: (sign of m3, column) rows from (u, sign of m1) rows of x
                self.register_buffer(f"cg_{k}", mat.reshape(mul * ns, ns * (w1 - w0)).T.to(
                    torch.get_default_dtype()).contiguous(), persistent=False)
                self.blocks.append((m, ns, w0, w1, parts))

    def _build_block_matrices(self, out_chan: _Channels) -> None:
        """Per block (|m|, a) and output type t, the ``(C_t, n)`` matrix of the linear's
        weights that takes a's n columns of type t to t's C_t output channels. All of them
        are one gather from the linear's weight vector per call (``block_lin_index`` and
        ``block_lin_scale``: the m = 0 rows of ``lin_index``, which hold every (a, u, path)
        row of each type); ``block_parts[k]`` lists, for block k, ``(type, first column, n,
        C_t, start in the gathered matrices)``. The accumulator of each ``(|m|, t)`` is
        ``(ns, C_t, E)``, rows in the gather plan's column order, so ``final_index`` lays
        out both plans' outputs."""
        flat0, pos = {}, 0   # type -> start of its m = 0 matrix in lin_index
        for t, w, c in zip(self.plan_types[0], self.plan[0][1], self.plan[0][2], strict=True):
            flat0[t] = pos
            pos += w * c
        index, self.block_parts, start = [], [], 0
        for _, _, _, _, parts in self.blocks:
            items = []
            for t, off, j0, n in parts:
                c = out_chan.total[t]
                # (C_t, n): output channel, column
                index.append((flat0[t] + (j0 + torch.arange(n)) * c + torch.arange(c)[:, None])
                             .flatten())
                items.append((t, off, n, c, start))
                start += n * c
            self.block_parts.append(items)
        index = torch.cat(index)
        self.register_buffer("block_lin_index", self.lin_index[index], persistent=False)
        self.register_buffer("block_lin_scale", self.lin_scale[index], persistent=False)

    def frame_weights(self, hidden: torch.Tensor, last: nn.Linear, loops: torch.Tensor,
                      edges_last: bool = False) -> torch.Tensor:
        """The weights :meth:`forward` takes, from the radial MLP's last layer ``last`` (which
        emits ``tp``'s weights) and its input ``hidden (E, last.in_features)``: that layer's
        rows permuted by ``weight_order`` and scaled by ``path_norm``, so each path's harmonic
        costs nothing per edge; only the self-loops ``loops`` (``EdgeFrame.loops``) are then
        corrected (their l2 > 0 paths vanish). Per edge, the same as ``last(hidden)[:,
        weight_order] * sh_m0[:, sh_index]``, which was ~25 % of a CPU frame product.
        ``(E, weight_numel)``, or ``(weight_numel, E)`` with ``edges_last``."""
        order, norm = self.weight_order, self.path_norm
        weight, bias = last.weight[order] * norm[:, None], last.bias[order] * norm
        if edges_last:
            w = torch.addmm(bias[:, None], weight, hidden.t())
            if loops.numel():
                w.index_copy_(1, loops, w.index_select(1, loops) * self.on_loops[:, None])
            return w
        w = nn.functional.linear(hidden, weight, bias)
        if loops.numel():   # in place on a fresh tensor (addmm's backward does not read it)
            w.index_copy_(0, loops, w.index_select(0, loops) * self.on_loops)
        return w

    # torch.compile backend of the training path (tgkit.nn.compiled), or None: eager
    compile_backend: str | None = None

    def forward(self, x: torch.Tensor, weight: torch.Tensor, lin: o3.Linear,
                edges_last: bool = False) -> torch.Tensor:
        """The product, by the gather plan (``(E, dim)`` features, autograd, ``train.compile``)
        or, with ``edges_last``, by the block plan (``(dim, E)``, no autograd)."""
        if edges_last:
            return self._blocks(x, weight, gather_weights(lin.weight, self.block_lin_index,
                                                          self.block_lin_scale))
        return call_compiled(self, FrameProduct._forward, x, weight, lin)

    def _forward(self, x: torch.Tensor, weight: torch.Tensor, lin: o3.Linear) -> torch.Tensor:
        e = x.shape[0]
        mats = iter(gather_weights(lin.weight, self.lin_index, self.lin_scale).split(
            self.mat_sizes))
        outs = []
        ws = weight.index_select(1, self.widx_all).split(self.w_sizes, dim=1)
        xs = iter(x.index_select(1, self.gidx_all).split(self.x_sizes, dim=1))
        for k, ((ns, widths, chans), w) in enumerate(zip(self.plan, ws, strict=True)):
            coef = getattr(self, f"coef_{k}")
            z = 0.0
            for i1 in range(ns):  # (E, 1, W) * (ns, W): both signs of m3 at once
                z = z + (next(xs) * w)[:, None, :] * coef[i1]
            for zt, wt, ct in zip(z.split(widths, dim=-1), widths, chans, strict=True):
                outs.append((zt @ next(mats).view(wt, ct)).reshape(e, ns * ct))
        outs.append(x.new_zeros(e, 1))
        return torch.cat(outs, dim=1).index_select(1, self.final_index)

    def _blocks(self, x: torch.Tensor, weight: torch.Tensor, mats: torch.Tensor
                ) -> torch.Tensor:
        """The block plan, edges last: ``x (dim_in, E)``, ``weight (weight_numel, E)`` ->
        ``(dim_out, E)``. With edges as the matmuls' columns, every product is a large matmul
        (constant CG matrix, then per output type the linear's weights) and the weights one
        product over contiguous rows: about half the CPU time of the edges-first block plan
        it replaced (``bench/bench_frame_product.py --against 6c10e56``: 0.48x)."""
        e = x.shape[1]
        acc = {(m, t): x.new_zeros(ns, c, e)
               for m, ts, (ns, _, cs) in zip(self.plan_m, self.plan_types, self.plan, strict=True)
               for t, c in zip(ts, cs, strict=True)}
        for k, ((m, ns, w0, w1, _), parts) in enumerate(zip(self.blocks, self.block_parts,
                                                             strict=True)):
            z = getattr(self, f"cg_{k}") @ x.index_select(0, getattr(self, f"xcol_{k}"))
            z = z.view(ns, w1 - w0, e).mul_(weight[w0:w1])   # (sign of m3, column, edge)
            for t, off, n, c, start in parts:   # type t: (C_t, n) @ its n columns
                b = mats[start:start + n * c].view(c, n).expand(ns, c, n)
                acc[m, t].baddbmm_(b, z[:, off:off + n])
        outs = [a.view(-1, e) for a in acc.values()] + [x.new_zeros(1, e)]
        return torch.cat(outs).index_select(0, self.final_index)


class _Channels(NamedTuple):
    irrep: list[o3.Irrep]        # type of each irreps entry
    start: list[int]             # channel offset of each entry within its type
    total: dict[o3.Irrep, int]   # channels per type


def _output_index(out: o3.Irreps, out_chan: _Channels, base: dict, zero: int) -> list[int]:
    """Per output column (entry k, channel c, m3) of ``out``, its column in the plan's
    concatenated products: ``base[|m3|, type] + (m3 < 0) * C_type +`` the channel's offset
    within its type; ``zero`` where no path reaches ``(|m3|, type)``."""
    final = []
    for k, (mul, ir) in enumerate(out):
        for c in range(mul):
            for m3 in range(-ir.l, ir.l + 1):
                key = (abs(m3), ir)
                final.append(base[key] + int(m3 < 0) * out_chan.total[ir] + out_chan.start[k] + c
                             if key in base else zero)
    return final


def _channel_offsets(irreps: o3.Irreps) -> _Channels:
    total: dict[o3.Irrep, int] = {}
    start = []
    for mul, ir in irreps:
        start.append(total.get(ir, 0))
        total[ir] = total.get(ir, 0) + mul
    return _Channels([ir for _, ir in irreps], start, total)
