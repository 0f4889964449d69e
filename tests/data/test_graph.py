"""The periodic neighbour graph: keys vs cutoff, reverse edges, block embedding, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tgkit import keys as K
from tgkit.data.graph import (
    collate,
    edges_from_cutoff,
    edges_from_keys,
    graph_blocks,
    reverse_edge_index,
    structure_to_graph,
)
from tgkit.irreps import OrbitalBasis


def test_keys_and_cutoff_give_the_same_edges(mixed):
    # the toy structure's keys come from a 4.5 A neighbour list; rebuilding agrees exactly
    from_keys = edges_from_keys(mixed)
    from_cut = edges_from_cutoff(mixed.positions, mixed.lattice, 4.5)
    np.testing.assert_array_equal(from_keys, from_cut)
    assert ((from_keys[:, :3] == 0).all(1) & (from_keys[:, 3] == from_keys[:, 4])).sum() == 4


def test_cutoff_edges_match_brute_force(carbon):
    edges = edges_from_cutoff(carbon.positions, carbon.lattice, 3.7)
    found = {tuple(e) for e in edges.tolist()}
    brute = set()
    rng = range(-3, 4)
    for i in range(3):
        for j in range(3):
            for a in rng:
                for b in rng:
                    for c in rng:
                        d = (
                            carbon.positions[j]
                            + np.array([a, b, c]) @ carbon.lattice
                            - carbon.positions[i]
                        )
                        if np.linalg.norm(d) < 3.7:
                            brute.add((a, b, c, i, j))
    assert found == brute


def test_reverse_edges(carbon):
    edges = edges_from_keys(carbon)
    rev = reverse_edge_index(edges)
    np.testing.assert_array_equal(edges[rev][:, :3], -edges[:, :3])
    np.testing.assert_array_equal(edges[rev][:, 3], edges[:, 4])
    np.testing.assert_array_equal(rev[rev], np.arange(len(edges)))
    with pytest.raises(ValueError, match="no reverse edge"):
        reverse_edge_index(edges[1:])


@pytest.mark.parametrize("which", ["mixed", "spinful"])
def test_graph_embeds_blocks_exactly(which, request):
    s = request.getfixturevalue(which)
    basis = OrbitalBasis(s.species_basis())
    g = structure_to_graph(s, basis)
    b = basis.dim * (2 if s.spinful else 1)
    assert g[K.HAMILTONIAN].shape == (len(s.hamiltonians), b, b)
    assert g[K.HAMILTONIAN].is_complex() == s.spinful
    back = graph_blocks(g, basis)
    assert set(back) == set(s.hamiltonians)
    for k, blk in s.hamiltonians.items():
        np.testing.assert_array_equal(back[k], blk)
    vec = g[K.EDGE_VEC].numpy()
    ei, shift = g[K.EDGE_INDEX].numpy(), g[K.CELL_SHIFT].numpy()
    ref = s.positions[ei[1]] + shift @ s.lattice - s.positions[ei[0]]
    np.testing.assert_allclose(vec, ref, atol=1e-12)
    # hermiticity carried over: H[rev] = H^dagger in the universal basis
    h = g[K.HAMILTONIAN]
    torch.testing.assert_close(h[g[K.REVERSE_EDGE]], h.transpose(1, 2).conj(), atol=1e-12, rtol=0)


def test_collate_offsets_indices(carbon, mixed):
    basis = OrbitalBasis.union([carbon.species_basis(), mixed.species_basis()])
    g1, g2 = structure_to_graph(carbon, basis), structure_to_graph(mixed, basis)
    b = collate([g1, g2])
    n1, e1 = carbon.num_atoms, len(carbon.hamiltonians)
    assert b[K.BATCH].tolist() == [0] * n1 + [1] * mixed.num_atoms
    torch.testing.assert_close(b[K.EDGE_INDEX][:, e1:], g2[K.EDGE_INDEX] + n1)
    torch.testing.assert_close(b[K.REVERSE_EDGE][e1:], g2[K.REVERSE_EDGE] + e1)
    assert b[K.LATTICE].shape == (2, 3, 3)
    torch.testing.assert_close(b[K.HAMILTONIAN][:e1], g1[K.HAMILTONIAN])


@pytest.mark.parametrize("seed", range(12))
def test_cutoff_edges_equal_ase_neighbour_list(seed):
    # skewed cells, atoms outside the cell, mixed periodicity: the k-d tree search gives
    # exactly ase's edges (ase is the reference, not a code path of tgkit)
    from ase.neighborlist import primitive_neighbor_list

    rng = np.random.default_rng(seed)
    lattice = rng.normal(size=(3, 3)) + np.eye(3) * rng.uniform(2.0, 8.0)
    positions = rng.normal(size=(int(rng.integers(1, 10)), 3)) * 5.0
    pbc = (True, True, True) if seed % 3 == 0 else tuple(bool(b) for b in rng.integers(0, 2, 3))
    cutoff = float(rng.uniform(1.0, 7.0))
    i, j, shift = primitive_neighbor_list("ijS", pbc, lattice, positions, cutoff,
                                          self_interaction=True)
    ref = np.concatenate([shift, i[:, None], j[:, None]], axis=1).astype(np.int64)
    ref = ref[np.lexsort(ref.T[::-1])]
    np.testing.assert_array_equal(edges_from_cutoff(positions, lattice, cutoff, pbc), ref)
