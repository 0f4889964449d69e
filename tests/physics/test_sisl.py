"""tgkit <-> sisl: orbital convention, H(k) and eigenvalues against sisl, round trips, DOS, CLI.

The orbital (l, m) mapping is checked three ways: against sisl's own real spherical harmonics
(explicit cartesian polynomials for l <= 2), on H(k) matrix elements (which also fixes the sign
of R), and physically: near E_F the states of a graphene layer are pi states, odd under the
mirror through the layer, which only holds for sisl's orbital functions if every (l, m) label
and sign is right. The layer is rotated to a generic orientation first, so that p and d
functions of all m mix; a deliberately wrong mapping is shown to fail the same check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3

from tgkit import irreps
from tgkit.data.deeph import Structure, read_structure, write_structure
from tgkit.data.soc import to_spinful
from tgkit.errors import TgkitError
from tgkit.physics import sisl_io
from tgkit.physics.bands import BandSolver, band_energies
from tgkit.physics.equivariance import random_rotation, rotate

sisl = pytest.importorskip("sisl")

ROOT = Path(__file__).resolve().parents[2]
GRAPHENE = ROOT / "datasets" / "graphene-tiny" / "0000"


@pytest.fixture(scope="module")
def graphene() -> Structure:
    return read_structure(GRAPHENE)


def generic_kpoints(n: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, size=(n, 3))


def _spher(l: int, m: int, pts: np.ndarray) -> np.ndarray:
    """sisl's real spherical harmonic (l, m) at unit vectors ``pts`` (P, 3)."""
    r = np.linspace(0.0, 5.0, 50)
    orb = sisl.SphericalOrbital(l, (r, np.exp(-r)))
    theta = np.arctan2(pts[:, 1], pts[:, 0])
    return orb.spher(theta, pts[:, 2], m=m, cos_phi=True)


def _unit_points(n: int = 64, seed: int = 3) -> np.ndarray:
    p = np.random.default_rng(seed).standard_normal((n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- conventions


# OpenMX's real harmonics as cartesian polynomials (deeph-format.md), up to positive factors.
OPENMX_POLY = {
    0: [lambda x, y, z: np.ones_like(x)],
    1: [lambda x, y, z: x, lambda x, y, z: y, lambda x, y, z: z],
    2: [lambda x, y, z: 3 * z**2 - 1, lambda x, y, z: x**2 - y**2, lambda x, y, z: x * y,
        lambda x, y, z: x * z, lambda x, y, z: y * z],
}


@pytest.mark.parametrize("l", [0, 1, 2])
def test_sisl_orbitals_are_openmx_functions(l):
    """sisl orbital m = sign * OpenMX function idx[m + l], checked on explicit polynomials."""
    pts = _unit_points()
    idx, sign = irreps.openmx_to_sisl_index([l])
    for m in range(-l, l + 1):
        f = _spher(l, m, pts)
        g = sign[m + l] * OPENMX_POLY[l][idx[m + l]](*pts.T)
        ratio = f / np.where(np.abs(g) > 1e-3, g, np.nan)
        ratio = ratio[np.isfinite(ratio)]
        assert ratio.min() > 0 and np.ptp(ratio) < 1e-10 * ratio.max(), (l, m)


def test_sisl_f_orbitals_match_table():
    """l = 3 through e3nn's harmonics (OpenMX order from OPENMX_TO_E3NN, permuted frame)."""
    pts = _unit_points()
    y = o3.spherical_harmonics(3, torch.from_numpy(pts[:, list(irreps.CART_TO_E3NN)]),
                                      normalize=True).numpy()
    y_openmx = y[:, np.argsort(irreps.OPENMX_TO_E3NN[3])]
    idx, sign = irreps.openmx_to_sisl_index([3])
    for m in range(-3, 4):
        f = _spher(3, m, pts)
        g = sign[m + 3] * y_openmx[:, idx[m + 3]]
        c = (f @ g) / (g @ g)
        assert c > 0 and np.abs(f - c * g).max() < 1e-10, m


def test_geometry_orbitals_and_block_inverse(mixed):
    geom = sisl_io.sisl_geometry(mixed)
    assert geom.na == mixed.num_atoms and geom.no == sum(
        mixed.num_orbitals(a) for a in range(mixed.num_atoms))
    np.testing.assert_allclose(geom.cell, mixed.lattice)
    np.testing.assert_allclose(geom.xyz, mixed.positions)
    for a, types in enumerate(mixed.orbital_types):
        lm = [(o.l, o.m, o.zeta) for o in geom.atoms[a].orbitals]
        assert lm == irreps.sisl_orbital_lm(types)
    types = [0, 1, 1, 2, 3]
    b = np.random.default_rng(0).standard_normal((19, 19))
    back = irreps.sisl_to_openmx_block(irreps.openmx_to_sisl_block(b, types, types), types, types)
    np.testing.assert_array_equal(back, b)


def test_missing_sisl_is_one_clear_error(monkeypatch, graphene):
    monkeypatch.setitem(sys.modules, "sisl", None)
    with pytest.raises(TgkitError, match=r"pip install tgkit\[interop\]"):
        sisl_io.to_sisl(graphene)


# ----------------------------------------------------------------------------- H(k), bands


def _sisl_permutation(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Global (index, sign): sisl orbital q = sign[q] * tgkit (file-order) orbital index[q]."""
    idx, sgn, off = [], [], 0
    for types in structure.orbital_types:
        i, s = irreps.openmx_to_sisl_index(types)
        idx.append(i + off)
        sgn.append(s)
        off += len(i)
    return np.concatenate(idx), np.concatenate(sgn)


def _hk_mismatch(structure: Structure, H, k) -> float:
    """max |H_sisl(k) - P H_tgkit(k) P^T| and the same for S (lattice gauge)."""
    idx, sgn = _sisl_permutation(structure)
    solver = BandSolver(structure)
    err = 0.0
    for ours, theirs in ((solver.h.dense(k), H.Hk(k, gauge="lattice")),
                         (solver.s.dense(k), H.Sk(k, gauge="lattice"))):
        ref = sgn[:, None] * ours[np.ix_(idx, idx)] * sgn[None, :]
        err = max(err, float(np.abs(theirs.toarray() - ref).max()))
    return err


def test_hk_and_sk_match_element_by_element(graphene):
    H = sisl_io.to_sisl(graphene)
    assert not H.orthogonal and H.spin.is_unpolarized
    assert tuple(H.geometry.lattice.nsc) == (5, 5, 1)  # |R| <= 2 in-plane
    for k in generic_kpoints(3, seed=1):
        assert _hk_mismatch(graphene, H, k) < 1e-12


def test_wrong_r_sign_is_caught(graphene):
    """Storing H_ij(R) at -R gives H(k)^T: same eigenvalues, but not the same H(k)."""
    flipped = {(-k[0], -k[1], -k[2], k[3], k[4]): b for k, b in graphene.hamiltonians.items()}
    s_flip = {(-k[0], -k[1], -k[2], k[3], k[4]): b for k, b in graphene.overlaps.items()}
    H = sisl_io.to_sisl(graphene, flipped, s_flip)
    k = generic_kpoints(1, seed=2)[0]
    assert _hk_mismatch(graphene, H, k) > 1e-2
    np.testing.assert_allclose(H.eigh(k), H.eigh(-k), atol=1e-9)  # why eigenvalues can't tell


@pytest.mark.parametrize("rotated", [False, True], ids=["as-stored", "rotated"])
def test_eigenvalues_match_tgkit(graphene, rotated):
    """tgkit's band solver and sisl agree to 1e-8 eV at 20 generic k (CP2K C, s s p p d)."""
    s = rotate(graphene, random_rotation(5)) if rotated else graphene
    kpts = generic_kpoints(20)
    ours = band_energies(s, kpts, solver="dense")
    assert not np.isnan(ours).any()  # no overlap direction was projected out
    H = sisl_io.to_sisl(s)
    theirs = np.stack([H.eigh(k, gauge="lattice") for k in kpts])
    assert np.abs(ours - theirs).max() < 1e-8


def test_spinful_eigenvalues_match_tgkit(spinful):
    H = sisl_io.to_sisl(spinful)
    assert H.spin.is_spinorbit
    kpts = generic_kpoints(5, seed=4)
    ours = band_energies(spinful, kpts, solver="dense")
    theirs = np.stack([H.eigh(k) for k in kpts])
    assert np.abs(ours - theirs).max() < 1e-8


# ----------------------------------------------------------------------------- pi states


# K = (1/3, 1/3) of the 2x2 cell (120 degree lattice vectors) and points near it
K_NEAR_DIRAC = np.array([[1 / 3, 1 / 3, 0], [0.30, 0.36, 0], [0.36, 0.31, 0], [0.35, 0.35, 0]])


def _pi_character(structure: Structure, H, normal: np.ndarray) -> dict[int, float]:
    """Per l in (1, 2): |even part|^2 / |odd part|^2 of the states within E_F +- 1 eV near K.

    On each atom the state's l-shell part is the function sum_m c_m Y_lm(r) with sisl's own
    Y_lm of each orbital's (l, m); pi states are odd under the mirror r -> r - 2 (r.n) n.
    """
    pts = _unit_points()
    mir = pts - 2 * (pts @ normal)[:, None] * normal
    geom = H.geometry
    even = {1: 0.0, 2: 0.0}
    odd = {1: 0.0, 2: 0.0}
    for k in K_NEAR_DIRAC:
        es = H.eigenstate(k, gauge="lattice")
        c = es.state[np.abs(es.eig - structure.fermi_level) < 1.0]
        assert len(c) >= 2
        for a in range(geom.na):
            orbs = geom.atoms[a].orbitals
            for l in (1, 2):
                cols = [geom.firsto[a] + q for q, o in enumerate(orbs) if o.l == l]
                y = np.stack([_spher(l, orbs[q].m, pts) for q, o in enumerate(orbs)
                              if o.l == l], 1)
                ym = np.stack([_spher(l, orbs[q].m, mir) for q, o in enumerate(orbs)
                               if o.l == l], 1)
                f, fm = c[:, cols] @ y.T, c[:, cols] @ ym.T
                even[l] += float(np.sum(np.abs(f + fm) ** 2))
                odd[l] += float(np.sum(np.abs(f - fm) ** 2))
    return {l: even[l] / odd[l] for l in (1, 2)}


@pytest.fixture(scope="module")
def tilted(graphene):
    rot = random_rotation(7)
    return rotate(graphene, rot), rot @ np.array([0.0, 0.0, 1.0])


PI_TOL = 0.05  # the shipped layer is thermally rippled (|dz| ~ 0.1 A), so not exactly odd


def test_pi_states_are_odd_in_sisl_orbitals(tilted):
    s, normal = tilted
    ratio = _pi_character(s, sisl_io.to_sisl(s), normal)
    assert ratio[1] < PI_TOL and ratio[2] < PI_TOL, ratio


@pytest.mark.parametrize("wrong", ["openmx-order-as-m", "no-condon-shortley-sign"])
def test_wrong_m_mapping_fails_the_pi_check(tilted, monkeypatch, wrong):
    """The same check with a deliberately wrong (l, m) mapping: it must fail."""
    s, normal = tilted
    if wrong == "openmx-order-as-m":
        def bad(block, ti, tj):
            return block
    else:
        bad = irreps.openmx_to_e3nn_block  # right m order, signs dropped
    monkeypatch.setattr(sisl_io, "openmx_to_sisl_block", bad)
    ratio = _pi_character(s, sisl_io.to_sisl(s), normal)
    assert ratio[1] > 3 * PI_TOL or ratio[2] > 3 * PI_TOL, ratio


# ----------------------------------------------------------------------------- round trips


def _assert_same(a: Structure, b: Structure) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.lattice, b.lattice)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.orbital_types == b.orbital_types and a.spinful == b.spinful
    assert set(a.hamiltonians) == set(b.hamiltonians)
    for k, blk in a.hamiltonians.items():
        assert b.hamiltonians[k].dtype == blk.dtype
        np.testing.assert_array_equal(b.hamiltonians[k], blk)
    if a.overlaps is None:
        assert b.overlaps is None
    else:
        assert set(a.overlaps) == set(b.overlaps)
        for k, blk in a.overlaps.items():
            np.testing.assert_array_equal(b.overlaps[k], blk)


def test_round_trip_graphene(graphene):
    _assert_same(graphene, sisl_io.from_sisl(sisl_io.to_sisl(graphene)))


def test_round_trip_spinful_mixed_species(spinful):
    _assert_same(spinful, sisl_io.from_sisl(sisl_io.to_sisl(spinful)))


def test_round_trip_soc_graphene_through_nc_file(graphene, tmp_path):
    soc = to_spinful(graphene)
    out = sisl_io.export_sisl(soc, tmp_path / "soc.nc")
    # a SIESTA .nc keeps no (l, m) labels: the orbital types come from the structure
    H = sisl.get_sile(out).read_hamiltonian()
    with pytest.raises(TgkitError, match="orbital_types"):
        sisl_io.from_sisl(H)
    back = sisl_io.from_sisl(H, orbital_types=soc.orbital_types)
    k = generic_kpoints(1, seed=6)[0]
    e_ref = band_energies(soc, k[None], solver="dense")[0] - soc.fermi_level
    np.testing.assert_allclose(band_energies(back, k[None], solver="dense")[0], e_ref,
                               atol=1e-8)


# ----------------------------------------------------------------------------- DOS


def test_dos_against_tgkit_eigenvalues(graphene):
    kmesh, sigma = (3, 3, 1), 0.1
    H = sisl_io.to_sisl(graphene)
    mp = sisl.MonkhorstPack(H, list(kmesh), trs=True)
    eig = band_energies(graphene, mp.k, solver="dense")
    energies = np.arange(eig.min() - 1.0, eig.max() + 1.0, 0.02)
    d = sisl_io.dos(graphene, None, energies, kmesh=kmesh, smearing=sigma)
    gauss = np.exp(-0.5 * ((energies[None, None] - eig[..., None]) / sigma) ** 2)
    ref = np.einsum("k,kbe->e", mp.weight, gauss) / (sigma * np.sqrt(2 * np.pi))
    assert np.abs(d - ref).max() < 1e-8
    # all 104 states inside the window: the DOS integrates to the orbital count
    assert abs(np.trapezoid(d, energies) - 104) < 1e-3
    assert np.all(d >= 0)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """An untrained tiny model (s s p carbon) and one toy DeepH directory it applies to."""
    from tgkit.config import config_from_dict
    from tgkit.irreps import OrbitalBasis
    from tgkit.nn import save_model
    from tgkit.testing import toy_dataset
    from tgkit.train.run import build_model

    root = tmp_path_factory.mktemp("sisl-cli")
    s = toy_dataset(1, numbers=(6, 6), basis={6: (0, 0, 1)}, cutoff=4.0)[0]
    s.fermi_level = -1.5
    d = write_structure(s, root / "data" / s.name)
    cfg = config_from_dict({
        "model": {"irreps_embed": "4x0e", "irreps_hidden": "4x0e+2x1o+2x2e", "num_blocks": 1,
                  "lmax": 2, "num_radial": 8, "radial_hidden": 8, "cutoff": 4.0,
                  "avg_num_neighbors": 10.0},
        "tracegrad": {"setup": "baseline"},
        "train": {"dtype": "float64", "device": "cpu"},
    })
    torch.manual_seed(0)
    model = build_model(cfg, OrbitalBasis({6: (0, 0, 1)}), False, torch.float64)
    save_model(model.export_inference(), root / "model.pt")
    return root / "model.pt", d


def test_cli_export_prediction_and_dft(toy_model, tmp_path, capsys):
    from tgkit.cli import main
    from tgkit.train.run import predict_one

    model, d = toy_model
    out = tmp_path / "pred.nc"
    assert main(["export", "sisl", str(model), str(d), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    s, pred = predict_one(model, d, "cpu")
    H_file = sisl.get_sile(out).read_hamiltonian()
    H_ref = sisl_io.to_sisl(s, sisl_io.hermitize(pred))
    k = [0.13, 0.27, 0.31]
    np.testing.assert_allclose(H_file.eigh(k), H_ref.eigh(k) - s.fermi_level, atol=1e-9)
    # refuses to overwrite without --force, leaves the file alone
    before = out.read_bytes()
    assert main(["export", "sisl", str(model), str(d), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    # --dft: the stored blocks; --force replaces
    assert main(["export", "sisl", "--dft", str(d), "--out", str(out), "--force"]) == 0
    H_dft = sisl.get_sile(out).read_hamiltonian()
    np.testing.assert_allclose(H_dft.eigh(k), sisl_io.to_sisl(s).eigh(k) - s.fermi_level,
                               atol=1e-9)
    # TSHS (what TBtrans reads): same energies, relative to E_F
    tshs = tmp_path / "dft.TSHS"
    assert main(["export", "sisl", "--dft", str(d), "--out", str(tshs)]) == 0
    H_ts = sisl.get_sile(tshs).read_hamiltonian(geometry=sisl_io.sisl_geometry(s))
    np.testing.assert_allclose(H_ts.eigh(k), H_dft.eigh(k), atol=1e-9)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_cli_export_bad_arguments(toy_model, tmp_path, capsys):
    from tgkit.cli import main

    model, d = toy_model
    assert main(["export", "sisl", str(d), "--out", str(tmp_path / "x.nc")]) == 2
    assert main(["export", "sisl", str(model), str(d), "--out", str(tmp_path / "x.h5")]) == 2
    assert "unknown sisl format" in capsys.readouterr().err
