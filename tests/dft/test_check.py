"""``tgkit data check`` on the shipped tiny slice of real CP2K data, and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tgkit.dft.check import check_directory, check_structure, parse_cp2k_basis
from tgkit.errors import TgkitError

TINY = Path(__file__).resolve().parents[2] / "datasets" / "graphene-tiny"
pyscf = pytest.importorskip("pyscf")


def test_tiny_slice_passes_all_checks():
    report = check_directory(TINY)
    assert report.ok and len(report.structures) == 2
    for s in report.structures:
        assert s.errors["hermiticity_H"] < 1e-10
        assert s.errors["overlap_vs_pyscf"] < 1e-6
        assert s.errors["mesh_full_recorded"] < 1e-4  # conversion exact on the SCF mesh
        assert s.errors["path_full_recorded"] < 1e-2
        assert s.errors["path_bands_window"] < 1e-2
        assert not s.skipped


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "s"
    shutil.copytree(TINY / "0000", d)
    (d / "dft_bands.json").unlink()  # these tests target the geometry check only
    return d


def test_geometry_check_catches_wrong_p_order(tmp_path):
    d = _copy(tmp_path)
    with h5py.File(d / "overlaps.h5", "r+") as f:
        for key in f:
            b = f[key][()]
            # px, py, pz of both p shells read as CP2K's (y, z, x): a wrong conversion
            perm = np.arange(13)
            perm[2:5], perm[5:8] = [3, 4, 2], [6, 7, 5]
            f[key][...] = b[np.ix_(perm, perm)]
    rep = check_structure(d)
    assert not rep.ok and "PySCF" in rep.failures[0]
    with pytest.raises(TgkitError, match="S blocks differ from PySCF"):
        check_directory(d)


def test_geometry_check_catches_wrong_cell_labels(tmp_path):
    d = _copy(tmp_path)
    # relabel R -> R + (1, 0, 0) on atom 1's pairs (both directions): hermitian but wrong
    for name in ("overlaps.h5", "hamiltonians.h5"):
        with h5py.File(d / name, "r") as f:
            src = {k: f[k][()] for k in f}
        with h5py.File(d / name, "w") as f:
            for text in src:
                rx, ry, rz, i, j = (int(x) for x in text.strip("[]").split(","))
                shift = 1 if i == 1 and j != 1 else (-1 if j == 1 and i != 1 else 0)
                f[f"[{rx + shift}, {ry}, {rz}, {i}, {j}]"] = src[text]
    rep = check_structure(d)
    assert rep.errors["hermiticity_H"] < 1e-10  # a gauge change: hermiticity cannot see it
    assert rep.errors["overlap_vs_pyscf"] > 1e-2


def test_parse_cp2k_basis_keeps_cp2k_shell_order():
    text = (TINY / "0000" / "info.json").read_text()
    shells = parse_cp2k_basis(json.loads(text)["basis_sets"]["C"])
    assert [sh[0] for sh in shells] == [0, 1, 2]
    assert [len(sh[1]) - 1 for sh in shells] == [2, 2, 1]  # contractions: 2s 2p 1d


def test_missing_directory_is_a_clean_error(tmp_path):
    with pytest.raises(TgkitError, match="no such directory"):
        check_directory(tmp_path / "nope")
