"""Inference: prepare a structure's graph and run the model, in edge chunks on a CPU.

The chunked forward pass itself is the model's (:meth:`HamiltonianModel.forward` with
``chunk_edges``): every per-edge step runs chunk by chunk, so peak memory is the stored
features (``E x irreps_hidden.dim`` per layer) and per-edge geometry (radial basis, harmonics
and edge-frame Wigner matrices, ~230 floats for lmax 4) plus one chunk's activations, instead
of every activation of every edge at once. The result equals ``model(graph)[H_PRED]`` up to
float round-off (tested).
"""

from __future__ import annotations

import numpy as np
import torch

from tgkit import keys as K
from tgkit.data.deeph import Key, Structure
from tgkit.data.graph import graph_blocks, structure_to_graph, to_device
from tgkit.errors import DeepHFormatError, TgkitError
from tgkit.nn.model import HamiltonianModel
from tgkit.runtime import cpu_prediction, reuse_freed_memory

# edges per chunk for CPU inference: a chunk's activations stay in cache (2048-16384 measured
# on the 2-core development VM: 4096 fastest; bench/README.md)
CPU_CHUNK_EDGES = 4096


def predict_chunked(
    model: HamiltonianModel, graph: dict[str, torch.Tensor], chunk_edges: int = CPU_CHUNK_EDGES,
    workers: int | None = None,
) -> dict[str, torch.Tensor]:
    """``model(graph, chunk_edges=chunk_edges, workers=...)``: at most ``chunk_edges`` edges
    at a time.

    Args:
        model: a model (training or inference copy); evaluated as is (call ``.eval()`` first
            for inference).
        graph: a graph from :func:`tgkit.data.graph.structure_to_graph` or ``collate``.
        chunk_edges: edges per chunk; smaller lowers peak memory, larger lowers per-call
            overhead. The default keeps a chunk's activations in a CPU's cache (2048-4096
            measured fastest on the development CPU); on a GPU, larger chunks fill the device.
        workers: chunks computed at once, each in a thread with one torch thread
            (:func:`tgkit.nn.model.each_chunk`); None: :func:`default_workers`.

    Returns:
        The outputs of ``model(graph)`` (``H_PRED``, ``H_MASK``, ...). Run it under
        ``torch.no_grad()`` or ``torch.inference_mode()`` for inference: Grad's v is in closed
        form and needs no autograd (both measured equally fast, bench/README.md).
    """
    if chunk_edges < 1:
        raise ValueError(f"chunk_edges must be positive, got {chunk_edges}")
    if graph[K.EDGE_INDEX].shape[1] == 0:
        raise ValueError("the graph has no edges (every atom has at least its self-loop)")
    return _run(model, graph, chunk_edges, workers)


def _run(model: HamiltonianModel, graph: dict[str, torch.Tensor], chunk_edges: int,
         workers: int | None) -> dict[str, torch.Tensor]:
    """The model on ``graph`` with the CPU settings of prediction (allocator, workers)."""
    device = graph[K.EDGE_INDEX].device
    if device.type == "cpu":
        reuse_freed_memory()
    return model(graph, chunk_edges=chunk_edges,
                 workers=default_workers(device) if workers is None else workers)


def default_workers(device: torch.device) -> int:
    """Chunks to run at once: on a CPU without autograd, torch's thread count (one chunk per
    core, each on one thread, rather than torch's intra-op threads on every small op;
    bench/README.md); otherwise (GPU, or a graph for training) 1."""
    return torch.get_num_threads() if cpu_prediction(device) else 1


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
        chunk_edges: run the model with this many edges per chunk; 0: all edges at once;
            None (default): chunks of :data:`CPU_CHUNK_EDGES` on a CPU (fastest there, and
            bounded memory), all at once on a GPU.
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
    with torch.no_grad():  # inference_mode works too (closed-form Grad), no faster here
        if chunk_edges is None:
            chunk_edges = CPU_CHUNK_EDGES if g[K.EDGE_VEC].device.type == "cpu" else 0
        h = _run(model, g, chunk_edges, None)[K.H_PRED]
    return graph_blocks({**g, K.HAMILTONIAN: h}, model.basis)
