"""The generated bad-input suite: every bad input is one clean line, and leaves nothing behind.

Each variant corrupts a copy of the shipped CP2K structure ``datasets/graphene-tiny/0000``
(or a config, or a model checkpoint) and runs it through the commands it concerns:
``preprocess``, ``data check``, ``train``, ``predict`` and ``eval``. Every (variant, command)
case asserts

* exit code 2;
* stderr is one line naming the offending file (and the key or text where applicable), with
  no traceback;
* no leftovers: the working directory holds exactly what it held before the command (no
  cache, no run directory, an unchanged pre-existing run directory, no partial predictions,
  no temporary directory of ``eval``).

Training never starts: bad data and config are detected up front (``Trainer.fit`` is
patched to fail the test if it is reached). The README's reliability paragraph quotes the
count printed by ``pytest tests/test_bad_inputs.py -q``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tgkit.cli import main
from tgkit.io_utils import save_torch

TINY = Path(__file__).resolve().parents[1] / "datasets" / "graphene-tiny"
H5 = "hamiltonians.h5"
S5 = "overlaps.h5"

# --------------------------------------------------------------------------- corruptions


def _lines(name: str, n: int, text: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        lines = (d / name).read_text().splitlines()
        lines[n] = text
        (d / name).write_text("\n".join(lines) + "\n")
    return edit


def _text(name: str, text: str | bytes) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        if isinstance(text, bytes):
            (d / name).write_bytes(text)
        else:
            (d / name).write_text(text)
    return edit


def _matrix(name: str, edit: Callable[[np.ndarray, Path], None]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        arr = np.loadtxt(d / name, ndmin=2)
        edit(arr, d)
        np.savetxt(d / name, arr, fmt="%.17g")
    return apply


def _set(index, value) -> Callable[[np.ndarray, Path], None]:
    def edit(a: np.ndarray, d: Path) -> None:
        a[index] = value(a, d) if callable(value) else value
    return edit


def _info(**kv) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        doc = json.loads((d / "info.json").read_text())
        doc.update(kv)
        (d / "info.json").write_text(json.dumps(doc))
    return edit


def _h5_set(name: str, key: str, value: float) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        with h5py.File(d / name, "a") as f:
            blk = f[key][()]
            blk[0, 0] = value
            f[key][...] = blk
    return edit


def _h5_drop(name: str, *keys: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        with h5py.File(d / name, "a") as f:
            for key in keys:
                del f[key]
    return edit


def _h5_add(name: str, key: str, value) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        with h5py.File(d / name, "a") as f:
            if callable(value):
                value(f, key)
            else:
                f[key] = value
    return edit


def _flip_bytes(path: Path, offset: int, count: int = 64) -> None:
    raw = bytearray(path.read_bytes())
    for k in range(offset, min(offset + count, len(raw))):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))


def _flip(name: str, offset: int) -> Callable[[Path], None]:
    return lambda d: _flip_bytes(d / name, offset)


def _truncate(name: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        raw = (d / name).read_bytes()
        (d / name).write_bytes(raw[: len(raw) // 2])
    return edit


def _unlink(*names: str) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        for n in names:
            (d / n).unlink()
    return edit


def _both(*edits: Callable[[Path], None]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        for e in edits:
            e(d)
    return edit


def _with_bands(edit_doc: Callable[[dict], object] | bytes) -> Callable[[Path], None]:
    """Put the shipped dft_bands.json back, then damage it."""
    def edit(d: Path) -> None:
        src = TINY / "0000" / "dft_bands.json"
        if isinstance(edit_doc, bytes):
            (d / "dft_bands.json").write_bytes(edit_doc)
            return
        doc = json.loads(src.read_text())
        out = edit_doc(doc)
        (d / "dft_bands.json").write_text(out if isinstance(out, str) else json.dumps(doc))
    return edit


# --------------------------------------------------------------------------- variants

PRE, CHECK, TRAIN, PREDICT, EVAL = "preprocess", "check", "train", "predict", "eval"
READERS = (PRE, CHECK)  # every reader of a structure directory
ALL_DATA = (PRE, CHECK, TRAIN, PREDICT)


@dataclass(frozen=True)
class Variant:
    """A corrupted structure ``0000`` (``data``), tree (``tree``), config or checkpoint."""

    id: str
    category: str
    corrupt: Callable[[Path], None]
    file: str  # named in the message (a suffix of the path shown)
    text: str  # further text the message must hold (the key, the line, the problem)
    commands: tuple[str, ...]
    per_command: tuple[tuple[str, str, str], ...] = ()  # (command, file, text) overrides

    def expect(self, command: str) -> tuple[str, str]:
        return next(((f, t) for c, f, t in self.per_command if c == command),
                    (self.file, self.text))


def _v(id, category, corrupt, file, text, commands=READERS, per_command=()) -> Variant:
    return Variant(id, category, corrupt, file, text, tuple(commands), tuple(per_command))


DATA_VARIANTS = [
    # physics
    _v("z-zero", "physics", _lines("element.dat", 0, "0"), "element.dat", "line 1", ALL_DATA),
    _v("z-negative", "physics", _lines("element.dat", 2, "-6"), "element.dat", "line 3"),
    _v("z-fraction", "physics", _lines("element.dat", 1, "6.7"), "element.dat",
       "not an integer", (*READERS, TRAIN, EVAL)),
    _v("z-too-big", "physics", _lines("element.dat", 0, "119"), "element.dat", "1..118"),
    _v("two-bases", "physics", _lines("orbital_types.dat", 3, "0 1"), "orbital_types.dat",
       "line 4", ALL_DATA),
    _v("lattice-collinear", "physics", _matrix("lat.dat", _set((slice(None), 1),
       lambda a, d: 2 * a[:, 0])), "lat.dat", "singular", (*READERS, PREDICT)),
    _v("lattice-zero", "physics", _matrix("lat.dat", _set((slice(None), 2), 0.0)), "lat.dat",
       "zero"),
    _v("lattice-huge", "physics", _matrix("lat.dat", _set((0, 0), 1e30)), "lat.dat", "exceeds",
       (*READERS, TRAIN)),
    _v("position-huge", "physics", _matrix("site_positions.dat", _set((0, 3), 1e30)),
       "site_positions.dat", "exceeds", (*READERS, PREDICT)),
    _v("atoms-same-place", "physics", _matrix("site_positions.dat", _set(
        (slice(None), 5), lambda a, d: a[:, 2])), "site_positions.dat", "atoms 3 and 6",
       ALL_DATA),
    _v("atom-on-image", "physics", _matrix("site_positions.dat", _set(
        (slice(None), 1), lambda a, d: a[:, 0] + np.loadtxt(d / "lat.dat")[:, 0] + 0.1)),
       "site_positions.dat", "atoms 1 and 2"),
    _v("block-huge", "physics", _h5_set(H5, "[0, 0, 0, 1, 1]", 1e30), H5,
       "'[0, 0, 0, 1, 1]'", (*READERS, TRAIN, EVAL)),
    _v("block-nan", "physics", _h5_set(H5, "[0, 0, 0, 2, 2]", np.nan), H5, "'[0, 0, 0, 2, 2]'"),
    _v("overlap-huge", "physics", _h5_set(S5, "[0, 0, 0, 3, 3]", -1e6), S5,
       "'[0, 0, 0, 3, 3]'"),
    # format
    _v("z-text", "format", _lines("element.dat", 0, "C"), "element.dat", "numbers", ALL_DATA),
    _v("element-count", "format", _text("element.dat", "6\n" * 7), "element.dat", "7",
       (*READERS, PREDICT)),
    _v("element-empty", "format", _text("element.dat", ""), "element.dat", ""),
    _v("lattice-nan", "format", _matrix("lat.dat", _set((0, 0), np.nan)), "lat.dat", "NaN"),
    _v("lattice-shape", "format", _text("lat.dat", "1 0\n0 1\n"), "lat.dat", ""),
    _v("position-inf", "format", _matrix("site_positions.dat", _set((1, 0), np.inf)),
       "site_positions.dat", "NaN or inf"),
    _v("position-shape", "format", _text("site_positions.dat", "0 1 2 3\n0 1 2 3\n"),
       "site_positions.dat", "", (*READERS, PREDICT)),
    _v("orbitals-short", "format", _text("orbital_types.dat", "0 0 1 1 2\n" * 7),
       "orbital_types.dat", ""),
    _v("orbitals-l-text", "format", _lines("orbital_types.dat", 0, "s s p"),
       "orbital_types.dat", ""),
    _v("element-missing", "format", _unlink("element.dat"), "element.dat", "missing",
       (*READERS, TRAIN, PREDICT)),
    _v("lattice-missing", "format", _unlink("lat.dat"), "lat.dat", "missing"),
    _v("h-missing", "format", _unlink(H5), H5, "missing", (*READERS, TRAIN)),
    # JSON types
    _v("info-not-json", "json", _text("info.json", "{isspinful: no"), "info.json",
       "invalid JSON", ALL_DATA),
    _v("info-a-list", "json", _text("info.json", "[1, 2]"), "info.json", "JSON object"),
    _v("fermi-string", "json", _info(fermi_level="abc"), "info.json", "'fermi_level'",
       (*ALL_DATA, EVAL)),
    _v("fermi-nan", "json", _text("info.json", '{"fermi_level": NaN}'), "info.json",
       "'fermi_level'"),
    _v("fermi-bool", "json", _info(fermi_level=True), "info.json", "'fermi_level'"),
    _v("spinful-string", "json", _info(isspinful="false"), "info.json", "'isspinful'",
       (*READERS, TRAIN, PREDICT)),
    _v("twisted-number", "json", _info(twisted=1), "info.json", "'twisted'"),
    _v("bands-not-json", "json", _with_bands(lambda doc: "{references: ["),
       "dft_bands.json", "invalid JSON", (CHECK,)),
    _v("bands-no-references", "json", _with_bands(lambda doc: doc.pop("references")),
       "dft_bands.json", "'references'", (CHECK,)),
    _v("bands-eigenvalues-text", "json", _with_bands(
        lambda doc: doc["references"][0].update(eigenvalues="abc")), "dft_bands.json", "",
       (CHECK,)),
    # encodings
    _v("info-non-utf8", "encoding", _text("info.json", b'{"isspinful": \xff}'), "info.json",
       "UTF-8", ALL_DATA),
    _v("orbitals-non-utf8", "encoding", _text("orbital_types.dat", b"0 0 1\xff\xfe\n"),
       "orbital_types.dat", "UTF-8", (*READERS, TRAIN)),
    _v("element-non-utf8", "encoding", _text("element.dat", b"6\n\xe96\n"), "element.dat",
       "UTF-8"),
    _v("lattice-utf16", "encoding", _text("lat.dat", "1 0 0\n0 1 0\n0 0 1\n".encode("utf-16")),
       "lat.dat", "UTF-8", (*READERS, PREDICT)),
    _v("positions-latin1", "encoding", _text("site_positions.dat", "0 1\u00a0\n".encode(
        "latin-1")), "site_positions.dat", "UTF-8"),
    _v("bands-non-utf8", "encoding", _with_bands(b'{"references": "\xff"}'), "dft_bands.json",
       "UTF-8", (CHECK,)),
    # h5 corruption
    _v("h5-truncated", "h5", _truncate(H5), H5, "HDF5", (*READERS, TRAIN, EVAL)),
    _v("h5-header-flipped", "h5", _flip(H5, 0), H5, "HDF5", (*READERS, PREDICT)),
    _v("h5-index-flipped", "h5", _flip(H5, 800), H5, "", (*READERS, TRAIN)),
    _v("h5-not-hdf5", "h5", _text(H5, "hello"), H5, "HDF5", ALL_DATA),
    _v("h5-empty-file", "h5", _text(H5, b""), H5, ""),
    _v("overlaps-truncated", "h5", _truncate(S5), S5, "", (*READERS, PREDICT)),
    _v("h5-key-unparseable", "h5", _h5_add(H5, "zero zero", np.zeros((13, 13))), H5,
       "'zero zero'"),
    _v("h5-key-short", "h5", _h5_add(H5, "[0, 0, 0, 1]", np.zeros((13, 13))), H5,
       "'[0, 0, 0, 1]'", (*READERS, TRAIN)),
    _v("h5-key-atom-range", "h5", _h5_add(H5, "[0, 0, 0, 9, 1]", np.zeros((13, 13))), H5,
       "'[0, 0, 0, 9, 1]'"),
    _v("h5-block-shape", "h5", _both(_h5_drop(H5, "[0, 0, 0, 1, 1]"), _h5_add(
        H5, "[0, 0, 0, 1, 1]", np.zeros((13, 5)))), H5, "'[0, 0, 0, 1, 1]'"),
    _v("h5-block-group", "h5", _both(_h5_drop(H5, "[0, 0, 0, 1, 1]"), _h5_add(
        H5, "[0, 0, 0, 1, 1]", lambda f, k: f.create_group(k))), H5, "'[0, 0, 0, 1, 1]'"),
    _v("h5-block-text", "h5", _both(_h5_drop(H5, "[0, 0, 0, 1, 1]"), _h5_add(
        H5, "[0, 0, 0, 1, 1]", np.array([b"abc"] * 13))), H5, "'[0, 0, 0, 1, 1]'",
       (*READERS, TRAIN)),
    # overlaps that do not match the Hamiltonians
    _v("overlap-partner-missing", "overlaps", _h5_drop(S5, "[0, 0, 0, 1, 2]"), S5,
       "'[0, 0, 0, 2, 1]'"),
    _v("overlap-key-missing", "overlaps", _h5_drop(S5, "[0, 0, 0, 1, 2]", "[0, 0, 0, 2, 1]"),
       S5, "'[0, 0, 0, 1, 2]'", (*READERS, TRAIN, EVAL)),
    _v("h-key-missing", "overlaps", _h5_drop(H5, "[0, 0, 0, 1, 2]", "[0, 0, 0, 2, 1]"),
       S5, "'[0, 0, 0, 1, 2]'"),
]


def _tree_twin(edit: Callable[[Path], None]) -> Callable[[Path], None]:
    """A second structure 0001 (a copy of the clean 0000), then ``edit(0001)``."""
    def apply(d: Path) -> None:
        edit(shutil.copytree(d, d.parent / "0001"))
    return apply


TREE_VARIANTS = [
    _v("tree-no-h5-at-all", "tree", _tree_twin(_unlink(H5, S5)), "0001/hamiltonians.h5",
       "missing file", (*READERS, TRAIN)),
    _v("tree-half-copied", "tree", _tree_twin(_unlink("site_positions.dat", "lat.dat",
       "info.json")), "0001/", "missing", (*READERS, TRAIN, PREDICT)),
    _v("tree-nitrogen-carbon-basis", "tree", _tree_twin(_text(
        "orbital_types.dat", "0 1\n" * 8)), "0001/orbital_types.dat",
       "Z=6 has basis (0, 1) but ", (PRE, TRAIN, PREDICT),
       # predict checks the blocks against the structure's own basis first
       [(PREDICT, "0001/hamiltonians.h5", "orbital_types.dat gives (4, 4)")]),
    _v("tree-spinful-flag-wrong", "tree", _tree_twin(_info(isspinful=True)),
       "0001/hamiltonians.h5", "(spinful)", (PRE, TRAIN)),
    _v("tree-bad-second-structure", "tree", _tree_twin(_h5_set(H5, "[0, 0, 0, 1, 1]", np.inf)),
       "0001/hamiltonians.h5", "'[0, 0, 0, 1, 1]'", (*ALL_DATA, EVAL)),
    _v("tree-empty", "tree", lambda d: shutil.rmtree(d), "data", "empty", ALL_DATA),
    _v("tree-plain-file", "tree", lambda d: (shutil.rmtree(d.parent), d.parent.write_text("x")),
       "data", "", ALL_DATA),
    _v("tree-missing", "tree", lambda d: shutil.rmtree(d.parent), "data", "", ALL_DATA),
]


def _config(**sections) -> Callable[[Path], None]:
    """Edit the valid config ``c.yaml`` (written by the fixture): ``section={key: value}``;
    a string value of a section replaces the whole file with that text."""
    def edit(cfg: Path) -> None:
        import yaml

        doc = yaml.safe_load(cfg.read_text())
        for sec, kv in sections.items():
            if kv is None:
                doc.pop(sec)
            else:
                doc.setdefault(sec, {}).update(kv)
        cfg.write_text(yaml.safe_dump(doc))
    return edit


CONFIG_VARIANTS = [
    _v("cfg-lr-inf", "config", _config(train={"lr": float("inf")}), "c.yaml", "train.lr",
       (TRAIN,)),
    _v("cfg-lr-negative", "config", _config(train={"lr": -1.0}), "c.yaml", "train.lr",
       (TRAIN,)),
    _v("cfg-unknown-key", "config", _config(train={"lrr": 0.1}), "c.yaml", "lrr", (TRAIN,)),
    _v("cfg-unknown-section", "config", _config(optim={"lr": 0.1}), "c.yaml", "optim",
       (TRAIN,)),
    _v("cfg-epochs-text", "config", _config(train={"epochs": "two"}), "c.yaml", "train.epochs",
       (TRAIN,)),
    _v("cfg-batch-zero", "config", _config(train={"batch_size": 0}), "c.yaml",
       "train.batch_size", (TRAIN,)),
    _v("cfg-dtype", "config", _config(train={"dtype": "float16"}), "c.yaml", "train.dtype",
       (TRAIN,)),
    _v("cfg-device", "config", _config(train={"device": "gpu"}), "c.yaml", "train.device",
       (TRAIN,)),
    _v("cfg-setup", "config", _config(tracegrad={"setup": "magic"}), "c.yaml",
       "tracegrad.setup", (TRAIN,)),
    _v("cfg-irreps", "config", _config(model={"irreps_hidden": "4x0q"}), "c.yaml",
       "model.irreps_hidden", (TRAIN,)),
    _v("cfg-section-a-list", "config", lambda c: c.write_text("train: [1, 2]\n"), "c.yaml",
       "train", (TRAIN,)),
    _v("cfg-yaml-syntax", "config", lambda c: c.write_text("train: {lr: [\n"), "c.yaml",
       "invalid YAML", (TRAIN,)),
    _v("cfg-not-utf8", "config", lambda c: c.write_bytes(b"train:\n  lr: 0.01\xff\n"),
       "c.yaml", "UTF-8", (TRAIN,)),
    _v("cfg-top-level-list", "config", lambda c: c.write_text("- 1\n- 2\n"), "c.yaml",
       "mapping", (TRAIN,)),
    _v("cfg-missing-file", "config", lambda c: c.unlink(), "c.yaml", "", (TRAIN,)),
    _v("cfg-no-data-path", "config", _config(data={"path": ""}), "data.path", "required",
       (TRAIN,)),
    _v("cfg-data-path-missing", "config", _config(data={"path": "/nonexistent/tgkit"}),
       "/nonexistent/tgkit", "", (TRAIN,)),
    _v("cfg-split-missing", "config", _config(data={"split": "nosuch.json"}), "data.split",
       "nosuch.json", (TRAIN,)),
    _v("cfg-split-not-json", "config", lambda c: (_config(data={"split": str(
        c.parent / "split.json")})(c), (c.parent / "split.json").write_text("{train: [")),
       "split.json", "", (TRAIN,)),
    _v("cfg-split-a-list", "config", lambda c: (_config(data={"split": str(
        c.parent / "split.json")})(c), (c.parent / "split.json").write_text("[1]")),
       "split.json", "", (TRAIN,)),
    _v("cfg-split-unknown-name", "config", lambda c: (_config(data={"split": str(
        c.parent / "split.json")})(c), (c.parent / "split.json").write_text(
        '{"train": ["nosuch"], "val": [], "test": []}')), "nosuch",
       "", (TRAIN,)),
]


def _ckpt_garbage_no_sidecar(p: Path) -> None:
    p.write_bytes(b"not a checkpoint")
    p.with_name(p.name + ".sha256").unlink()


def _ckpt_resave(make: Callable[[dict], object]) -> Callable[[Path], None]:
    """Load the good model.pt, change it, save it again with a valid checksum."""
    def edit(p: Path) -> None:
        doc = torch.load(p, weights_only=True)
        save_torch(make(doc), p)
    return edit


def _ckpt_drop_weight(doc: dict) -> dict:
    doc["state_dict"].pop(next(iter(doc["state_dict"])))
    return doc


CHECKPOINT_VARIANTS = [
    _v("ckpt-flipped", "checkpoint", lambda p: _flip_bytes(p, p.stat().st_size // 2),
       "model.pt", "corrupt", (PREDICT, EVAL)),
    _v("ckpt-truncated", "checkpoint", lambda p: p.write_bytes(
        p.read_bytes()[: p.stat().st_size // 3]), "model.pt", "truncated", (PREDICT, EVAL)),
    _v("ckpt-empty", "checkpoint", lambda p: p.write_bytes(b""), "model.pt", "",
       (PREDICT,)),
    _v("ckpt-garbage-no-checksum", "checkpoint", _ckpt_garbage_no_sidecar, "model.pt",
       "cannot read", (PREDICT, EVAL)),
    _v("ckpt-checksum-garbage", "checkpoint", lambda p: p.with_name(p.name + ".sha256")
       .write_bytes(b"\xff\xfe"), "model.pt.sha256", "", (PREDICT,)),
    _v("ckpt-missing", "checkpoint", lambda p: p.unlink(), "model.pt", "", (PREDICT, EVAL)),
    _v("ckpt-not-a-model", "checkpoint", _ckpt_resave(lambda d: {"weights": [1, 2]}),
       "model.pt", "not a tgkit model", (PREDICT,)),
    _v("ckpt-future-version", "checkpoint", _ckpt_resave(lambda d: d | {"version": 99}),
       "model.pt", "version", (PREDICT,)),
    _v("ckpt-keys-missing", "checkpoint", _ckpt_resave(lambda d: {k: d[k] for k in
       ("format", "version")}), "model.pt", "", (PREDICT, EVAL)),
    _v("ckpt-basis-garbage", "checkpoint", _ckpt_resave(lambda d: d | {"basis": "C"}),
       "model.pt", "", (PREDICT,)),
    _v("ckpt-weights-mismatch", "checkpoint", _ckpt_resave(_ckpt_drop_weight), "model.pt", "",
       (PREDICT, EVAL)),
    _v("ckpt-pickled-code", "checkpoint", _ckpt_resave(lambda d: argparse.Namespace(a=1)),
       "model.pt", "", (PREDICT,)),
    _v("ckpt-resume-both-damaged", "checkpoint", lambda p: None, "last.pt", "unusable too",
       (TRAIN,)),
]

VARIANTS = DATA_VARIANTS + TREE_VARIANTS + CONFIG_VARIANTS + CHECKPOINT_VARIANTS
CASES = [(v, cmd) for v in VARIANTS for cmd in v.commands]

# --------------------------------------------------------------------------- fixtures

MODEL = {"irreps_embed": "4x0e", "irreps_hidden": "4x0e+2x1o+2x2e", "num_blocks": 1,
         "lmax": 2, "num_radial": 8, "radial_hidden": 8, "cutoff": 4.0,
         "avg_num_neighbors": 10.0}
TRACEGRAD = {"setup": "baseline", "num_invariants": 4, "hidden": 8, "num_z": 4,
             "decoder_hidden": 8}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clean") / "0000"
    shutil.copytree(TINY / "0000", d, ignore=shutil.ignore_patterns("dft_bands.json"))
    return d


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """An untrained model.pt for graphene-tiny's basis (prediction needs no training)."""
    from tgkit.config import config_from_dict
    from tgkit.data.store import dataset_basis
    from tgkit.nn import save_model
    from tgkit.train.run import build_model

    cfg = config_from_dict({"model": MODEL, "tracegrad": TRACEGRAD})
    model = build_model(cfg, dataset_basis([TINY / "0000"]), False, torch.float32)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(model.export_inference(), path)
    return path


@pytest.fixture(scope="module")
def _model_cache() -> dict:
    return {}


@pytest.fixture(autouse=True)
def _load_good_model_once(monkeypatch, model_file, _model_cache):
    """Building a model takes about a second: the intact model.pt (same bytes and checksum as
    the fixture's) is loaded once; every damaged one goes through the real loaders."""
    from tgkit.train import run

    good = (model_file.read_bytes(), model_file.with_name("model.pt.sha256").read_bytes())

    def once(real: Callable, name: str) -> Callable:
        def load(path, *args):
            p = Path(path)
            side = p.with_name(p.name + ".sha256")
            if not (p.is_file() and side.is_file()
                    and (p.read_bytes(), side.read_bytes()) == good):
                return real(path, *args)
            if name not in _model_cache:
                _model_cache[name] = real(path, *args)
            return _model_cache[name]
        return load

    monkeypatch.setattr(run, "load_inference_model",
                        once(run.load_inference_model, "inference"))
    monkeypatch.setattr(run, "_load_for_eval", once(run._load_for_eval, "eval"))


@pytest.fixture(autouse=True)
def _no_training(monkeypatch, tmp_path):
    """Fail if a case reaches a training step; keep eval's temporary files in tmp_path."""
    from tgkit.train.trainer import Trainer

    def fit(*args, **kwargs):
        raise AssertionError("training started on bad input")

    monkeypatch.setattr(Trainer, "fit", fit)
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every path under ``root`` with its files' size and mtime (directories: None)."""
    return {str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size,
                                                               p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _write_config(tmp_path: Path, data: Path, out_dir: Path) -> Path:
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": {"path": str(data), "train_fraction": 0.5, "val_fraction": 0.5},
        "model": MODEL, "tracegrad": TRACEGRAD,
        "train": {"out_dir": str(out_dir), "epochs": 1, "device": "cpu", "progress": False,
                  "tensorboard": False, "num_threads": 1},
    }))
    return cfg


def _prepare(v: Variant, cmd: str, clean: Path, model_file: Path, tmp_path: Path) -> list[str]:
    """Build the variant's input in tmp_path and return the command line for ``cmd``."""
    data = tmp_path / "data"
    d = shutil.copytree(clean, data / "0000")
    model = shutil.copy(model_file, tmp_path / "model.pt")
    shutil.copy(model_file.with_name("model.pt.sha256"), tmp_path / "model.pt.sha256")
    run = tmp_path / "run"
    if v.category == "config":
        shutil.copytree(clean, data / "0001")  # two structures: one to train, one to validate
        cfg = _write_config(tmp_path, data, run)
        v.corrupt(cfg)
        return ["train", str(cfg), "--quiet"]
    if v.category == "checkpoint":
        if cmd == TRAIN:  # a previous run whose checkpoints are both damaged
            run.mkdir()
            for name in ("last.pt", "last.prev.pt"):
                (run / name).write_bytes(b"\x80garbage")
            cfg = _write_config(tmp_path, data, run)
            return ["train", str(cfg), "--resume", "--quiet"]
        v.corrupt(Path(model))
    else:
        v.corrupt(d)
    target = str(d) if cmd == CHECK and v.category != "tree" else str(data)
    return {
        PRE: ["preprocess", target, "--out", str(tmp_path / "cache.h5"), "--quiet"],
        CHECK: ["data", "check", target, "--no-geometry"],
        TRAIN: ["train", "--data", target, "--out-dir", str(run), "--quiet", "--device", "cpu"],
        PREDICT: ["predict", str(model), target, "--out", str(tmp_path / "pred"),
                  "--device", "cpu"],
        EVAL: ["eval", str(model), "--data", target, "--device", "cpu"],
    }[cmd]


# --------------------------------------------------------------------------- the suite


@pytest.mark.parametrize(("variant", "command"), CASES,
                         ids=[f"{v.id}-{cmd}" for v, cmd in CASES])
def test_bad_input_is_one_clean_line(variant: Variant, command: str, clean, model_file,
                                     tmp_path, capsys):
    argv = _prepare(variant, command, clean, model_file, tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert err.count("\n") == 0, err
    assert err.startswith(f"tgkit {argv[0]}: error: "), err
    file, text = variant.expect(command)
    assert file in err and text in err, err
    assert _snapshot(tmp_path) == before  # no cache, run directory, prediction or temp file


def test_suite_size():
    """At least 60 variants, every command exercised, and README.md quotes the figure."""
    assert len(VARIANTS) >= 60 and len(CASES) >= 60
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)
    readme = (TINY.parents[1] / "README.md").read_text()
    assert f"**{len(VARIANTS)} variants, all clean**" in readme
    assert f"{len(CASES)} cases" in readme
    assert {cmd for _, cmd in CASES} == {PRE, CHECK, TRAIN, PREDICT, EVAL}
    assert {v.category for v in VARIANTS} == {"physics", "format", "json", "encoding", "h5",
                                              "overlaps", "tree", "config", "checkpoint"}
