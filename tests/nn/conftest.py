"""Fixtures for tgkit.nn tests: tiny float64 models of every setup, toy graphs, rotations.

Models are built once per session (e3nn's code generation takes a second per model) and
copied by tests that change them.
"""

from __future__ import annotations

import copy
import functools

import e3nn
import numpy as np
import pytest
import torch
from e3nn import o3
from scipy.spatial.transform import Rotation

from tgkit import keys as K
from tgkit.config import ModelConfig, TraceGradConfig
from tgkit.data.graph import structure_to_graph
from tgkit.irreps import OrbitalBasis, wigner_D
from tgkit.nn import HamiltonianModel
from tgkit.testing import DEFAULT_BASIS, random_crystal, toy_structure

# opt_einsum_fx only speeds up the generated code; skipping it makes construction 3x faster
e3nn.set_optimization_defaults(optimize_einsums=False)
# tensors here are tiny: extra threads only add synchronisation (10x slower on a busy machine)
torch.set_num_threads(1)

SETUPS = ("baseline", "trace", "grad", "tracegrad")
TINY = ModelConfig(irreps_embed="8x0e", irreps_hidden="8x0e+4x1o+2x2e", num_blocks=2,
                   cutoff=5.0, num_radial=16, radial_hidden=16, avg_num_neighbors=10.0)
TINY_TG = dict(num_invariants=8, hidden=16, num_z=8, decoder_hidden=16)
TOL = 1e-10


@functools.cache
def _model(setup: str, spinful: bool) -> HamiltonianModel:
    torch.manual_seed(0)
    return HamiltonianModel(BASIS, spinful, TINY, TraceGradConfig(setup=setup, **TINY_TG),
                            dtype=torch.float64)


BASIS = OrbitalBasis(DEFAULT_BASIS)  # C, O: s s p p d; H: s s p


def get_model(setup: str, spinful: bool = False, fresh: bool = False) -> HamiltonianModel:
    """The session's tiny float64 model (a deep copy when ``fresh``), in eval mode."""
    m = _model(setup, spinful)
    return copy.deepcopy(m).eval() if fresh else m.eval()


def rotations() -> list[np.ndarray]:
    """Two random proper rotations, an improper one and the inversion."""
    r = Rotation.random(2, random_state=11).as_matrix()
    return [r[0], r[1], -r[0], -np.eye(3)]


def rotate_graph(graph: dict, rot: np.ndarray) -> dict:
    """The graph of the rotated crystal: positions, lattice and edge vectors times R."""
    r = torch.as_tensor(rot, dtype=torch.float64)
    g = dict(graph)
    g[K.EDGE_VEC] = graph[K.EDGE_VEC] @ r.T
    g[K.POSITIONS] = graph[K.POSITIONS] @ r.T
    g[K.LATTICE] = graph[K.LATTICE] @ r.T
    return g


def irreps_rotation(irreps: o3.Irreps | str, rot: np.ndarray) -> torch.Tensor:
    """Exact float64 block-diagonal D of ``irreps`` (parity included) for a cartesian R."""
    blocks = [wigner_D(ir.l, rot, parity=ir.p) for mul, ir in o3.Irreps(irreps) for _ in range(mul)]
    return torch.block_diag(*blocks)


@pytest.fixture(scope="session")
def basis() -> OrbitalBasis:
    return BASIS


@pytest.fixture(scope="session")
def mixed_graph() -> dict:
    """C, O, H, H: species with different shells (H lacks the d shell and second p)."""
    lat, pos = random_crystal([6, 8, 1, 1], seed=5)
    s = toy_structure([6, 8, 1, 1], lat, pos, cutoff=3.5, name="mixed")
    return structure_to_graph(s, BASIS)


def _carbon():
    lat, pos = random_crystal([6, 6, 6], seed=3)
    return toy_structure([6, 6, 6], lat, pos, cutoff=3.5)


@pytest.fixture(scope="session")
def carbon_graph() -> dict:
    return structure_to_graph(_carbon(), BASIS)


@pytest.fixture(scope="session")
def bilayer_graph() -> dict:
    """Twisted bilayer graphene (21.8 degrees, 28 atoms) with toy blocks."""
    from tgkit.data.structures import twisted_bilayer_graphene

    atoms = twisted_bilayer_graphene(1, 2)
    s = toy_structure(atoms.numbers, atoms.cell.array, atoms.positions, cutoff=3.6, name="tbg")
    return structure_to_graph(s, BASIS)


@pytest.fixture(scope="session")
def carbon_soc_graph() -> dict:
    """Spin-major SOC targets: I2 (x) H plus on-site lambda L.S on the p and d shells."""
    from tgkit.data.soc import to_spinful

    return structure_to_graph(to_spinful(_carbon(), {6: {1: 0.2, 2: 0.1}}), BASIS)
