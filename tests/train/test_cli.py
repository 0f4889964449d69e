"""`tgkit train|eval|predict|ablate` end to end on the toy set, and one-line config errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.train.conftest import tiny_config
from tgkit import keys as K
from tgkit.cli import main
from tgkit.config import save_config
from tgkit.data.deeph import read_blocks, read_structure
from tgkit.data.graph import collate, graph_blocks
from tgkit.data.store import GraphDataset
from tgkit.nn import load_model


def test_train_eval_predict(toy_tree, tmp_path, capsys):
    cfg = tiny_config(toy_tree, tmp_path / "run", max_steps=3, setup="trace")
    save_config(cfg, tmp_path / "c.yaml")
    assert main(["train", str(tmp_path / "c.yaml"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "test (nt)" in out and "MAE_all" in out and "meV" in out
    run = tmp_path / "run"
    res = json.loads((run / "results.json").read_text())
    npz = np.load(run / "block_mae.npz")
    assert npz["test/orbital_mae"].shape == (1, 1, 5, 5) and list(npz["species"]) == [6]

    assert main(["eval", str(run), "--device", "cpu", "--out", str(tmp_path / "ev")]) == 0
    again = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert again["test"]["mae_all"] == pytest.approx(res["test"]["mae_all"], rel=1e-12)

    pred_root = tmp_path / "pred"
    assert main(["predict", str(run / "model.pt"), str(toy_tree), "--out", str(pred_root),
                 "--device", "cpu"]) == 0
    # the prediction file is a DeepH hamiltonians file, with the DFT file's keys and shapes
    s = read_structure(toy_tree / "s000")
    pred = read_blocks(pred_root / "s000" / "hamiltonians_pred.h5", s)
    assert set(pred) == set(s.hamiltonians)
    # and holds exactly the model's output, in OpenMX order
    model = load_model(run / "model.pt")
    ds = GraphDataset(run / "graphs.h5")
    g = collate([ds[ds.names.index("s000")]])
    with torch.no_grad():
        h = model(g)[K.H_PRED]
    ref = graph_blocks({**g, K.HAMILTONIAN: h}, ds.basis)
    for key, blk in ref.items():
        np.testing.assert_allclose(pred[key], blk, rtol=0, atol=1e-12)


def test_ablate_writes_tables(toy_cache, tmp_path, capsys):
    cfg = tiny_config(toy_cache, tmp_path / "unused", max_steps=1)
    save_config(cfg, tmp_path / "c.yaml")
    out = tmp_path / "abl"
    assert main(["ablate", str(tmp_path / "c.yaml"), "--out", str(out), "--seeds", "2",
                 "--setups", "baseline,grad", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "| DeepHE3 (Baseline) |" in text and "| DeepHE3+Grad |" in text and " ± " in text
    table = json.loads((out / "table.json").read_text())
    ch = json.loads((out / "challenge.json").read_text())
    base = [json.loads((out / "baseline" / f"seed{s}" / "results.json").read_text())
            for s in (42, 43)]
    grad = [json.loads((out / "grad" / f"seed{s}" / "results.json").read_text())
            for s in (42, 43)]
    cell = table["table"]["grad"]["nt"]["mae_sample_cha"]
    # MAE_sample^cha of every setup is taken on the baseline's worst sample
    assert cell["values"] == [g["test"]["mae_sample"][ch["nt"]["sample"]] for g in grad]
    assert table["table"]["baseline"]["nt"]["mae_all"]["mean"] == pytest.approx(
        np.mean([b["test"]["mae_all"] for b in base]))
    npz = np.load(out / "block_mae.npz")
    assert npz["grad/nt/block_mae"].shape == (2, len(npz["nt/block_labels"]))
    assert npz["baseline/nt/orbital_mae"].shape == (2, 1, 1, 5, 5)
    # rerunning reuses the finished runs
    assert main(["ablate", str(tmp_path / "c.yaml"), "--out", str(out), "--seeds", "2",
                 "--setups", "baseline,grad", "--quiet"]) == 0
    assert json.loads((out / "table.json").read_text()) == table


def test_bad_config_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("train:\n  learning_rate: 0.1\n")
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) learning_rate" in err and "Traceback" not in err
    (tmp_path / "bad2.yaml").write_text("model:\n  irreps_hidden: 8x0e+4x1o\n"
                                        f"data:\n  path: {tmp_path}/nope\n")
    assert main(["train", str(tmp_path / "bad2.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
