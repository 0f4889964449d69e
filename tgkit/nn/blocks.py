"""DeepH-E3-style encoder blocks: equivariant convolution, gate, layer norm, node/edge updates.

Written for torch 2.x and e3nn 0.6 without torch_scatter or torch_geometric: messages are
summed onto nodes with ``index_add_``.
"""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from tgkit.nn.edge_frame import EdgeFrame, FrameProduct, rotate, rotate_edges_last
from tgkit.nn.linear import TypedLinear


class Gate(nn.Module):
    """Gated non-linearity: SiLU on 0e, tanh on 0o (keeps odd scalars odd), and every l > 0
    channel times the sigmoid of its own 0e gate scalar.

    A small replacement for ``e3nn.nn.Gate`` (whose fx code generation dominates model
    construction time); the gates are taken after the scalars in the input.

    Shapes: ``(..., irreps_in.dim)`` with irreps_in = scalars + gates + gated ->
    ``(..., irreps_out.dim)`` with irreps_out = scalars + gated; ``dim=0``: features first,
    ``(irreps_in.dim, ...)`` (the edges-last prediction path).
    """

    def __init__(self, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        irreps_out = o3.Irreps(irreps_out)
        self.scalars = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
        self.gated = o3.Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
        gates = o3.Irreps(f"{self.gated.num_irreps}x0e") if self.gated.num_irreps else o3.Irreps()
        self.irreps_in = self.scalars + gates + self.gated
        self.irreps_out = self.scalars + self.gated
        odd = [ir.p == -1 for m, ir in self.scalars for _ in range(m)]
        self.register_buffer("odd", torch.tensor(odd, dtype=torch.bool))
        self.any_odd = any(odd)
        gate_of = [k for k, (m, ir) in enumerate(
            [(1, ir) for mul, ir in self.gated for _ in range(mul)]) for _ in range(ir.dim)]
        self.register_buffer("gate_index", torch.tensor(gate_of, dtype=torch.int64))

    def forward(self, x: torch.Tensor, dim: int = -1) -> torch.Tensor:
        s, gates, gated = x.split([self.scalars.dim, self.gated.num_irreps, self.gated.dim],
                                  dim)
        # tanh only where odd scalars exist (never in the shipped models: one pass less)
        if self.any_odd:
            odd = self.odd if dim == -1 else self.odd.view(-1, *[1] * (x.dim() - 1))
            s = torch.where(odd, torch.tanh(s), nn.functional.silu(s))
        else:
            s = nn.functional.silu(s)
        # index_select, not advanced indexing: a plain gather, whose backward is index_add
        gates = torch.sigmoid(gates).index_select(dim, self.gate_index)
        return torch.cat([s, gated * gates], dim=dim)


class SpeciesLinear(nn.Module):
    """An equivariant linear map whose weights depend on a species (or species-pair) index.

    Equal to DeepH-E3's self-connection ``FullyConnectedTensorProduct(x, one-hot)``: the TP
    with a one-hot is a table of linear maps. Shapes: ``(E, irreps_in.dim), (E,)`` ->
    ``(E, irreps_out.dim)``.

    Up to :attr:`max_table_types` types (1 for one element, 4 species pairs for two), every
    map runs on every item and each item keeps its own (:meth:`TypedLinear.forward_table`);
    beyond that, e3nn's ``Linear`` with per-item weights. The latter copies the whole weight
    vector per item (5,504 floats per edge at DeepH-E3's widths) and zero-fills it again in
    backward: 12 % of a CPU training step in the zero-fills alone (bench/README.md).
    """

    max_table_types: int = 8

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, num_types: int) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.linear = o3.Linear(self.irreps_in, self.irreps_out, shared_weights=False)
        self.table = nn.Parameter(torch.randn(num_types, self.linear.weight_numel))
        self.typed = TypedLinear(self.linear)

    def forward(self, x: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        if self.table.shape[0] <= self.max_table_types:
            return self.typed.forward_table(x, self.table, types)
        return self.linear(x, self.table[types])


class EquivariantLayerNorm(nn.Module):
    """Layer norm over the channels of each item (node or edge), per degree.

    0e channels are centred and scaled by their standard deviation; every other irrep type is
    scaled by the RMS of its channels' norms (centring a vector would break equivariance).
    A per-channel weight multiplies each irrep, a bias is added to 0e only. Statistics are
    per item, so an item's output does not depend on the rest of the batch (DeepH-E3 pools
    over the graph; per item keeps the model local, which matters for large twisted cells).

    Shapes: ``(..., irreps.dim)`` -> ``(..., irreps.dim)``.
    """

    def __init__(self, irreps: o3.Irreps | str, eps: float = 1e-5) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.irreps_in.num_irreps))
        zero_e = o3.Irrep("0e")
        n0e = sum(m for m, ir in self.irreps_in if ir == zero_e)
        self.bias = nn.Parameter(torch.zeros(n0e))
        # per component: its irrep (channel), its irrep type, its 0e channel (or n0e: none).
        # The norm then runs as a fixed number of whole-tensor operations, whatever the irreps.
        types = sorted({ir for _, ir in self.irreps_in})
        irrep_of, type_of, bias_of = [], [], []
        chan, b = 0, 0
        for mul, ir in self.irreps_in:
            for _ in range(mul):
                irrep_of += [chan] * ir.dim
                type_of += [types.index(ir)] * ir.dim
                bias_of += [b if ir == zero_e else n0e] * ir.dim
                chan += 1
                b += ir == zero_e
        count = torch.tensor([sum(m for m, i in self.irreps_in if i == ir) for ir in types])
        member = torch.zeros(self.irreps_in.dim, len(types))
        member[torch.arange(self.irreps_in.dim), torch.tensor(type_of)] = 1.0
        is0e = torch.tensor([types[t] == zero_e for t in type_of], dtype=torch.get_default_dtype())
        self.center = n0e > 0
        dt = torch.get_default_dtype()
        self.register_buffer("mean_0e", is0e / max(n0e, 1), persistent=False)
        self.register_buffer("is_0e", is0e, persistent=False)
        self.register_buffer("type_sum", (member / count).to(dt), persistent=False)  # (dim, T)
        self.register_buffer("type_of", torch.tensor(type_of), persistent=False)
        self.register_buffer("irrep_of", torch.tensor(irrep_of), persistent=False)
        self.register_buffer("bias_of", torch.tensor(bias_of), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.center:  # centre the 0e channels on their mean
            x = x - (x * self.mean_0e).sum(-1, keepdim=True) * self.is_0e
        norm2 = x.pow(2) @ self.type_sum  # (..., T): mean squared norm per irrep type
        scale = (norm2 + self.eps).rsqrt().index_select(-1, self.type_of)
        bias = torch.cat([self.bias, self.bias.new_zeros(1)]).index_select(0, self.bias_of)
        return x * scale * self.weight.index_select(0, self.irrep_of) + bias


class EquivariantConv(nn.Module):
    """Tensor-product convolution: Linear -> TP with SH (radial-MLP weights) -> Linear -> Gate.

    The input is DeepH-E3's concatenation ``[node_i, node_j, edge]``. The tensor product uses
    depthwise ('uvu') paths whose per-edge weights come from an MLP of the radial basis, which
    is the per-channel radial modulation of DeepH-E3 folded into the product.

    Args:
        irreps_in: irreps of the per-edge input.
        irreps_sh: irreps of the spherical harmonics.
        irreps_out: irreps after the gate.
        num_radial: size of the radial basis input.
        radial_hidden: width of the radial MLP's two hidden layers.

    With an :class:`~tgkit.nn.edge_frame.EdgeFrame` (what the model passes) the product and
    the linear after it run in each edge's frame (:mod:`tgkit.nn.edge_frame`, equal to e3nn's
    product to round-off and several times faster); without one, e3nn's ``TensorProduct``
    with the full harmonics (the reference the tests compare against).

    Shapes: ``x (E, irreps_in.dim), sh (E, irreps_sh.dim), radial (E, num_radial)`` ->
    ``(E, irreps_out.dim)``.
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_out: o3.Irreps,
        num_radial: int,
        radial_hidden: int,
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.gate = Gate(self.irreps_out)
        wanted = {ir for _, ir in self.gate.irreps_in}
        mid = o3.Irreps([(m, ir) for m, ir in self.irreps_out if m > 0]).simplify()
        self.lin_pre = o3.Linear(self.irreps_in, mid)
        tp_out, instr = [], []
        for i1, (mul, ir1) in enumerate(mid):
            for i2, (_, ir2) in enumerate(irreps_sh):
                for ir in ir1 * ir2:
                    if ir in wanted:
                        instr.append((i1, i2, len(tp_out), "uvu", True))
                        tp_out.append((mul, ir))
        tp_out = o3.Irreps(tp_out)
        sorted_out, perm, _ = tp_out.sort()
        instr = [(a, b, perm[k], mode, w) for a, b, k, mode, w in instr]
        self.tp = o3.TensorProduct(
            mid, irreps_sh, sorted_out, instr, shared_weights=False, internal_weights=False
        )
        self.radial = nn.Sequential(
            nn.Linear(num_radial, radial_hidden), nn.SiLU(),
            nn.Linear(radial_hidden, radial_hidden), nn.SiLU(),
            nn.Linear(radial_hidden, self.tp.weight_numel),
        )
        self.lin_post = o3.Linear(sorted_out, self.gate.irreps_in)
        self.frame_product = FrameProduct(self.tp, self.lin_post)
        self.lin_pre_typed = TypedLinear(self.lin_pre)

    def forward(self, x: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                frame: EdgeFrame | None = None) -> torch.Tensor:
        if frame is None:
            return self.gate(self.lin_post(self.tp(self.lin_pre(x), sh, self.radial(radial))))
        return self.forward_mid(self.lin_pre_typed(x, self.lin_pre), sh, radial, frame)

    def forward_mid(self, h: torch.Tensor, sh: torch.Tensor, radial: torch.Tensor,
                    frame: EdgeFrame) -> torch.Tensor:
        """:meth:`forward` in the edge frame from ``h = lin_pre(x)`` on: ``h (E,
        lin_pre.irreps_out.dim)`` -> ``(E, irreps_out.dim)`` (blocks compute h in parts)."""
        # the radial MLP's last layer emits the weights in the frame product's order and scale
        last = frame.edges_last
        w = self.frame_product.frame_weights(self.radial[:-1](radial), self.radial[-1],
                                             frame.loops, last)
        if not last:
            h = rotate(h, self.lin_pre.irreps_out, frame.wigner, to_frame=True)
            h = self.gate(self.frame_product(h, w, self.lin_post))
            return rotate(h, self.gate.irreps_out, frame.wigner, to_frame=False)
        # prediction on a CPU: features (dim, E) from the first rotation to the last
        h = rotate_edges_last(h.t().contiguous(), self.lin_pre.irreps_out, frame.wigner, True)
        h = self.gate(self.frame_product(h, w, self.lin_post, edges_last=True), dim=0)
        return rotate_edges_last(h, self.gate.irreps_out, frame.wigner, False).t().contiguous()


class _UpdateBlock(nn.Module):
    """Shared parts: conv over [node_i, node_j, edge], species self-connection, skip, norm."""

    def __init__(
        self,
        irreps_node: o3.Irreps,
        irreps_edge: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_in: o3.Irreps,
        irreps_out: o3.Irreps,
        num_onehot: int,
        num_radial: int,
        radial_hidden: int,
    ) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        cat = o3.Irreps(irreps_node) + o3.Irreps(irreps_node) + o3.Irreps(irreps_edge)
        self.conv = EquivariantConv(cat, irreps_sh, self.irreps_out, num_radial, radial_hidden)
        self.lin_post = o3.Linear(self.irreps_out, self.irreps_out)
        self.lin_post_typed = TypedLinear(self.lin_post)  # runs lin_post (its parameters)
        # species-dependent linear map of the item's own features (DeepH-E3's self-connection)
        self.self_connection = SpeciesLinear(self.irreps_in, self.irreps_out, num_onehot)
        self.skip = (
            nn.Identity() if self.irreps_in == self.irreps_out
            else o3.Linear(self.irreps_in, self.irreps_out)
        )
        self.norm = EquivariantLayerNorm(self.irreps_out)
        # lin_pre restricted to the node_i, node_j and edge entries of its input (it is
        # linear): the node parts then run once per node instead of once per edge
        n_node, n_edge = len(list(o3.Irreps(irreps_node))), len(list(o3.Irreps(irreps_edge)))
        self.pre_parts = nn.ModuleList([
            TypedLinear(self.conv.lin_pre, list(range(a, b)))
            for a, b in ((0, n_node), (n_node, 2 * n_node), (2 * n_node, 2 * n_node + n_edge))])

    def node_terms(self, node: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The node_i and node_j parts of the convolution's first linear, per node: two
        ``(N, conv.lin_pre.irreps_out.dim)``; the model computes them once for all chunks."""
        lin = self.conv.lin_pre
        return self.pre_parts[0](node, lin), self.pre_parts[1](node, lin)

    def messages(self, node, edge, edge_index, sh, radial, frame=None,
                 node_terms=None) -> torch.Tensor:
        """The convolution over ``[node_i, node_j, edge]`` of each edge: ``(E, irreps_out.dim)``.

        Per edge, so it can run on any subset of the edges (the model's edge chunks). Given
        ``node_terms`` (:meth:`node_terms`, edge frame only), the first linear's node parts
        are gathered per edge and only its edge part runs per edge, instead of gathering and
        concatenating both nodes' features and running the linear on all three: ~4 % less
        CPU time in prediction. The model passes them only without autograd: in training
        the three partial linears dispatch more operations per step than one (what bounds
        a GPU step) and gained nothing on the CPU (bench/README.md).
        """
        if frame is None or node_terms is None:
            x = torch.cat([node[edge_index[0]], node[edge_index[1]], edge], dim=-1)
            return self.conv(x, sh, radial, frame)
        pi, pj = node_terms
        h = (pi.index_select(0, edge_index[0]) + pj.index_select(0, edge_index[1])
             + self.pre_parts[2](edge, self.conv.lin_pre))
        return self.conv.forward_mid(h, sh, radial, frame)


class NodeUpdateBlock(_UpdateBlock):
    """Node update: messages from every edge (i, j) summed onto node i, then residual + norm.

    ``forward`` = :meth:`messages` of the edges, summed onto their first node, then
    :meth:`update`; the model calls the two parts itself to sum messages chunk by chunk.

    Shapes: ``node (N, irreps_in.dim), edge (E, irreps_edge.dim)`` -> ``(N, irreps_out.dim)``.
    """

    def __init__(self, irreps_node, irreps_edge, irreps_sh, irreps_out, num_species,
                 num_radial, radial_hidden, avg_num_neighbors: float) -> None:
        super().__init__(irreps_node, irreps_edge, irreps_sh, irreps_node, irreps_out,
                         num_species, num_radial, radial_hidden)
        self.num_species = num_species
        self.inv_sqrt_neighbors = avg_num_neighbors ** -0.5

    def update(self, node: torch.Tensor, aggregated: torch.Tensor,
               species: torch.Tensor) -> torch.Tensor:
        """New node features from the old ones and the sum of their messages.

        Shapes: ``node (N, irreps_in.dim), aggregated (N, irreps_out.dim), species (N,)`` ->
        ``(N, irreps_out.dim)``.
        """
        upd = self.lin_post_typed(aggregated * self.inv_sqrt_neighbors, self.lin_post)
        return self.norm(self.skip(node) + (upd + self.self_connection(node, species)))

    def forward(self, node, edge, edge_index, species, sh, radial, frame=None,
                node_terms=None) -> torch.Tensor:
        msg = self.messages(node, edge, edge_index, sh, radial, frame, node_terms)
        agg = torch.zeros(node.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
        return self.update(node, agg.index_add_(0, edge_index[0], msg), species)


class EdgeUpdateBlock(_UpdateBlock):
    """Edge update from the new node features; self-connection on the species pair.

    Per edge: any subset of the edges can be updated on its own.

    Shapes: ``node (N, irreps_node.dim), edge (E, irreps_in.dim)`` -> ``(E, irreps_out.dim)``.
    """

    def __init__(self, irreps_node, irreps_edge, irreps_sh, irreps_out, num_species,
                 num_radial, radial_hidden) -> None:
        super().__init__(irreps_node, irreps_edge, irreps_sh, irreps_edge, irreps_out,
                         num_species**2, num_radial, radial_hidden)
        self.num_species = num_species

    def forward(self, node, edge, edge_index, species, sh, radial, frame=None,
                node_terms=None) -> torch.Tensor:
        upd = self.lin_post_typed(
            self.messages(node, edge, edge_index, sh, radial, frame, node_terms), self.lin_post)
        pair = species[edge_index[0]] * self.num_species + species[edge_index[1]]
        return self.norm(self.skip(edge) + upd + self.self_connection(edge, pair))
