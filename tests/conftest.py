"""Shared fixtures: small structures built in code (see tgkit.testing)."""

from __future__ import annotations

import numpy as np
import pytest

from tgkit.data.deeph import Structure
from tgkit.testing import random_crystal, toy_structure


@pytest.fixture(scope="session")
def carbon() -> Structure:
    lat, pos = random_crystal([6, 6, 6], seed=3)
    return toy_structure([6, 6, 6], lat, pos, cutoff=4.5, name="carbon")


@pytest.fixture(scope="session")
def mixed() -> Structure:
    """C (s s p p d), O (s s p p d) and H (s s p): atoms with different orbital bases."""
    lat, pos = random_crystal([6, 8, 1, 1], seed=5)
    return toy_structure([6, 8, 1, 1], lat, pos, cutoff=4.5, name="mixed")


def make_spinful(s: Structure, c: float = 0.05) -> Structure:
    """A spinful copy: kron(I2, H + i c (H P_j - P_i H)) keeps H_ji(-R) = H_ij(R)^dagger.

    P is a symmetric per-atom matrix, so the imaginary part is antisymmetric under the swap of
    i and j; the result is a valid (if unphysical) complex spin-major dataset for I/O tests.
    """
    p = [np.diag(np.arange(s.num_orbitals(a), dtype=float)) * (a + 1) for a in range(s.num_atoms)]
    ham = {}
    for k, h in s.hamiltonians.items():
        i, j = k[3], k[4]
        m = h + 1j * c * (h @ p[j] - p[i] @ h)
        ham[k] = np.kron(np.eye(2), m)
    return Structure(
        numbers=s.numbers, lattice=s.lattice, positions=s.positions,
        orbital_types=s.orbital_types, hamiltonians=ham, overlaps=s.overlaps, spinful=True,
        fermi_level=s.fermi_level, name=s.name + "-soc",
    )


@pytest.fixture(scope="session")
def spinful(mixed) -> Structure:
    return make_spinful(mixed)
