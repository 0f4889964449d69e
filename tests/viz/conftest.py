"""Fixtures for the dashboard tests: toy structures and perturbed copies as predictions."""

from __future__ import annotations

import numpy as np
import pytest

from tgkit.testing import random_crystal, toy_structure

BASIS = {6: (0, 1), 1: (0,)}  # small bases keep the toy Hamiltonians fast


def perturbed(structure, scale: float, seed: int) -> dict:
    """A prediction: the true blocks plus deterministic noise of size ``scale`` eV."""
    rng = np.random.default_rng(seed)
    return {k: b + scale * rng.standard_normal(b.shape) for k, b in structure.hamiltonians.items()}


@pytest.fixture(scope="session")
def toy_structures():
    out = []
    for k in range(2):
        lat, pos = random_crystal([6, 6, 1], seed=k, vacuum_axis=2)
        st = toy_structure([6, 6, 1], lat, pos, basis=BASIS, cutoff=4.0, name=f"s{k}")
        out.append(st)
    out[1].info["twist_angle"] = 21.8
    return out


@pytest.fixture(scope="session")
def tables(toy_structures):
    from tgkit.viz.records import error_table

    return {("run", setup): error_table(
        toy_structures, {s.name: perturbed(s, scale, k) for k, s in enumerate(toy_structures)})
        for setup, scale in (("baseline", 0.02), ("tracegrad", 0.01))}
