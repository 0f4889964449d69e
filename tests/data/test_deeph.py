"""Reader and writer of DeepH directories: round trips and every bad-input case."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tgkit.data.deeph import read_structure, read_tree, write_structure
from tgkit.errors import DeepHFormatError


def assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.lattice, b.lattice)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert a.orbital_types == b.orbital_types
    assert a.spinful == b.spinful and a.fermi_level == b.fermi_level
    assert set(a.hamiltonians) == set(b.hamiltonians)
    for k in a.hamiltonians:
        assert a.hamiltonians[k].dtype == b.hamiltonians[k].dtype
        np.testing.assert_array_equal(a.hamiltonians[k], b.hamiltonians[k])
    if a.overlaps is not None:
        for k in a.overlaps:
            np.testing.assert_array_equal(a.overlaps[k], b.overlaps[k])


@pytest.mark.parametrize("which", ["carbon", "mixed", "spinful"])
def test_round_trip_is_exact(which, request, tmp_path):
    s = request.getfixturevalue(which)
    write_structure(s, tmp_path / "s")
    back = read_structure(tmp_path / "s")
    assert_same(s, back)
    # and again: the written files are a fixed point
    write_structure(back, tmp_path / "t")
    assert_same(s, read_structure(tmp_path / "t"))


def test_file_layout_follows_deeph(mixed, tmp_path):
    d = write_structure(mixed, tmp_path / "s")
    lat = np.loadtxt(d / "lat.dat")
    np.testing.assert_array_equal(lat[:, 0], mixed.lattice[0])  # columns are lattice vectors
    pos = np.loadtxt(d / "site_positions.dat")
    assert pos.shape == (3, 4)  # columns are atoms
    rlat = np.loadtxt(d / "rlat.dat")
    np.testing.assert_allclose(mixed.lattice @ rlat, 2 * np.pi * np.eye(3), atol=1e-12)
    assert (d / "orbital_types.dat").read_text().splitlines() == [
        "0 0 1 1 2",
        "0 0 1 1 2",
        "0 0 1",
        "0 0 1",
    ]
    with h5py.File(d / "hamiltonians.h5") as f:
        assert "[0, 0, 0, 1, 1]" in f  # 1-based atoms, comma + space
        assert f["[0, 0, 0, 3, 3]"].shape == (5, 5)  # H: s s p = 5 orbitals
        assert f["[0, 0, 0, 1, 3]"].shape == (13, 5)
    info = json.loads((d / "info.json").read_text())
    assert info["isspinful"] is False


def test_spinful_blocks_are_complex_and_double(spinful, tmp_path):
    d = write_structure(spinful, tmp_path / "s")
    with h5py.File(d / "hamiltonians.h5") as f:
        blk = f["[0, 0, 0, 1, 3]"][()]
    assert np.iscomplexobj(blk) and blk.shape == (26, 10)
    with h5py.File(d / "overlaps.h5") as f:
        assert f["[0, 0, 0, 1, 3]"].shape == (13, 5)  # overlaps stay spinless


def test_read_tree_and_prediction_file(carbon, mixed, tmp_path):
    write_structure(carbon, tmp_path / "root" / "a")
    write_structure(mixed, tmp_path / "root" / "b")
    names = [s.name for s in read_tree(tmp_path / "root")]
    assert names == ["a", "b"]
    write_structure(carbon, tmp_path / "root" / "a", hamiltonian_file="hamiltonians_pred.h5")
    assert (tmp_path / "root" / "a" / "hamiltonians_pred.h5").exists()
    with pytest.raises(DeepHFormatError, match="already exists"):
        write_structure(carbon, tmp_path / "root" / "a")


# ------------------------------------------------------------------------- bad input


@pytest.fixture()
def good(carbon, tmp_path) -> Path:
    return write_structure(carbon, tmp_path / "good")


def _edit_h5(path: Path, fn) -> None:
    with h5py.File(path, "a") as f:
        fn(f)


def test_missing_file(good):
    (good / "orbital_types.dat").unlink()
    with pytest.raises(DeepHFormatError, match=r"orbital_types\.dat: missing file"):
        read_structure(good)


def test_missing_hamiltonian(good):
    (good / "hamiltonians.h5").unlink()
    with pytest.raises(DeepHFormatError, match=r"hamiltonians\.h5: missing file"):
        read_structure(good)


@pytest.mark.parametrize(
    "key", ["[0, 0, 0, 1]", "0 0 0 1 1", "[0, 0, 0.5, 1, 1]", "[0, 0, 0, 0, 1]"]
)
def test_malformed_key(good, key):
    _edit_h5(good / "hamiltonians.h5", lambda f: f.create_dataset(key, data=np.zeros((13, 13))))
    with pytest.raises(DeepHFormatError) as exc:
        read_structure(good)
    assert "hamiltonians.h5" in str(exc.value) and repr(key) in str(exc.value)


def test_wrong_block_shape(good):
    def fn(f):
        del f["[0, 0, 0, 1, 1]"]
        f["[0, 0, 0, 1, 1]"] = np.zeros((13, 5))

    _edit_h5(good / "hamiltonians.h5", fn)
    with pytest.raises(
        DeepHFormatError, match=r"key '\[0, 0, 0, 1, 1\]': block of shape \(13, 5\)"
    ):
        read_structure(good)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf(good, bad):
    def fn(f):
        blk = f["[0, 0, 0, 2, 2]"][()]
        blk[0, 0] = bad
        f["[0, 0, 0, 2, 2]"][...] = blk

    _edit_h5(good / "hamiltonians.h5", fn)
    with pytest.raises(DeepHFormatError, match="NaN or inf"):
        read_structure(good)


def test_nan_in_text_file(good):
    (good / "lat.dat").write_text("1 0 0\n0 nan 0\n0 0 1\n")
    with pytest.raises(DeepHFormatError, match=r"lat\.dat: contains NaN or inf"):
        read_structure(good)


def test_complex_in_spinless(good):
    def fn(f):
        blk = f["[0, 0, 0, 1, 1]"][()]
        del f["[0, 0, 0, 1, 1]"]
        f["[0, 0, 0, 1, 1]"] = blk.astype(complex)

    _edit_h5(good / "hamiltonians.h5", fn)
    with pytest.raises(DeepHFormatError, match="complex block in a spinless directory"):
        read_structure(good)


def test_real_in_spinful(spinful, tmp_path):
    d = write_structure(spinful, tmp_path / "soc")

    def fn(f):
        blk = f["[0, 0, 0, 1, 1]"][()]
        del f["[0, 0, 0, 1, 1]"]
        f["[0, 0, 0, 1, 1]"] = blk.real

    _edit_h5(d / "hamiltonians.h5", fn)
    with pytest.raises(DeepHFormatError, match="real block in a spinful directory"):
        read_structure(d)


def test_missing_partner(good):
    with h5py.File(good / "hamiltonians.h5", "a") as f:
        key = next(k for k in f.keys() if json.loads(k)[3] != json.loads(k)[4])
        del f[key]
    with pytest.raises(DeepHFormatError, match="has no partner"):
        read_structure(good)


def test_partner_not_conjugate_transpose(good):
    def fn(f):
        key = next(k for k in f.keys() if json.loads(k)[3] != json.loads(k)[4])
        blk = f[key][()]
        blk[0, 1] += 0.1
        f[key][...] = blk

    _edit_h5(good / "hamiltonians.h5", fn)
    with pytest.raises(DeepHFormatError, match="not the conjugate transpose"):
        read_structure(good)


def test_atom_without_orbitals(good):
    lines = (good / "orbital_types.dat").read_text().splitlines()
    lines[1] = ""
    (good / "orbital_types.dat").write_text("\n".join(lines) + "\n")
    with pytest.raises(DeepHFormatError, match="atom 2 has no orbitals"):
        read_structure(good)


def test_empty_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeepHFormatError, match="empty"):
        read_structure(tmp_path / "empty")
    with pytest.raises(DeepHFormatError, match="no DeepH structure"):
        list(read_tree(tmp_path / "empty"))


def test_failed_write_leaves_nothing(carbon, tmp_path):
    bad = type(carbon)(**{**carbon.__dict__, "hamiltonians": {(0, 0, 0, 0, 0): object()}})
    with pytest.raises(TypeError):
        write_structure(bad, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
