"""Bad DeepH input: one line naming the file and key, exit code 2, no traceback, no leftovers.

Every variant corrupts a copy of the shipped CP2K structure ``datasets/graphene-tiny/0000``
and runs it through ``tgkit preprocess``, ``tgkit data check`` and ``tgkit train``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from tgkit.cli import main
from tgkit.data import validate
from tgkit.data.deeph import read_structure
from tgkit.errors import DeepHFormatError

TINY = Path(__file__).resolve().parents[2] / "datasets" / "graphene-tiny"


def _lines(d: Path, name: str, n: int, text: str) -> None:
    lines = (d / name).read_text().splitlines()
    lines[n] = text
    (d / name).write_text("\n".join(lines) + "\n")


def _matrix(d: Path, name: str, edit: Callable[[np.ndarray], None]) -> None:
    arr = np.loadtxt(d / name, ndmin=2)
    edit(arr)
    np.savetxt(d / name, arr, fmt="%.17g")


def _info(d: Path, **kv) -> None:
    doc = json.loads((d / "info.json").read_text())
    doc.update(kv)
    (d / "info.json").write_text(json.dumps(doc))


def _h5_set(d: Path, name: str, key: str, value: float) -> None:
    with h5py.File(d / name, "a") as f:
        blk = f[key][()]
        blk[0, 0] = value
        f[key][...] = blk


def _h5_drop(d: Path, name: str, key: str) -> None:
    with h5py.File(d / name, "a") as f:
        del f[key]


def _flip(d: Path, name: str, offset: int, count: int = 64) -> None:
    raw = bytearray((d / name).read_bytes())
    for k in range(offset, offset + count):
        raw[k] ^= 0xFF
    (d / name).write_bytes(bytes(raw))


def _truncate(d: Path, name: str) -> None:
    raw = (d / name).read_bytes()
    (d / name).write_bytes(raw[: len(raw) // 2])


# (id, corruption, file named in the message, further text the message must hold)
CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("z-zero", lambda d: _lines(d, "element.dat", 0, "0"), "element.dat", "line 1"),
    ("z-negative", lambda d: _lines(d, "element.dat", 2, "-6"), "element.dat", "line 3"),
    ("z-fraction", lambda d: _lines(d, "element.dat", 1, "6.7"), "element.dat", "not an integer"),
    ("z-too-big", lambda d: _lines(d, "element.dat", 0, "119"), "element.dat", "1..118"),
    ("z-text", lambda d: _lines(d, "element.dat", 0, "C"), "element.dat", "numbers"),
    ("two-bases", lambda d: _lines(d, "orbital_types.dat", 3, "0 1"), "orbital_types.dat",
     "line 4"),
    ("orbitals-non-utf8", lambda d: (d / "orbital_types.dat").write_bytes(b"0 0 1\xff\xfe\n"),
     "orbital_types.dat", "UTF-8"),
    ("lattice-collinear", lambda d: _matrix(d, "lat.dat", lambda a: a.__setitem__(
        (slice(None), 1), 2 * a[:, 0])), "lat.dat", "singular"),
    ("lattice-zero", lambda d: _matrix(d, "lat.dat", lambda a: a.__setitem__(
        (slice(None), 2), 0.0)), "lat.dat", "zero"),
    ("lattice-huge", lambda d: _matrix(d, "lat.dat", lambda a: a.__setitem__((0, 0), 1e30)),
     "lat.dat", "exceeds"),
    ("lattice-nan", lambda d: _matrix(d, "lat.dat", lambda a: a.__setitem__((0, 0), np.nan)),
     "lat.dat", "NaN"),
    ("position-huge", lambda d: _matrix(d, "site_positions.dat",
                                        lambda a: a.__setitem__((0, 3), 1e30)),
     "site_positions.dat", "exceeds"),
    ("position-inf", lambda d: _matrix(d, "site_positions.dat",
                                       lambda a: a.__setitem__((1, 0), np.inf)),
     "site_positions.dat", "NaN or inf"),
    ("atoms-same-place", lambda d: _matrix(d, "site_positions.dat",
                                           lambda a: a.__setitem__((slice(None), 5), a[:, 2])),
     "site_positions.dat", "atoms 3 and 6"),
    ("atom-on-image", lambda d: _matrix(d, "site_positions.dat", lambda a: a.__setitem__(
        (slice(None), 1), a[:, 0] + np.loadtxt(d / "lat.dat")[:, 0] + 0.1)),
     "site_positions.dat", "atoms 1 and 2"),
    ("info-non-utf8", lambda d: (d / "info.json").write_bytes(b'{"isspinful": \xff}'),
     "info.json", "UTF-8"),
    ("info-not-json", lambda d: (d / "info.json").write_text("{isspinful: no"), "info.json",
     "invalid JSON"),
    ("fermi-string", lambda d: _info(d, fermi_level="abc"), "info.json", "'fermi_level'"),
    ("fermi-nan", lambda d: (d / "info.json").write_text('{"fermi_level": NaN}'), "info.json",
     "'fermi_level'"),
    ("spinful-string", lambda d: _info(d, isspinful="false"), "info.json", "'isspinful'"),
    ("twisted-number", lambda d: _info(d, twisted=1), "info.json", "'twisted'"),
    ("block-huge", lambda d: _h5_set(d, "hamiltonians.h5", "[0, 0, 0, 1, 1]", 1e30),
     "hamiltonians.h5", "'[0, 0, 0, 1, 1]'"),
    ("block-nan", lambda d: _h5_set(d, "hamiltonians.h5", "[0, 0, 0, 2, 2]", np.nan),
     "hamiltonians.h5", "'[0, 0, 0, 2, 2]'"),
    ("overlap-huge", lambda d: _h5_set(d, "overlaps.h5", "[0, 0, 0, 3, 3]", -1e6),
     "overlaps.h5", "'[0, 0, 0, 3, 3]'"),
    ("h5-truncated", lambda d: _truncate(d, "hamiltonians.h5"), "hamiltonians.h5", "HDF5"),
    ("h5-header-flipped", lambda d: _flip(d, "hamiltonians.h5", 0), "hamiltonians.h5", "HDF5"),
    ("h5-index-flipped", lambda d: _flip(d, "hamiltonians.h5", 800), "hamiltonians.h5", ""),
    ("h5-not-hdf5", lambda d: (d / "hamiltonians.h5").write_text("hello"), "hamiltonians.h5",
     "HDF5"),
    ("overlap-partner-missing", lambda d: _h5_drop(d, "overlaps.h5", "[0, 0, 0, 1, 2]"),
     "overlaps.h5", "'[0, 0, 0, 2, 1]'"),
    ("overlap-key-missing", lambda d: (_h5_drop(d, "overlaps.h5", "[0, 0, 0, 1, 2]"),
                                       _h5_drop(d, "overlaps.h5", "[0, 0, 0, 2, 1]")),
     "overlaps.h5", "'[0, 0, 0, 1, 2]'"),
    ("h-key-missing", lambda d: (_h5_drop(d, "hamiltonians.h5", "[0, 0, 0, 1, 2]"),
                                 _h5_drop(d, "hamiltonians.h5", "[0, 0, 0, 2, 1]")),
     "overlaps.h5", "'[0, 0, 0, 1, 2]'"),
    ("h-missing", lambda d: (d / "hamiltonians.h5").unlink(), "hamiltonians.h5", "missing"),
]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clean") / "0000"
    shutil.copytree(TINY / "0000", d, ignore=shutil.ignore_patterns("dft_bands.json"))
    return d


def _corrupt(clean: Path, tmp_path: Path, corrupt: Callable[[Path], None]) -> Path:
    d = shutil.copytree(clean, tmp_path / "data" / "0000")
    corrupt(d)
    return d


def _one_line_error(capsys, file: str, text: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.count("\n") == 0, err
    assert file in err and text in err, err
    return err


@pytest.mark.parametrize(("corrupt", "file", "text"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_preprocess_and_check_reject_bad_input(clean, tmp_path, capsys, corrupt, file, text):
    d = _corrupt(clean, tmp_path, corrupt)
    out = tmp_path / "cache.h5"
    assert main(["preprocess", str(tmp_path / "data"), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, file, text)
    assert not out.exists() and not out.with_name("cache.h5.tmp").exists()
    assert main(["data", "check", str(d), "--no-geometry"]) == 2
    _one_line_error(capsys, file, text)


@pytest.mark.parametrize("case", ["z-fraction", "fermi-string", "h5-truncated",
                                  "atoms-same-place"])
def test_train_rejects_bad_input(clean, tmp_path, capsys, case):
    _, corrupt, file, text = next(c for c in CASES if c[0] == case)
    _corrupt(clean, tmp_path, corrupt)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--out-dir", str(run), "--quiet",
                 "--device", "cpu"]) == 2
    _one_line_error(capsys, file, text)
    assert not (run / "graphs.h5").exists() and not (run / "model.pt").exists()


def test_element_with_two_bases_across_structures(clean, tmp_path, capsys):
    """Nitrogen given carbon's basis is only detectable against another structure."""
    _corrupt(clean, tmp_path, lambda d: None)
    other = shutil.copytree(clean, tmp_path / "data" / "0001")
    (other / "orbital_types.dat").write_text("0 1\n" * 8)
    assert main(["preprocess", str(tmp_path / "data"), "--out", str(tmp_path / "c.h5"),
                 "--quiet"]) == 2
    err = _one_line_error(capsys, "0001/orbital_types.dat", "0000/orbital_types.dat")
    assert "Z=6" in err


def test_plain_file_as_data_is_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a cache")
    assert main(["train", "--data", str(tmp_path / "notes.txt"), "--out-dir",
                 str(tmp_path / "run"), "--quiet", "--device", "cpu"]) == 2
    _one_line_error(capsys, "notes.txt", "not an HDF5 file")


def test_broken_directory_is_an_error_or_a_listed_skip(clean, tmp_path, capsys):
    _corrupt(clean, tmp_path, lambda d: None)
    shutil.copytree(clean, tmp_path / "data" / "0001")
    bad = shutil.copytree(clean, tmp_path / "data" / "0002")
    (bad / "hamiltonians.h5").unlink()
    (bad / "overlaps.h5").unlink()  # no h5 at all: used to be skipped without a word
    out = tmp_path / "c.h5"
    assert main(["preprocess", str(tmp_path / "data"), "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "0002/hamiltonians.h5", "missing file")
    assert main(["preprocess", str(tmp_path / "data"), "--out", str(out), "--quiet",
                 "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 of 3 structure(s)" in captured.err and "0002" in captured.err
    assert "2 structures" in captured.out
    assert json.loads(h5py.File(out, "r").attrs["skipped"])


def test_block_bound_is_overridable(clean, tmp_path, monkeypatch):
    d = _corrupt(clean, tmp_path, lambda d: None)
    for key in ("[0, 0, 0, 1, 1]",):
        _h5_set(d, "hamiltonians.h5", key, 2e4)
    with pytest.raises(DeepHFormatError, match="exceeds 10000 eV"):
        read_structure(d)
    assert read_structure(d, max_block_value=1e5).num_atoms == 8
    monkeypatch.setenv(validate.MAX_BLOCK_ENV, "1e5")
    assert read_structure(d).num_atoms == 8
    monkeypatch.setenv(validate.MAX_BLOCK_ENV, "lots")
    with pytest.raises(DeepHFormatError, match="TGKIT_MAX_BLOCK_EV"):
        read_structure(d)


def test_clean_copy_reads(clean):
    s = read_structure(clean)
    assert s.num_atoms == 8 and s.fermi_level is not None and not s.spinful
    assert s.path == str(clean)
