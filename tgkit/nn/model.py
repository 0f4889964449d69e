"""The full model: DeepH-E3-style encoder + TraceGrad + Hamiltonian head; export and loading.

Forward API (for trainers and predictors)::

    model = HamiltonianModel(basis, spinful=False, model=ModelConfig(), tracegrad=TraceGradConfig())
    out = model(graph)  # graph from tgkit.data.graph.structure_to_graph / collate
    out = model(graph, chunk_edges=4096)  # the same, 4096 edges at a time (bounded memory)

``out`` holds (keys from :mod:`tgkit.keys`):

* ``H_PRED``  (E, B, B) float or (E, 2B, 2B) complex: predicted blocks, zero outside ``H_MASK``,
  hermitian across reverse edges;
* ``H_MASK``  (E, B, B) / (E, 2B, 2B) bool: elements to compare (masked MSE);
* ``BLOCK_MASK`` (E, P) bool: shell-pair blocks that exist;
* ``T_PRED``  (E, P): predicted traces, only for setups ``trace`` and ``tracegrad`` while the
  T decoder exists (dropped by :meth:`HamiltonianModel.export_inference`);
* ``T_LABEL`` (E, P): the Theorem-1 labels, whenever the graph carries ``HAMILTONIAN``.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from e3nn import o3
from torch import nn

from tgkit import keys as K
from tgkit.config import ModelConfig, TraceGradConfig, section_from_dict
from tgkit.errors import ConfigError, TgkitError
from tgkit.io_utils import damaged_file_errors, load_torch, save_torch
from tgkit.irreps import OrbitalBasis
from tgkit.nn.blocks import EdgeUpdateBlock, NodeUpdateBlock
from tgkit.nn.edge_frame import EdgeFrame, FrameProduct, edge_frame
from tgkit.nn.embedding import EdgeSphericalHarmonics, GaussianRadialBasis, SpeciesEmbedding
from tgkit.nn.heads import HamiltonianHead, block_mask, element_mask
from tgkit.nn.tracegrad import NoGrad, TraceDecoder, TraceGrad, trace_labels
from tgkit.runtime import cpu_prediction

FORMAT = "tgkit-model"
FORMAT_VERSION = 1


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    """Construct modules in ``dtype``: e3nn computes its CG buffers in the default dtype, so a
    float32-built model cast to float64 keeps float32-rounded coefficients (~1e-8 errors)."""
    old = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _post_edge_irreps(hidden: o3.Irreps, head: o3.Irreps) -> o3.Irreps:
    """Last edge features: every type of hidden or head, as many channels as either needs."""
    mul_h = {ir: m for m, ir in hidden.simplify()}
    mul_o = {ir: m for m, ir in head.simplify()}
    return o3.Irreps([(max(mul_h.get(ir, 0), mul_o.get(ir, 0)), ir)
                      for ir in sorted(set(mul_h) | set(mul_o))])


def edge_chunks(num_edges: int, chunk_edges: int | None) -> list[slice]:
    """Slices of at most ``chunk_edges`` edges covering ``range(num_edges)`` (None or 0: one)."""
    if chunk_edges is not None and chunk_edges < 0:
        raise ValueError(f"chunk_edges must be 0 (all at once) or positive, got {chunk_edges}")
    if not chunk_edges or chunk_edges >= num_edges:
        return [slice(0, num_edges)]
    return [slice(a, min(a + chunk_edges, num_edges)) for a in range(0, num_edges, chunk_edges)]


class _Rows:
    """An ``(E, ...)`` tensor written chunk by chunk (``put(slice, rows)``). A chunk that
    covers every edge is kept as it is, without a copy, so the all-at-once forward pass builds
    exactly the tensors (and autograd graph) it would without chunks. ``None`` rows (a NoGrad
    position's z) are skipped and leave ``value`` None."""

    def __init__(self, num: int) -> None:
        self.num = num
        self.value: torch.Tensor | None = None

    def put(self, chunk: slice, rows: torch.Tensor | None) -> None:
        if rows is None:
            return
        if chunk.start == 0 and chunk.stop == self.num:
            self.value = rows
            return
        if self.value is None:
            self.value = rows.new_empty((self.num, *rows.shape[1:]))
        self.value[chunk] = rows


def each_chunk(fn: Callable[[Any], Any], parts: list, workers: int = 1) -> Iterator[Any]:
    """``fn(c)`` for every item ``c`` of ``parts`` (the model's chunks), yielded in order.

    With ``workers > 1``, up to that many chunks run at once in Python threads, each with one
    torch thread (the ops release the GIL), at most ``2 * workers`` results ahead of the
    consumer. Each chunk's work is the same code as with ``workers=1`` on one torch thread,
    so the results are the same, bit for bit (tested), and whatever the consumer does with
    them (sums onto nodes, writes into per-edge buffers) happens in the caller's thread, in
    chunk order.
    Gradient and inference modes, which are per thread in torch, are carried into the workers.
    On 2 CPU cores this beats torch's own two intra-op threads, which spend ~40 % of the CPU
    time on small ops in coordination (bench/README.md).
    """
    if workers <= 1 or len(parts) <= 1:
        yield from map(fn, parts)
        return
    grad, infer = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(c: Any) -> Any:
        with torch.inference_mode(infer), torch.set_grad_enabled(grad):
            return fn(c)

    # initializer: one torch thread in each worker (the setting is per calling thread)
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        pending: deque[Future] = deque()
        for c in parts:
            pending.append(pool.submit(run, c))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class HamiltonianModel(nn.Module):
    """DeepH-E3 encoder with TraceGrad, predicting H blocks of every edge.

    Args:
        basis: the dataset's universal orbital basis (species and shells).
        spinful: predict complex SOC blocks (2B, 2B), spin-major.
        model: encoder widths and radial settings.
        tracegrad: the setup switch and invariant-branch widths.
        dtype: build (and keep) the parameters in this dtype; use float64 for exact tests.

    Shapes: see the module docstring; node features are ``irreps_hidden``, the last edge
    features ``irreps_post_edge`` (hidden plus the parities the head needs, e.g. 1e for p-p).

    The config key ``model.use_edge_frame`` (default true) runs the convolutions' tensor
    products in each edge's frame (:mod:`tgkit.nn.edge_frame`); false gives e3nn's
    ``TensorProduct``, the same predictions to round-off, several times slower.
    """

    def __init__(
        self,
        basis: OrbitalBasis,
        spinful: bool = False,
        model: ModelConfig | None = None,
        tracegrad: TraceGradConfig | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.basis, self.spinful = basis, bool(spinful)
        self.model_config = model or ModelConfig()
        self.tracegrad_config = tracegrad or TraceGradConfig()
        self.inference_only = False
        with default_dtype(dtype):
            self._build()
        if dtype is not None:
            self.to(dtype)

    def _build(self) -> None:
        cfg, tg = self.model_config, self.tracegrad_config
        num_species = len(self.basis.species)
        embed, hidden = o3.Irreps(cfg.irreps_embed), o3.Irreps(cfg.irreps_hidden)
        self.node_embedding = SpeciesEmbedding(num_species, embed)
        self.radial_basis = GaussianRadialBasis(cfg.num_radial, cfg.cutoff)
        self.edge_embedding = nn.Linear(cfg.num_radial, embed.dim)  # scalars, like DeepH-E3
        self.spherical_harmonics = EdgeSphericalHarmonics(cfg.lmax)
        sh = self.spherical_harmonics.irreps_out
        # the head's irreps fix the last edge irreps
        head_irreps = HamiltonianHead.output_irreps(self.basis, self.spinful)
        self.irreps_post_edge = _post_edge_irreps(hidden, head_irreps)
        self.head = HamiltonianHead(self.irreps_post_edge, self.basis, self.spinful)

        self.node_blocks, self.edge_blocks = nn.ModuleList(), nn.ModuleList()
        node_irreps = edge_irreps = embed
        for k in range(cfg.num_blocks):
            edge_out = self.irreps_post_edge if k == cfg.num_blocks - 1 else hidden
            self.node_blocks.append(NodeUpdateBlock(
                node_irreps, edge_irreps, sh, hidden, num_species, cfg.num_radial,
                cfg.radial_hidden, cfg.avg_num_neighbors))
            self.edge_blocks.append(EdgeUpdateBlock(
                hidden, edge_irreps, sh, edge_out, num_species, cfg.num_radial,
                cfg.radial_hidden))
            node_irreps, edge_irreps = hidden, edge_out
        # the edge frames rotate every convolution's features: Wigner-D up to their top degree
        self.lmax_features = max(ir.l for b in [*self.node_blocks, *self.edge_blocks]
                                 for irreps in (b.conv.lin_pre.irreps_out, b.conv.irreps_out)
                                 for _, ir in irreps)
        reached = {ir for _, ir in self.edge_blocks[-1].conv.tp.irreps_out}
        missing = [str(ir) for _, ir in self.irreps_post_edge if ir not in reached]
        if missing:
            raise ConfigError(
                f"model.irreps_hidden/lmax: the last tensor product cannot produce {missing}, "
                f"which the orbital basis {self.basis.orbital_types} needs")

        def branch(irreps: o3.Irreps, use_grad: bool) -> TraceGrad:
            return TraceGrad(irreps, tg.num_invariants, tg.hidden, tg.num_z, use_grad,
                             zero_init=tg.grad_init == "zero", normalize=tg.grad_norm)

        # Grad: o = f + v after the node and edge updates that tracegrad.grad_where names
        # (the paper: all of them); Trace only: z on the last edges. A position without Grad
        # holds a NoGrad, so indexing stays per block.
        last = cfg.num_blocks - 1
        on_node = [tg.use_grad and (tg.grad_where in ("both", "node") or
                                    (tg.grad_where == "last" and k == last))
                   for k in range(cfg.num_blocks)]
        on_edge = [tg.use_grad and (tg.grad_where in ("both", "edge") or
                                    (tg.grad_where == "last" and k == last))
                   for k in range(cfg.num_blocks)]
        self.node_grads = nn.ModuleList(
            [branch(hidden, True) if g else NoGrad() for g in on_node]
            if any(on_node) else [])
        self.edge_grads = nn.ModuleList(
            [branch(b.irreps_out, True) if g else NoGrad()
             for g, b in zip(on_edge, self.edge_blocks, strict=True)] if any(on_edge) else [])
        # z of the last edges feeds the T decoder: from its Grad module, or a Trace-only branch
        self.trace_branch = (
            branch(self.irreps_post_edge, False)
            if tg.use_trace and not (self.edge_grads and on_edge[last]) else None)
        self.trace_decoder = (
            TraceDecoder(tg.num_z, tg.decoder_hidden, len(self.basis.shell_pairs()))
            if tg.use_trace else None)

    @property
    def setup(self) -> str:
        return self.tracegrad_config.setup

    def edge_geometry(self, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                         EdgeFrame | None]:
        """Radial basis, spherical harmonics and edge frame (None when
        ``model.use_edge_frame`` is off) of cartesian edge vectors ``(E, 3)``: computed once,
        shared by all blocks. For prediction on a CPU (:func:`tgkit.runtime.cpu_prediction`)
        the frame's Wigner matrices are laid out edges last, which makes them and the
        rotations ~3-4x faster there (:func:`tgkit.nn.edge_frame.rotate_edges_last`);
        training keeps one batched product per irrep, fewer operations to differentiate."""
        sh = self.spherical_harmonics(vec)
        frame = (edge_frame(vec, sh, self.model_config.lmax, self.lmax_features,
                            cpu_prediction(vec.device))
                 if self.model_config.use_edge_frame else None)
        return self.radial_basis(vec.norm(dim=-1)), sh, frame

    def forward(self, graph: dict[str, torch.Tensor], chunk_edges: int | None = None,
                workers: int = 1) -> dict[str, torch.Tensor]:
        """Predict the blocks of every edge of ``graph`` (see the module docstring).

        Args:
            graph: from :func:`tgkit.data.graph.structure_to_graph` or ``collate``.
            chunk_edges: compute at most this many edges at a time; None or 0: all at once
                (one chunk: the same code). Every step but two acts on each edge alone
                (geometry, messages, edge updates, Grad on edges, the head's decoder and
                the T decoder), so it runs chunk by chunk; the sum of messages onto nodes
                accumulates over the chunks, and the hermitian average reads the decoded
                reverse edges of all chunks. Same result to round-off, with peak memory the
                stored per-edge features plus one chunk's activations
                (:mod:`tgkit.nn.inference`).
            workers: run up to this many chunks at once, in threads of one torch thread each
                (:func:`each_chunk`; CPU prediction). The same result as ``workers=1`` on one
                torch thread.
        """
        parts = edge_chunks(graph[K.EDGE_INDEX].shape[1], chunk_edges)
        if workers <= 1 or len(parts) <= 1:
            return self._forward(graph, parts, 1)
        # this thread too on one torch thread meanwhile: an intra-op team of its own would
        # spin on the cores the workers need
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._forward(graph, parts, workers)
        finally:
            torch.set_num_threads(threads)

    def _forward(self, graph: dict[str, torch.Tensor], parts: list[slice],
                 workers: int) -> dict[str, torch.Tensor]:
        edge_index, species = graph[K.EDGE_INDEX], graph[K.SPECIES]
        num_edges = edge_index.shape[1]

        def chunks(fn: Callable[[int], Any]) -> Iterator[tuple[slice, Any]]:
            """(chunk, fn(chunk number)) in chunk order; fn may run in worker threads."""
            return zip(parts, each_chunk(fn, list(range(len(parts))), workers), strict=True)

        # per chunk, computed once for all blocks: radial basis, harmonics and edge frames
        # (~230 floats per edge; recomputing the frames per block costs more than a conv)
        geometry = [g for _, g in chunks(lambda i: self.edge_geometry(graph[K.EDGE_VEC][parts[i]]))]
        node = self.node_embedding(species)
        edge = _Rows(num_edges)
        for c, rows in chunks(lambda i: self.edge_embedding(geometry[i][0])):
            edge.put(c, rows)
        edge = edge.value
        z = None
        for k, (nb, eb) in enumerate(zip(self.node_blocks, self.edge_blocks, strict=True)):
            agg = node.new_zeros(node.shape[0], nb.irreps_out.dim)
            # without autograd (prediction, validation), the first linear's node parts once
            # per node for all chunks (edge frame only; _UpdateBlock.messages says why)
            split = geometry[0][2] is not None and not torch.is_grad_enabled()
            terms = nb.node_terms(node) if split else None

            def messages(i: int, nb=nb, node=node, edge=edge, terms=terms) -> torch.Tensor:
                (radial, sh, frame), c = geometry[i], parts[i]
                return nb.messages(node, edge[c], edge_index[:, c], sh, radial, frame, terms)

            for c, msg in chunks(messages):   # summed in chunk order, in this thread
                agg.index_add_(0, edge_index[0, c], msg)
            node = nb.update(node, agg, species)
            if self.node_grads:
                node, _ = self.node_grads[k](node)
            terms = eb.node_terms(node) if split else None

            def edge_update(i: int, k=k, eb=eb, node=node, edge=edge, terms=terms):
                (radial, sh, frame), c = geometry[i], parts[i]
                e = eb(node, edge[c], edge_index[:, c], species, sh, radial, frame, terms)
                if self.edge_grads:
                    return self.edge_grads[k](e)  # z is None at a NoGrad position
                return e, None

            new_edge, new_z = _Rows(num_edges), _Rows(num_edges)
            for c, (e, z_c) in chunks(edge_update):
                new_edge.put(c, e)
                new_z.put(c, z_c)
            edge = new_edge.value
            z = z if new_z.value is None else new_z.value
        t_pred = _Rows(num_edges)  # stays empty without a T decoder
        if self.trace_decoder is not None:
            def traces(i: int, edge=edge, z=z) -> torch.Tensor:
                c = parts[i]
                z_c = self.trace_branch(edge[c])[1] if self.trace_branch is not None else z[c]
                return self.trace_decoder(z_c)

            for c, t in chunks(traces):
                t_pred.put(c, t)
        # the head decodes each edge's block once, then pairs it with its reverse edge's
        y = _Rows(num_edges)
        for c, rows in chunks(lambda i, edge=edge: self.head.decode_blocks(edge[parts[i]])):
            y.put(c, rows)
        y, reverse = y.value, graph[K.REVERSE_EDGE]
        del edge, z

        def hermitian(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            c = parts[i]
            ei = edge_index[:, c]
            m = element_mask(self.basis, species[ei[0]], species[ei[1]], self.spinful)
            return self.head.hermitian(y[c], y[reverse[c]]) * m, m

        h, mask = _Rows(num_edges), _Rows(num_edges)
        for c, (h_c, m) in chunks(hermitian):
            h.put(c, h_c)
            mask.put(c, m)
        si, sj = species[edge_index[0]], species[edge_index[1]]
        out = {K.H_PRED: h.value, K.H_MASK: mask.value,
               K.BLOCK_MASK: block_mask(self.basis, si, sj)}
        if t_pred.value is not None:
            out[K.T_PRED] = t_pred.value
        if K.HAMILTONIAN in graph:
            out[K.T_LABEL] = trace_labels(graph[K.HAMILTONIAN], self.basis)
        return out

    def compile_training(self, backend: str = "inductor") -> None:
        """Run the edge-frame products (the most operations of a step) and the TraceGrad
        modules through ``torch.compile`` while gradients are on (:mod:`tgkit.nn.compiled`);
        prediction and validation stay eager. Dynamic shapes, so cells of other sizes reuse
        the compiled code after the second size; each module falls back to eager, with a
        warning, where compiling fails (no C++ compiler, an unsupported torch). Measured in
        ``bench/bench_compile.py``. Not saved with the weights: a loaded model runs eagerly
        until this is called again."""
        for m in self.modules():
            if isinstance(m, FrameProduct | TraceGrad):
                m.compile_backend = backend

    def export_inference(self) -> HamiltonianModel:
        """A copy for inference: the T decoder is dropped (and, for ``trace``, the invariant
        branch, which then feeds nothing); the invariant encoder inside Grad is kept."""
        m = copy.deepcopy(self)
        m.trace_decoder = None
        m.trace_branch = None
        m.inference_only = True
        return m.eval()


# e3nn compiles its tensor products with torch.fx; with einsum optimisation on (e3nn's default)
# the compiled graphs carry constants as buffers, which appear in state_dict under these names
# and not at all with it off. They are rebuilt with the module, so files never depend on them.
_E3NN_CONSTANT = re.compile(r"\._compiled_main[^.]*\._tensor_constant\d+$")


def portable_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without e3nn's compiled-graph constants (see ``_E3NN_CONSTANT``)."""
    return {k: v for k, v in state.items() if not _E3NN_CONSTANT.search(k)}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)``, strict except for e3nn's compiled-graph constants, so
    a file loads whatever e3nn's einsum optimisation setting was when it was written."""
    missing, unexpected = model.load_state_dict(portable_state(state), strict=False)
    missing = [k for k in missing if not _E3NN_CONSTANT.search(k)]
    if missing or unexpected:
        raise RuntimeError(f"state_dict does not fit the model: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")


def save_model(model: HamiltonianModel, path: str | Path) -> None:
    """Write a self-describing checkpoint (basis, configs, dtype, weights) for load_model."""
    dtype = next(model.parameters()).dtype
    save_torch({
        "format": FORMAT, "version": FORMAT_VERSION,
        "basis": model.basis.to_dict(), "spinful": model.spinful,
        "model": dict(vars(model.model_config)), "tracegrad": dict(vars(model.tracegrad_config)),
        "inference_only": model.inference_only, "dtype": str(dtype).removeprefix("torch."),
        "state_dict": portable_state(model.state_dict()),
    }, Path(path))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> HamiltonianModel:
    """Rebuild a model written by :func:`save_model` (weights_only load, no pickled code)."""
    path = Path(path)
    ckpt = load_torch(path, map_location, "model checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TgkitError(f"{path}: not a tgkit model checkpoint")
    if ckpt.get("version") != FORMAT_VERSION:
        raise TgkitError(f"{path}: checkpoint version {ckpt.get('version')} is not supported")
    with damaged_file_errors(path, "model checkpoint"):
        model = HamiltonianModel(
            OrbitalBasis.from_dict(ckpt["basis"]), ckpt["spinful"],
            section_from_dict(ModelConfig, ckpt["model"], "model"),
            section_from_dict(TraceGradConfig, ckpt["tracegrad"], "tracegrad"),
            dtype=getattr(torch, ckpt["dtype"]),
        )
        if ckpt["inference_only"]:
            model = model.export_inference()
        load_weights(model, ckpt["state_dict"])
    return model.to(map_location)
