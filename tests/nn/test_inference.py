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


def test_chunked_rejects_bad_chunk(mixed_graph):
    with pytest.raises(ValueError, match="chunk_edges"):
        predict_chunked(get_model("baseline"), mixed_graph, chunk_edges=0)
