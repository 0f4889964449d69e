"""Validation at read time: the skip-bad listing, the overridable block bound, clean data.

The per-variant checks (one line naming file and key, exit code 2, no leftovers, through
every command) are the generated suite in ``tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import pytest

from tgkit.cli import main
from tgkit.data import validate
from tgkit.data.deeph import read_structure
from tgkit.errors import DeepHFormatError

TINY = Path(__file__).resolve().parents[2] / "datasets" / "graphene-tiny"


def _h5_set(d: Path, name: str, key: str, value: float) -> None:
    with h5py.File(d / name, "a") as f:
        blk = f[key][()]
        blk[0, 0] = value
        f[key][...] = blk


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clean") / "0000"
    shutil.copytree(TINY / "0000", d, ignore=shutil.ignore_patterns("dft_bands.json"))
    return d


def _corrupt(clean: Path, tmp_path: Path, corrupt: Callable[[Path], None]) -> Path:
    d = shutil.copytree(clean, tmp_path / "data" / "0000")
    corrupt(d)
    return d


def test_broken_directory_is_a_listed_skip_with_the_flag(clean, tmp_path, capsys):
    """Without --skip-bad it is an error (tests/test_bad_inputs.py, tree-no-h5-at-all)."""
    _corrupt(clean, tmp_path, lambda d: None)
    shutil.copytree(clean, tmp_path / "data" / "0001")
    bad = shutil.copytree(clean, tmp_path / "data" / "0002")
    (bad / "hamiltonians.h5").unlink()
    (bad / "overlaps.h5").unlink()  # no h5 at all: used to be skipped without a word
    out = tmp_path / "c.h5"
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
