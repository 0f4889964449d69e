"""e3nn ``Linear`` maps run as gathers and per-type matmuls (their parameters stay e3nn's).

e3nn's ``Linear`` runs one small product per path, and assembling its weights into a matrix
block by block costs an operation (and, in backward, a zero-filled tensor) per block. Here
the weights of all paths are gathered from ``lin.weight`` with one precomputed index, and
the map runs as one matmul per irrep type. Same results to round-off (tests), same
checkpoints: the modules own no parameters and read the ``Linear``'s weights at each call.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn


def linear_sources(lin: o3.Linear) -> tuple[list[list[int]], list[list[float]]]:
    """An e3nn ``Linear`` (no bias) as a channel map: ``index[i][j]`` is the position in
    ``lin.weight`` plus one (0: no path) of the weight from input channel i to output channel
    j (channels of all irreps entries concatenated), ``scale[i][j]`` its path weight."""
    if lin.bias.numel():
        raise ValueError("e3nn Linear with biases is not supported")
    c_in = cumulative([mul for mul, _ in lin.irreps_in])
    c_out = cumulative([mul for mul, _ in lin.irreps_out])
    n_in, n_out = lin.irreps_in.num_irreps, lin.irreps_out.num_irreps
    index = [[0] * n_out for _ in range(n_in)]
    scale = [[0.0] * n_out for _ in range(n_in)]
    off = 0
    for ins in lin.instructions:
        m_in, m_out = ins.path_shape
        for r in range(m_in):
            for c in range(m_out):
                index[c_in[ins.i_in] + r][c_out[ins.i_out] + c] = off + r * m_out + c + 1
                scale[c_in[ins.i_in] + r][c_out[ins.i_out] + c] = ins.path_weight
        off += m_in * m_out
    return index, scale


def gather_weights(weight: torch.Tensor, index: torch.Tensor, scale: torch.Tensor
                   ) -> torch.Tensor:
    """``scale * [0, weight][index]``: a matrix assembled from a parameter vector in one
    gather (one backward op) instead of a slice assignment per block."""
    lead = weight.shape[:-1]   # a table of weight vectors (T, numel) gives (T, *index.shape)
    padded = torch.cat([weight.new_zeros(*lead, 1), weight], dim=-1)
    # index_select, not padded[..., index]: its backward is an index_add, 2x faster on the
    # CPU than the accumulating index_put of advanced indexing
    return padded.index_select(-1, index.reshape(-1)).view(*lead, *index.shape) * scale


class TypedLinear(nn.Module):
    """An e3nn ``Linear`` (no bias) as one matmul per irrep type: the channels of all input
    entries of a type against all output entries of that type, with the components as batch
    rows, ``(E * (2l+1), mul_in) @ (mul_in, mul_out)``. Its weights are gathered from
    ``lin.weight`` in one gather per call (owns no parameters). Same result as e3nn's per-path
    products in a handful of operations per type, and without the zero blocks of one dense
    ``(irreps_in.dim, irreps_out.dim)`` matrix (14x more multiply-adds at DeepH-E3's widths).

    With ``inputs`` (entries of ``lin.irreps_in``), the restriction of the map to those
    entries: ``x`` then holds only them (``irreps_in`` lists them).

    Shapes: ``x (E, irreps_in.dim)`` -> ``(E, lin.irreps_out.dim)``.
    """

    def __init__(self, lin: o3.Linear, inputs: list[int] | None = None) -> None:
        super().__init__()
        entries = list(range(len(list(lin.irreps_in)))) if inputs is None else list(inputs)
        # with ``inputs``, the map restricted to those input entries (the rest read as zero):
        # by linearity, lin(x) is the sum of its restrictions to disjoint parts of x
        self.irreps_in = o3.Irreps([lin.irreps_in[k] for k in entries])
        self.irreps_out = lin.irreps_out
        index, scale = linear_sources(lin)
        c_in = cumulative([mul for mul, _ in lin.irreps_in])
        c_out = cumulative([mul for mul, _ in lin.irreps_out])
        self.types = []  # (irrep, input entries (of irreps_in), output entries, mul_in, mul_out)
        idx, sc = [], []
        for ir in sorted({ir for _, ir in lin.irreps_out}):
            ins = [k for k in entries if lin.irreps_in[k].ir == ir and lin.irreps_in[k].mul > 0]
            outs = [k for k, (m, i) in enumerate(lin.irreps_out) if i == ir and m > 0]
            rows = [c_in[k] + r for k in ins for r in range(lin.irreps_in[k].mul)]
            cols = [c_out[k] + c for k in outs for c in range(lin.irreps_out[k].mul)]
            if not rows or not cols or not any(index[r][c] for r in rows for c in cols):
                continue
            idx += [index[r][c] for r in rows for c in cols]
            sc += [scale[r][c] for r in rows for c in cols]
            self.types.append((ir, [entries.index(k) for k in ins], outs, len(rows), len(cols)))
        self.register_buffer("index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer("scale", torch.tensor(sc).to(torch.get_default_dtype()),
                             persistent=False)

    def forward(self, x: torch.Tensor, lin: o3.Linear) -> torch.Tensor:
        return self._run(x, gather_weights(lin.weight, self.index, self.scale)[None], None)

    def forward_table(self, x: torch.Tensor, table: torch.Tensor, select: torch.Tensor
                      ) -> torch.Tensor:
        """Item e through the linear whose weights (``lin.weight`` layout) are
        ``table[select[e]]``: all T maps run on every item as one matmul per irrep type
        (T times the multiply-adds, no per-item weight copies), then each item keeps its own.

        Shapes: ``x (E, irreps_in.dim), table (T, weight_numel), select (E,)`` ->
        ``(E, irreps_out.dim)``.
        """
        return self._run(x, gather_weights(table, self.index, self.scale), select)

    def _run(self, x: torch.Tensor, mats: torch.Tensor, select: torch.Tensor | None
             ) -> torch.Tensor:
        e, t = x.shape[0], mats.shape[0]
        pieces = x.split([mul * ir.dim for mul, ir in self.irreps_in], dim=-1)
        mats = mats.split([a * b for *_, a, b in self.types], dim=-1)
        out: dict[int, torch.Tensor] = {}
        for (ir, ins, outs, m_in, m_out), w in zip(self.types, mats, strict=True):
            xs = [pieces[k].view(e, -1, ir.dim) for k in ins]
            xt = xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)   # (E, m_in, d)
            xt = xt.transpose(1, 2).reshape(e * ir.dim, m_in)
            if select is None or t == 1:   # one map for every item (one species: no gather)
                y = xt @ w.view(m_in, m_out)
            else:   # (E d, T m_out): every map, then each item's own
                y = (xt @ w.view(t, m_in, m_out).transpose(0, 1).reshape(m_in, t * m_out))
                y = y.view(e, ir.dim, t, m_out).gather(
                    2, select.view(e, 1, 1, 1).expand(e, ir.dim, 1, m_out))
            y = y.view(e, ir.dim, m_out).transpose(1, 2)             # (E, m_out, d)
            for k, yk in zip(outs, y.split([self.irreps_out[k].mul for k in outs], dim=1),
                             strict=True):
                out[k] = yk.reshape(e, -1)
        return torch.cat([out[k] if k in out else x.new_zeros(e, mul * ir.dim)
                          for k, (mul, ir) in enumerate(self.irreps_out)], dim=-1)


def cumulative(sizes: list[int]) -> list[int]:
    out, acc = [], 0
    for n in sizes:
        out.append(acc)
        acc += n
    return out
