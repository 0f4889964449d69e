"""Material-family builders, thermal noise and the commensurate twisted-bilayer builder."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from tgkit.data import structures as st


def _min_distance(atoms) -> float:
    _, _, d = neighbor_list("ijd", atoms, 2.0)
    return float(d.min()) if len(d) else np.inf


@pytest.mark.parametrize(
    ("family", "size", "formula", "count"),
    [
        ("MG", (2, 2), "C8", 8),
        ("MM", (2, 2), "Mo4S8", 12),
        ("BG", (2, 2), "C16", 16),
        ("BB", (2, 2), "Bi16", 16),
        ("BT", (2, 2), "Bi16Te24", 40),
        ("BS", (2, 2), "Bi16Se24", 40),
    ],
)
def test_family_counts_and_no_overlaps(family, size, formula, count):
    atoms = st.FAMILIES[family](size)
    assert len(atoms) == count
    assert atoms.get_chemical_formula(mode="metal") == formula
    assert _min_distance(atoms) > 1.3
    z = atoms.positions[:, 2]
    assert abs(z.mean()) < 1.0  # centred near z = 0, away from fractional 0.5
    assert atoms.cell[2, 2] - (z.max() - z.min()) >= st.DEFAULT_VACUUM - 1e-9


def test_graphene_is_periodic_honeycomb():
    atoms = st.graphene((3, 3))
    i, _, d = neighbor_list("ijd", atoms, 1.5)
    assert np.bincount(i, minlength=len(atoms)).tolist() == [3] * len(atoms)
    assert np.allclose(d, 2.46 / np.sqrt(3))


def test_thermal_perturb_amplitude_and_no_drift():
    base = st.graphene((6, 6))
    pert = st.thermal_perturb(base, (0.05, 0.05, 0.10), seed=1)
    disp = pert.positions - base.positions
    assert np.allclose(disp.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(disp.std(axis=0), [0.05, 0.05, 0.10], rtol=0.25)
    again = st.thermal_perturb(base, (0.05, 0.05, 0.10), seed=1)
    assert np.array_equal(again.positions, pert.positions)


@pytest.mark.parametrize(
    ("m", "angle", "count"), [(1, 21.7868, 28), (2, 13.1736, 76), (3, 9.4300, 148)]
)
def test_twisted_bilayer_angle_count_and_bonds(m, angle, count):
    atoms = st.twisted_bilayer_graphene(m)
    assert len(atoms) == count == 4 * (m * m + m * (m + 1) + (m + 1) ** 2)
    assert atoms.info["twist_angle"] == pytest.approx(angle, abs=1e-3)
    assert st.commensurate_angle(m, m + 1) == pytest.approx(angle, abs=1e-3)
    # periodic: every atom has exactly 3 in-plane neighbours at the C-C distance
    i, j, d = neighbor_list("ijd", atoms, 1.5)
    assert np.bincount(i, minlength=len(atoms)).tolist() == [3] * len(atoms)
    assert np.allclose(d, 2.46 / np.sqrt(3), atol=1e-6)
    layer = atoms.get_array("layer")
    assert np.all(layer[i] == layer[j])
    assert _min_distance(atoms) > 1.3
    # the measured twist: angle between the two layers' bond directions (mod 60 degrees)
    _, _, dvec = neighbor_list("ijD", atoms, 1.5)
    a0 = np.degrees(np.arctan2(dvec[layer[i] == 0, 1], dvec[layer[i] == 0, 0])) % 60
    a1 = np.degrees(np.arctan2(dvec[layer[i] == 1, 1], dvec[layer[i] == 1, 0])) % 60
    twist = (a1[0] - a0[0]) % 60
    assert min(twist, 60 - twist) == pytest.approx(st.commensurate_angle(m, m + 1), abs=1e-6)


def test_twisted_bilayer_reaches_10k_atoms_in_seconds():
    t0 = time.perf_counter()
    atoms = st.twisted_bilayer_graphene(29)
    elapsed = time.perf_counter() - t0
    assert len(atoms) == 10444
    assert elapsed < 5.0
    assert atoms.info["twist_angle"] == pytest.approx(1.1213, abs=1e-3)


def test_twisted_bilayer_rejects_non_coprime():
    with pytest.raises(ValueError, match="coprime"):
        st.twisted_bilayer_graphene(2, 4)
