"""Chunked inference equals the plain forward pass, for every setup, spinless and SOC."""

from __future__ import annotations

import pytest
import torch

from tgkit import keys as K
from tgkit.nn.inference import predict_chunked

from .conftest import SETUPS, get_model


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
@pytest.mark.parametrize("setup", SETUPS)
def test_chunked_equals_forward(setup, spinful, mixed_graph, bilayer_graph):
    model = get_model(setup, spinful)
    # the twisted bilayer (28 atoms) once, the small mixed-element crystal for every case
    graphs = (mixed_graph, bilayer_graph) if setup == "tracegrad" else (mixed_graph,)
    for graph in graphs:
        with torch.no_grad():
            ref = model(graph)
            num_edges = graph[K.EDGE_INDEX].shape[1]
            for chunk in (num_edges // 3 + 1, num_edges + 5):
                out = predict_chunked(model, graph, chunk_edges=chunk)
                assert out[K.H_PRED].shape == ref[K.H_PRED].shape
                assert torch.equal(out[K.H_MASK], ref[K.H_MASK])
                # float64; chunks only change the summation order of the node messages
                assert (out[K.H_PRED] - ref[K.H_PRED]).abs().max() <= 1e-10
                assert (K.T_PRED in out) == (K.T_PRED in ref)
                if K.T_PRED in ref:
                    assert (out[K.T_PRED] - ref[K.T_PRED]).abs().max() <= 1e-10 * (
                        1 + ref[K.T_PRED].abs().max())


@pytest.mark.parametrize("setup", ["baseline", "tracegrad"])
def test_chunks_in_worker_threads_equal_one_thread(setup, bilayer_graph):
    # each chunk runs the same single-threaded code in a worker; sums stay in chunk order.
    # Without autograd on a CPU the model runs its edges-last plan, so the workers must see
    # the caller's no_grad to give the same bits
    model = get_model(setup, False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            ref = model(bilayer_graph, chunk_edges=150)
            out = predict_chunked(model, bilayer_graph, chunk_edges=150, workers=3)
        assert torch.get_num_threads() == 1   # restored after the parallel forward
        with torch.enable_grad():   # autograd mode reaches the workers too
            grad_out = model(bilayer_graph, chunk_edges=150, workers=2)[K.H_PRED]
    finally:
        torch.set_num_threads(threads)
    for key in ref:
        assert torch.equal(out[key], ref[key]), key
    assert grad_out.requires_grad
    assert (grad_out.detach() - ref[K.H_PRED]).abs().max() <= 1e-10


@pytest.mark.parametrize("setup", ["baseline", "tracegrad"])
def test_split_first_linear_without_autograd_equals_concatenation(setup, bilayer_graph):
    # without autograd the blocks run the first linear's node parts per node (node_terms);
    # with it, on the concatenated [node_i, node_j, edge] per edge: the same blocks
    model = get_model(setup, False)
    with torch.no_grad():
        split = model(bilayer_graph, chunk_edges=100)[K.H_PRED]
    whole = model(bilayer_graph, chunk_edges=100)[K.H_PRED].detach()
    assert whole.abs().max() > 1e-3
    assert (split - whole).abs().max() <= 1e-10


@pytest.mark.parametrize("setup", ["grad", "tracegrad"])
def test_inference_mode_equals_no_grad(setup, mixed_graph):
    # Grad's v is in closed form: no autograd inside, so inference_mode gives the same blocks
    model = get_model(setup, False)
    with torch.no_grad():
        ref = predict_chunked(model, mixed_graph, chunk_edges=50)[K.H_PRED]
    with torch.inference_mode():
        out = predict_chunked(model, mixed_graph, chunk_edges=50)[K.H_PRED]
    assert torch.equal(out, ref)


@pytest.mark.parametrize("grad_where", ["node", "edge", "last"])
def test_chunked_training_step_equals_full(grad_where, mixed_graph):
    """The chunked forward is the full one, gradients included, also where some module
    positions hold NoGrad placeholders (``tracegrad.grad_where``)."""
    from tgkit.config import TraceGradConfig
    from tgkit.nn import HamiltonianModel
    from tgkit.train.loss import TraceGradLoss

    from .conftest import BASIS, TINY, TINY_TG

    torch.manual_seed(0)
    tg = TraceGradConfig(setup="tracegrad", grad_where=grad_where, **TINY_TG)
    model = HamiltonianModel(BASIS, False, TINY, tg, dtype=torch.float64).train()
    loss_fn = TraceGradLoss(0.3)
    grads = []
    for chunk in (None, mixed_graph[K.EDGE_INDEX].shape[1] // 3 + 1):
        model.zero_grad()
        out = model(mixed_graph, chunk_edges=chunk)
        loss_fn(out, mixed_graph[K.HAMILTONIAN]).total.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                      if p.grad is not None})
    full, chunked = grads
    assert full.keys() == chunked.keys() and full
    for name, g in full.items():
        assert (chunked[name] - g).abs().max() <= 1e-9 * (1 + g.abs().max()), name


def test_chunked_rejects_bad_chunk(mixed_graph):
    with pytest.raises(ValueError, match="chunk_edges"):
        predict_chunked(get_model("baseline"), mixed_graph, chunk_edges=0)


def test_predict_structure_from_keys_or_cutoff():
    """Blocks of a structure predicted from its keys equal those from a neighbour list."""
    from tgkit.data.deeph import Structure
    from tgkit.errors import TgkitError
    from tgkit.nn.inference import predict_structure
    from tgkit.testing import DEFAULT_BASIS, random_crystal, toy_structure

    model = get_model("tracegrad").eval()
    lat, pos = random_crystal([6, 8, 1], seed=11)
    s = toy_structure([6, 8, 1], lat, pos, cutoff=model.model_config.cutoff)
    from_keys = predict_structure(model, s)
    bare = Structure(s.numbers, s.lattice, s.positions, s.orbital_types, {})
    from_cutoff = predict_structure(model, bare)  # default: the model's cutoff
    assert set(from_keys) == set(from_cutoff) == set(s.hamiltonians)
    for k, blk in from_keys.items():
        assert blk.shape == s.hamiltonians[k].shape
        assert abs(blk - from_cutoff[k]).max() <= 1e-12
    unknown = toy_structure([6, 7], *random_crystal([6, 7], seed=1),
                            basis={**DEFAULT_BASIS, 7: (0, 1)})
    with pytest.raises(TgkitError, match="does not fit the model's basis"):
        predict_structure(model, unknown)


def test_predict_structure_rejects_negative_chunk():
    from tgkit.data.deeph import Structure
    from tgkit.errors import TgkitError
    from tgkit.testing import random_crystal

    lat, pos = random_crystal([6, 6], seed=2)
    s = Structure(numbers=[6, 6], lattice=lat, positions=pos, orbital_types=[[0, 0, 1, 1, 2]] * 2,
                  hamiltonians={})
    from tgkit.nn.inference import predict_structure

    with pytest.raises(TgkitError, match="chunk_edges .*must be 0"):
        predict_structure(get_model("baseline"), s, chunk_edges=-3)
