"""Data parallelism: 2 gloo processes under torchrun equal 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.train.conftest import tiny_config
from tgkit.config import save_config
from tgkit.train.run import train


def _records(run: Path) -> list[dict]:
    """Per-step training losses and validation metrics, without wall-clock and CPU times."""
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "cpu_s", "kind")} for r in recs]


def test_two_gloo_processes_equal_one_process(toy_cache, tmp_path):
    # 4 training structures, global batch 2: 2 steps per epoch; each process gets 1 per step
    kw = dict(epochs=2, batch_size=2, setup="tracegrad", log_every=1)
    single = train(tiny_config(toy_cache, tmp_path / "single", **kw), verbose=False)

    cfg = tiny_config(toy_cache, tmp_path / "ddp", **kw)
    save_config(cfg, tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tgkit.cli", "train", str(tmp_path / "ddp.yaml"), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "results.json").read_text())

    assert ddp["steps"] == single["steps"] == 4
    for subset in ("val", "test"):
        for key in ("mae_all", "mae_block_cha", "loss_q", "loss_t"):
            assert ddp[subset][key] == pytest.approx(single[subset][key], rel=1e-9, abs=1e-12)
    recs = _records(tmp_path / "single")
    assert len(recs) == 6  # 4 steps + 2 validations
    for a, b in zip(_records(tmp_path / "ddp"), recs, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
    pa = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["model"]
    pb = torch.load(tmp_path / "single" / "last.pt", weights_only=True)["model"]
    for k, v in pb.items():
        torch.testing.assert_close(pa[k], v, rtol=1e-9, atol=1e-12)
