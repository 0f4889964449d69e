"""The `tgkit` command: data check, bands, preprocess, and one-line errors on bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

from tgkit.cli import main
from tgkit.data.deeph import format_key, parse_key

TINY = Path(__file__).resolve().parents[1] / "datasets" / "graphene-tiny"


def test_data_check_passes_on_shipped_data(capsys):
    assert main(["data", "check", str(TINY / "0000"), "--no-geometry"]) == 0
    out = capsys.readouterr().out
    assert "1/1 structures pass" in out and "hermiticity_H" in out


def test_data_check_fails_on_corrupted_blocks(tmp_path, capsys):
    d = shutil.copytree(TINY / "0000", tmp_path / "bad")
    with h5py.File(d / "hamiltonians.h5", "a") as f:
        key = next(k for k in f if json.loads(k)[3] != json.loads(k)[4])
        rx, ry, rz, i, j = parse_key(d, key)
        partner = format_key((-rx, -ry, -rz, j, i))
        blk = f[key][()]
        blk += 0.2  # both partners shifted: still hermitian, but no longer the DFT bands
        f[key][...] = blk
        f[partner][...] = blk.T
    assert main(["data", "check", str(d), "--no-geometry"]) == 2
    captured = capsys.readouterr()
    assert "data check failed" in captured.err and "Traceback" not in captured.err


def test_data_check_without_pyscf_skips_geometry_only(monkeypatch, capsys):
    """No PySCF: hermiticity and bands still run; geometry is a listed skip, not a failure."""
    monkeypatch.setitem(sys.modules, "pyscf", None)  # `import pyscf` raises ImportError
    monkeypatch.setitem(sys.modules, "pyscf.gto", None)
    assert main(["data", "check", str(TINY / "0000")]) == 0
    out = capsys.readouterr().out
    assert "geometry (skipped: pyscf not installed)" in out
    assert "hermiticity_H" in out and "mesh_bands" in out and "1/1 structures pass" in out
    assert "overlap_vs_pyscf" not in out


def test_bands_writes_figure_and_table(tmp_path, capsys):
    d = shutil.copytree(TINY / "0000", tmp_path / "s")
    shutil.copy(d / "hamiltonians.h5", d / "hamiltonians_pred.h5")
    assert main(["bands", str(d), "--out", str(tmp_path / "out"), "--npoints", "12"]) == 0
    summary = json.loads((tmp_path / "out" / "bands.json").read_text())
    assert summary["max_error_meV"] == 0.0 and summary["num_kpoints"] == 12
    assert (tmp_path / "out" / "bands.png").stat().st_size > 1000
    rows = np.genfromtxt(tmp_path / "out" / "bands.csv", delimiter=",", names=True)
    assert len(rows) == 12 * 104  # k points x bands (8 atoms x 13 orbitals)


def test_errors_are_one_line_naming_the_file(tmp_path, capsys):
    d = shutil.copytree(TINY / "0000", tmp_path / "s")
    (d / "site_positions.dat").unlink()
    assert main(["preprocess", str(tmp_path), "--out", str(tmp_path / "c.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "site_positions.dat: missing file" in err
    assert not (tmp_path / "c.h5").exists()
    assert main(["data", "build", "--out", str(tmp_path / "x"), "--family", "XX"]) == 2
    assert "unknown family 'XX'" in capsys.readouterr().err


def test_preprocess_reports_the_cache(tmp_path, capsys):
    assert main(["preprocess", str(TINY), "--out", str(tmp_path / "c.h5"), "--quiet"]) == 0
    assert "2 structures" in capsys.readouterr().out
