"""The paper's metrics on hand-made predictions: MAE_all, per sample, per block, SOC modulus."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tgkit import keys as K
from tgkit.irreps import OrbitalBasis, spinful_index
from tgkit.train.metrics import MetricAccumulator, block_types, challenge

BASIS = OrbitalBasis({6: (0, 1), 1: (0,)})  # universal s1 p1 (B = 4); H has s only


def _batch(spinful: bool = False, seed: int = 0):
    """Two graphs: atoms (C, H) and (C); edges C-C, C-H, H-C, H-H and C-C."""
    g = torch.Generator().manual_seed(seed)
    species = torch.tensor([1, 0, 1])  # species index (sorted Z): H = 0, C = 1
    edge_index = torch.tensor([[0, 0, 1, 1, 2], [0, 1, 0, 1, 2]])
    om = BASIS.orbital_mask()
    mask = om[species[edge_index[0]]][:, :, None] & om[species[edge_index[1]]][:, None, :]
    b = BASIS.dim
    if spinful:
        mask = mask.repeat(1, 2, 2)
        label = torch.randn(5, 2 * b, 2 * b, generator=g, dtype=torch.complex128)
        pred = label + 0.1 * torch.randn(5, 2 * b, 2 * b, generator=g, dtype=torch.complex128)
    else:
        label = torch.randn(5, b, b, generator=g, dtype=torch.float64)
        pred = label + 0.1 * torch.randn(5, b, b, generator=g, dtype=torch.float64)
    graph = {K.SPECIES: species, K.EDGE_INDEX: edge_index, K.BATCH: torch.tensor([0, 0, 1]),
             K.STRUCTURE_ID: torch.tensor([2, 0]), K.HAMILTONIAN: label}
    return graph, {K.H_PRED: pred * mask, K.H_MASK: mask}


@pytest.mark.parametrize("spinful", [False, True])
def test_mae_all_sample_block_by_hand(spinful):
    graph, out = _batch(spinful)
    acc = MetricAccumulator(BASIS, ["a", "b", "c"])
    acc.update(graph, out)
    r = acc.result()
    err = (out[K.H_PRED] - graph[K.HAMILTONIAN]).abs()  # complex modulus for SOC
    mask = out[K.H_MASK]
    assert r.mae_all == pytest.approx(1000 * err[mask].mean().item(), rel=1e-12)
    # graph 0 is structure id 2 ("c"): edges 0..3; graph 1 is "a": edge 4
    assert set(r.mae_sample) == {"a", "c"}
    assert r.mae_sample["a"] == pytest.approx(1000 * err[4][mask[4]].mean().item(), rel=1e-12)
    # block "C-C s1-p1": the C-C edges are 0 and 4
    s1 = BASIS.shell_offset[BASIS.shells[0]]
    p1 = BASIS.shell_offset[BASIS.shells[1]]
    rows = np.arange(s1, s1 + 1)
    cols = np.arange(p1, p1 + 3)
    if spinful:
        rows, cols = spinful_index(rows, BASIS.dim), spinful_index(cols, BASIS.dim)
    cc = err[[0, 4]][:, rows][:, :, cols]
    assert r.mae_block["C-C s1-p1"] == pytest.approx(1000 * cc.mean().item(), rel=1e-12)
    # H has no p shell: no such block types, NaN orbital entries
    assert "H-C p1-s1" not in r.mae_block and "C-H s1-s1" in r.mae_block
    assert np.isnan(r.orbital_mae[0, 0, p1, p1])
    assert r.orbital_count[1, 1].sum() == (mask[0].sum() + mask[4].sum()).item()


def test_block_types_and_challenge():
    labels = [t[-1] for t in block_types(BASIS)]
    assert labels == ["H-H s1-s1", "H-C s1-s1", "H-C s1-p1", "C-H s1-s1", "C-H p1-s1",
                      "C-C s1-s1", "C-C s1-p1", "C-C p1-s1", "C-C p1-p1"]
    graph, out = _batch()
    acc = MetricAccumulator(BASIS, ["a", "b", "c"])
    acc.update(graph, out)
    r = acc.result()
    own = challenge(r)
    assert own["mae_sample_cha"] == max(r.mae_sample.values())
    assert own["mae_block_cha"] == max(r.mae_block.values())
    given = challenge(r, sample="a", block="H-H s1-s1")
    assert given["mae_sample_cha"] == r.mae_sample["a"]
    assert given["mae_block_cha"] == r.mae_block["H-H s1-s1"]


def test_reduce_sums_statistics():
    graph, out = _batch()
    acc = MetricAccumulator(BASIS, ["a", "b", "c"])
    acc.update(graph, out)
    single = acc.result()
    acc.reduce(lambda t: 2 * t)  # two identical "processes"
    double = acc.result()
    assert double.mae_all == pytest.approx(single.mae_all)
    assert double.orbital_count.sum() == 2 * single.orbital_count.sum()
