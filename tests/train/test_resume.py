"""Exact resume: SIGKILL a training process mid-epoch, resume, get the same run bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import e3nn
import pytest
import torch

from tests.train.conftest import tiny_config
from tgkit.config import save_config
from tgkit.train.run import train

# Runs training in a child process that SIGKILLs itself after step KILL_AT: no cleanup, no
# flush, exactly what a crash or an OOM kill does. Checkpoints are written every 2 steps (and
# after each epoch's validation, 4 steps), so the kill at step 7 loses step 7, and the run
# resumes from step 6, in the middle of the second epoch.
CHILD = textwrap.dedent("""
    import json, os, signal, sys
    import e3nn
    from tgkit.config import load_config
    from tgkit.train.hooks import Hook
    from tgkit.train.run import train

    class KillAt(Hook):
        def on_batch_end(self, trainer, metrics):
            if trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    # train.num_threads (1) and e3nn's einsum settings fix the float summation order; both
    # must be the parent's (tests/nn/conftest.py turns einsum optimisation off session-wide)
    e3nn.set_optimization_defaults(**json.loads(sys.argv[3]))
    train(load_config(sys.argv[1]), resume=True, extra_hooks=[KillAt()], verbose=False)
""")


def _records(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("time", None)  # wall-clock and CPU time are the only things allowed to differ
        rec.pop("cpu_s", None)
        out.append(rec)
    return out


@pytest.mark.parametrize("recipe", [
    {},  # ReduceLROnPlateau, raw weights
    {"lr_schedule": "cosine", "warmup_steps": 2, "min_lr": 1e-4, "ema_decay": 0.9},
], ids=["plateau", "cosine-ema"])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(toy_cache, tmp_path, recipe):
    kw = dict(epochs=3, checkpoint_every=2, setup="tracegrad", **recipe)
    ref = train(tiny_config(toy_cache, tmp_path / "ref", **kw), verbose=False)

    cfg = tiny_config(toy_cache, tmp_path / "run", **kw)
    save_config(cfg, tmp_path / "run.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    e3nn_opts = json.dumps(e3nn.get_optimization_defaults())
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "run.yaml"), "7", e3nn_opts],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ck["trainer"]["global_step"] == 6 and ck["trainer"]["batch_in_epoch"] == 2  # mid-epoch
    assert not (tmp_path / "run" / "results.json").exists()

    resumed = train(cfg, resume=True, verbose=False)
    assert resumed == ref  # every metric, every sample and block MAE, bit for bit
    assert _records(tmp_path / "run") == _records(tmp_path / "ref")
    a = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ref" / "last.pt", weights_only=True)
    for k, v in b["model"].items():
        assert torch.equal(a["model"][k], v), k
    if recipe.get("ema_decay"):  # the weight average resumes too, and differs from the weights
        for k, v in b["ema"]["shadow"].items():
            assert torch.equal(a["ema"]["shadow"][k], v), k
        assert any(not torch.equal(b["ema"]["shadow"][k], b["model"][k])
                   for k in b["ema"]["shadow"])
