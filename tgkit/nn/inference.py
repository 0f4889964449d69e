"""Memory-bounded inference: the forward pass of :class:`HamiltonianModel` over edge chunks.

Every per-edge operation of the model (messages, edge updates, TraceGrad on edges, the head)
acts on one edge at a time, and the only cross-edge operations are the sum of messages onto
nodes and the hermitian average of an edge with its reverse. So the forward pass can run
layer by layer over chunks of edges: messages are summed chunk by chunk into the node
accumulator, each edge update writes its slice of the new edge features, and the head decodes
every edge once and symmetrises each chunk with its reverse edges. Peak memory is then the
stored features (``E x irreps_hidden.dim`` per layer) and per-edge geometry (radial basis,
harmonics and edge-frame Wigner matrices, ~230 floats for lmax 4) plus one chunk's
activations, instead of every activation of every edge at once. The result equals
``model(graph)[H_PRED]`` up to float round-off (tested).
"""

from __future__ import annotations

import numpy as np
import torch

from tgkit import keys as K
from tgkit.data.deeph import Key, Structure
from tgkit.data.graph import graph_blocks, structure_to_graph, to_device
from tgkit.errors import DeepHFormatError, TgkitError
from tgkit.nn.heads import element_mask
from tgkit.nn.model import HamiltonianModel

# edges per chunk for CPU inference: a chunk's activations stay in cache (2048-16384 measured
# on the 2-core development VM: 4096 fastest; bench/README.md)
CPU_CHUNK_EDGES = 4096


def _chunks(num: int, size: int) -> list[slice]:
    return [slice(a, min(a + size, num)) for a in range(0, num, size)]


def predict_chunked(
    model: HamiltonianModel, graph: dict[str, torch.Tensor], chunk_edges: int = CPU_CHUNK_EDGES
) -> dict[str, torch.Tensor]:
    """Predicted blocks of every edge, computing at most ``chunk_edges`` edges at a time.

    Args:
        model: a model (training or inference copy); evaluated as is (call ``.eval()`` first
            for inference). Trace outputs are not computed.
        graph: a graph from :func:`tgkit.data.graph.structure_to_graph` or ``collate``.
        chunk_edges: edges per chunk; smaller lowers peak memory, larger lowers per-call
            overhead. The default keeps a chunk's activations in a CPU's cache (2048-4096
            measured fastest on the development CPU); on a GPU, larger chunks fill the device.

    Returns:
        ``{H_PRED: (E, B, B) or (E, 2B, 2B), H_MASK: same shape, bool}``, as ``model(graph)``.
        Run it under ``torch.no_grad()`` for inference (never ``torch.inference_mode()``: the
        Grad operator needs autograd internally).
    """
    if chunk_edges < 1:
        raise ValueError(f"chunk_edges must be positive, got {chunk_edges}")
    edge_index, species = graph[K.EDGE_INDEX], graph[K.SPECIES]
    vec, reverse = graph[K.EDGE_VEC], graph[K.REVERSE_EDGE]
    num_edges = edge_index.shape[1]
    if num_edges == 0:
        raise ValueError("the graph has no edges (every atom has at least its self-loop)")
    parts = _chunks(num_edges, chunk_edges)

    # per chunk, computed once for all layers: radial basis, harmonics and edge frames
    # (~230 floats per edge; recomputing the frames per layer would cost more than a conv)
    geometry = [model.edge_geometry(vec[c]) for c in parts]

    node = model.node_embedding(species)
    edge = torch.cat([model.edge_embedding(radial) for radial, _, _ in geometry])
    for k, (nb, eb) in enumerate(zip(model.node_blocks, model.edge_blocks, strict=True)):
        # node update (NodeUpdateBlock.forward, messages summed chunk by chunk)
        agg = None
        for c, (radial, sh, frame) in zip(parts, geometry, strict=True):
            msg = nb.messages(node, edge[c], edge_index[:, c], sh, radial, frame)
            if agg is None:
                agg = torch.zeros(node.shape[0], msg.shape[1], dtype=msg.dtype, device=msg.device)
            agg.index_add_(0, edge_index[0, c], msg)
        upd = nb.lin_post(agg * nb.inv_sqrt_neighbors) + nb.self_connection(node, species)
        node = nb.norm(nb.skip(node) + upd)
        if model.node_grads:
            node, _ = model.node_grads[k](node)
        # edge update (EdgeUpdateBlock.forward on each chunk), written into a new edge tensor
        new_edge = None
        for c, (radial, sh, frame) in zip(parts, geometry, strict=True):
            e = eb(node, edge[c], edge_index[:, c], species, sh, radial, frame)
            if model.edge_grads:
                e, _ = model.edge_grads[k](e)
            if new_edge is None:
                new_edge = torch.empty(num_edges, e.shape[1], dtype=e.dtype, device=e.device)
            new_edge[c] = e
        edge = new_edge
    # head: decode every edge once, then each chunk against its reverse edges, so the
    # hermitian average is exact
    y = torch.cat([model.head.linear(edge[c]) for c in parts])
    del edge
    h_out, m_out = None, None
    for c in parts:
        h = model.head.combine(y[c], y[reverse[c]])
        ei = edge_index[:, c]
        mask = element_mask(model.basis, species[ei[0]], species[ei[1]], model.spinful)
        if h_out is None:
            h_out = torch.empty((num_edges, *h.shape[1:]), dtype=h.dtype, device=h.device)
            m_out = torch.empty((num_edges, *mask.shape[1:]), dtype=torch.bool,
                                device=mask.device)
        h_out[c] = h * mask
        m_out[c] = mask
    return {K.H_PRED: h_out, K.H_MASK: m_out}


def predict_structure(
    model: HamiltonianModel,
    structure: Structure,
    cutoff: float | None = None,
    device: torch.device | str | None = None,
    chunk_edges: int | None = None,
) -> dict[Key, np.ndarray]:
    """Predicted blocks of one structure, ``{(Rx, Ry, Rz, i, j): block}`` in file (OpenMX)
    order and eV: what ``tgkit predict`` writes and what the equivariance and band checks use.

    Args:
        model: evaluated as it is (pass ``model.export_inference()`` or call ``.eval()``).
        structure: edges are its Hamiltonian keys; a structure without blocks (a rotated or
            generated geometry) takes the pairs within ``cutoff`` (default: the model's cutoff).
        device: where to run (default: the model's device).
        chunk_edges: run :func:`predict_chunked` with this many edges per chunk; 0: the
            plain forward pass over all edges at once; None (default): chunks of
            :data:`CPU_CHUNK_EDGES` on a CPU (fastest there, and bounded memory), all at once
            on a GPU.
    """
    if chunk_edges is not None and chunk_edges < 0:
        raise TgkitError(f"chunk_edges (--chunk-edges): must be 0 (all at once) or positive, "
                         f"got {chunk_edges}")
    param = next(model.parameters())
    if cutoff is None and not structure.hamiltonians:
        cutoff = model.model_config.cutoff
    try:
        g = structure_to_graph(structure, model.basis, cutoff=cutoff, dtype=param.dtype)
    except (ValueError, DeepHFormatError) as exc:  # an element or basis the model lacks
        raise TgkitError(f"{structure.name}: does not fit the model's basis "
                         f"{model.basis.orbital_types} ({exc})") from None
    g.pop(K.HAMILTONIAN, None)
    g[K.BATCH] = torch.zeros(structure.num_atoms, dtype=torch.long)
    g = to_device(g, param.device if device is None else device)
    with torch.no_grad():  # never inference_mode: the Grad operator needs autograd inside
        if chunk_edges is None:
            chunk_edges = CPU_CHUNK_EDGES if g[K.EDGE_VEC].device.type == "cpu" else 0
        if chunk_edges == 0:
            h = model(g)[K.H_PRED]
        else:
            h = predict_chunked(model, g, chunk_edges)[K.H_PRED]
    return graph_blocks({**g, K.HAMILTONIAN: h}, model.basis)
