"""Faults during and after training: divergence, damaged checkpoints, stale or clobbered runs.

Each failure must be one line on stderr with exit code 2, and must leave no model saved from
a bad state.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tests.train.conftest import tiny_config
from tgkit.cli import main
from tgkit.config import save_config
from tgkit.errors import TgkitError, TrainingDiverged
from tgkit.io_utils import atomic_write, load_torch, save_torch
from tgkit.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from tgkit.train.hooks import Hook
from tgkit.train.run import train


def _one_line(capsys, *texts: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    for t in texts:
        assert t in err, err
    return err


@pytest.fixture(scope="module")
def run_dir(toy_cache, tmp_path_factory):
    """A finished 2-epoch run (last.pt, last.prev.pt, best.pt, model.pt)."""
    out = tmp_path_factory.mktemp("fault") / "run"
    train(tiny_config(toy_cache, out, epochs=2, setup="baseline"), verbose=False)
    return out


def _flip(path, offset: int, count: int = 64) -> None:
    raw = bytearray(path.read_bytes())
    for k in range(offset, offset + count):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_checksum_detects_flipped_bytes_and_truncation(tmp_path):
    path = save_torch({"format": CHECKPOINT_FORMAT, "x": torch.arange(1000.0)}, tmp_path / "a.pt")
    assert torch.equal(load_checkpoint(path)["x"], torch.arange(1000.0))
    good = path.read_bytes()
    _flip(path, len(good) // 2)
    with pytest.raises(TgkitError, match="corrupt .SHA-256"):
        load_checkpoint(path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(TgkitError, match="truncated"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    (tmp_path / "a.pt.sha256").unlink()  # no checksum: still a one-line error, not a traceback
    with pytest.raises(TgkitError, match="cannot read checkpoint"):
        load_torch(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "results.json"]


def test_divergence_stops_training_before_anything_is_saved(toy_cache, tmp_path):
    class Poison(Hook):
        def on_batch_end(self, trainer, metrics):
            if trainer.global_step == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="step 2: loss is nan"):
        train(tiny_config(toy_cache, out, epochs=2, setup="baseline"), extra_hooks=[Poison()],
              verbose=False)
    assert not (out / "best.pt").exists() and not (out / "model.pt").exists()
    assert not (out / "last.pt").exists() and not (out / "results.json").exists()


def test_divergence_caught_at_validation_without_log_steps(toy_cache, tmp_path):
    class Poison(Hook):
        def on_batch_end(self, trainer, metrics):
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("inf"))

    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match="training diverged"):
        train(tiny_config(toy_cache, out, epochs=2, setup="baseline", log_every=1000),
              extra_hooks=[Poison()], verbose=False)
    assert not (out / "best.pt").exists() and not (out / "model.pt").exists()


def test_infinite_lr_is_a_config_error(toy_cache, tmp_path, capsys):
    save_config(tiny_config(toy_cache, tmp_path / "run"), tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text().replace("lr: 0.01", "lr: .inf")
    (tmp_path / "c.yaml").write_text(text)
    assert main(["train", str(tmp_path / "c.yaml"), "--quiet"]) == 2
    _one_line(capsys, "train.lr", "finite")
    assert not (tmp_path / "run" / "model.pt").exists()


def test_resume_falls_back_to_previous_checkpoint(run_dir, toy_cache, tmp_path, capsys):
    run = shutil.copytree(run_dir, tmp_path / "run")
    assert (run / "last.prev.pt").exists()
    _flip(run / "last.pt", 4000)
    cfg = tiny_config(toy_cache, run, epochs=2, setup="baseline")
    doc = train(cfg, resume=True, verbose=False)
    err = capsys.readouterr().err
    assert "last.pt: checkpoint is corrupt" in err and "resuming from the previous" in err
    assert doc["steps"] == json.loads((run_dir / "results.json").read_text())["steps"]
    assert load_checkpoint(run / "last.prev.pt")  # the damaged last.pt did not become it
    _flip(run / "last.pt", 5000)
    _flip(run / "last.prev.pt", 5000)
    save_config(cfg, tmp_path / "c.yaml")
    assert main(["train", str(tmp_path / "c.yaml"), "--resume", "--quiet"]) == 2
    _one_line(capsys, "last.pt", "unusable too")


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_eval_and_predict_on_damaged_checkpoint_are_one_line(run_dir, toy_tree, tmp_path,
                                                              capsys, damage):
    run = shutil.copytree(run_dir, tmp_path / "run")
    for name in ("best.pt", "model.pt"):
        raw = (run / name).read_bytes()
        if damage == "flip":
            _flip(run / name, len(raw) // 2)
        else:
            (run / name).write_bytes(raw[: len(raw) // 3])
    assert main(["eval", str(run), "--device", "cpu"]) == 2
    _one_line(capsys, "best.pt")
    assert main(["predict", str(run / "model.pt"), str(toy_tree), "--out", str(tmp_path / "p"),
                 "--device", "cpu"]) == 2
    _one_line(capsys, "model.pt")
    assert not (tmp_path / "p").exists()


def test_train_predict_bands_refuse_to_overwrite(run_dir, toy_cache, toy_tree, tmp_path,
                                                 capsys):
    run = shutil.copytree(run_dir, tmp_path / "run")
    cfg = tiny_config(toy_cache, run, epochs=1, setup="baseline")
    save_config(cfg, tmp_path / "c.yaml")
    assert main(["train", str(tmp_path / "c.yaml"), "--quiet"]) == 2
    _one_line(capsys, "already holds a training run", "--resume", "--force")
    lines = len((run / "metrics.jsonl").read_text().splitlines())
    assert main(["train", str(tmp_path / "c.yaml"), "--quiet", "--force"]) == 0
    capsys.readouterr()
    fresh = (run / "metrics.jsonl").read_text().splitlines()
    assert 0 < len(fresh) < lines  # replaced (1 epoch instead of 2), not appended to

    pred = tmp_path / "pred"
    args = ["predict", str(run), str(toy_tree / "s000"), "--out", str(pred), "--device", "cpu"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    _one_line(capsys, "hamiltonians_pred.h5: already exists", "--force")
    assert main([*args, "--force"]) == 0

    bands = ["bands", str(toy_tree / "s000"), "--pred", str(pred / "s000" /
             "hamiltonians_pred.h5"), "--out", str(tmp_path / "b"), "--npoints", "4"]
    assert main(bands) == 0
    capsys.readouterr()
    assert main(bands) == 2
    _one_line(capsys, "bands.png: already exists")
    assert main([*bands, "--force"]) == 0


def test_unknown_element_in_predict_and_eval_is_one_line(run_dir, toy_tree, tmp_path, capsys):
    data = shutil.copytree(toy_tree / "s000", tmp_path / "data" / "s000")
    (data / "element.dat").write_text("7\n7\n")  # nitrogen: not in the model's basis
    assert main(["predict", str(run_dir), str(tmp_path / "data"), "--out",
                 str(tmp_path / "p"), "--device", "cpu"]) == 2
    _one_line(capsys, "s000/orbital_types.dat", "Z=7 is not in the basis")
    assert main(["eval", str(run_dir), "--data", str(tmp_path / "data"), "--device", "cpu"]) == 2
    _one_line(capsys, "s000/orbital_types.dat", "Z=7")
