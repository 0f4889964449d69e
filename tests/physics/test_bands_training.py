"""Bands from a model's prediction on a training structure approach DFT as training proceeds."""

from __future__ import annotations

import pytest
import torch

from tgkit import keys as K
from tgkit.config import ModelConfig, TraceGradConfig
from tgkit.data.graph import structure_to_graph
from tgkit.irreps import OrbitalBasis
from tgkit.nn import HamiltonianModel
from tgkit.nn.inference import predict_structure
from tgkit.physics.bands import compare_bands
from tgkit.testing import random_crystal, toy_structure
from tgkit.train.loss import masked_mse

BASIS = {6: (0, 0, 1)}  # s s p keeps the model tiny


@pytest.fixture()
def one_thread():
    """Tiny tensors: one thread is fastest, and immune to a busy node (50x here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_band_error_falls_while_training(one_thread):
    torch.manual_seed(0)
    lat, pos = random_crystal([6, 6], seed=4, cell=3.0)
    s = toy_structure([6, 6], lat, pos, basis=BASIS, cutoff=4.0, fermi_level=-4.0)
    basis = OrbitalBasis(BASIS)
    model = HamiltonianModel(
        basis,
        model=ModelConfig(irreps_embed="8x0e", irreps_hidden="16x0e+8x1o+4x2e", num_blocks=2,
                          lmax=2, cutoff=4.0, num_radial=16, radial_hidden=16,
                          avg_num_neighbors=20.0),
        tracegrad=TraceGradConfig(setup="tracegrad", num_invariants=8, hidden=16, num_z=8,
                                  decoder_hidden=16),
        dtype=torch.float64,
    )
    graph = structure_to_graph(s, basis)
    graph[K.BATCH] = torch.zeros(2, dtype=torch.long)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def band_error() -> float:
        model.eval()
        res = compare_bands(s, predict_structure(model, s), npoints=8, window=3.0)
        model.train()
        return res.mean_error

    errors = [band_error()]
    for step in range(1, 61):
        opt.zero_grad()
        out = model(graph)
        masked_mse(out[K.H_PRED], graph[K.HAMILTONIAN], out[K.H_MASK]).backward()
        opt.step()
        if step % 30 == 0:
            errors.append(band_error())
    # DFT-like reference bands are approached: the error keeps falling, by a large factor
    assert errors[1] < errors[0] and errors[2] < errors[1]
    assert errors[2] < 0.2 * errors[0], errors
