"""Band errors during training and in results: a real CP2K structure, a real band structure."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tgkit.config import config_from_dict
from tgkit.train.run import evaluate_run, train

ROOT = Path(__file__).resolve().parents[2]


def test_band_error_logged_at_validation_and_reported(tmp_path):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["0000"], "val": ["0001"], "test": ["0002"],
                                 "test_twisted": []}))
    cfg = config_from_dict({
        "data": {"path": str(ROOT / "datasets/graphene-8"), "split": str(split)},
        "model": {"irreps_embed": "4x0e", "irreps_hidden": "4x0e+2x1o+2x2e+1x3o+1x4e",
                  "num_blocks": 1, "num_radial": 8, "radial_hidden": 8},
        "tracegrad": {"setup": "baseline"},
        "train": {"out_dir": str(tmp_path / "run"), "epochs": 2, "device": "cpu",
                  "progress": False, "tensorboard": False, "num_threads": 1},
    })
    doc = train(cfg, verbose=False)
    vals = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["kind"] == "val"]
    assert len(vals) == 2
    for v in vals:  # an untrained model's bands are far off: finite, positive, max >= mean
        assert math.isfinite(v["val_band_max"]) and v["val_band_max"] >= v["val_band_mean"] > 0
    for sub in ("val", "test"):
        assert doc[sub]["band_max_meV"] >= doc[sub]["band_mean_meV"] > 0
        assert set(doc[sub]["band_errors_meV"]) == {"0001" if sub == "val" else "0002"}
    # tgkit eval reports the same band errors from the saved run
    again = evaluate_run(tmp_path / "run", device="cpu")
    assert again["test"]["band_max_meV"] == doc["test"]["band_max_meV"]
