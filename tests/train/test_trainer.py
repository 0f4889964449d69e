"""Trainer: determinism, hooks and their saved state, checkpoints, device logic, bad configs."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from tests.train.conftest import tiny_config
from tgkit.config import config_from_dict
from tgkit.errors import ConfigError, DeepHFormatError, TgkitError
from tgkit.train import hooks as H
from tgkit.train.checkpoint import CHECKPOINT_FORMAT
from tgkit.train.distributed import DistEnv, backend_for, env_from_environ, select_device
from tgkit.train.run import train
from tgkit.train.trainer import _loader


class Recorder(H.Hook):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(f"epoch_start{epoch}")

    def on_batch_end(self, trainer, metrics):
        self.events.append("batch")

    def on_validation_end(self, trainer, metrics):
        self.events.append("val")

    def on_epoch_end(self, trainer, epoch):
        self.events.append(f"epoch_end{epoch}")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")

    def on_exception(self, trainer, exc):
        self.events.append(f"exception:{exc}")

    def state_dict(self):
        return {"n": len(self.events)}


def test_same_seed_same_metrics_and_hook_order(toy_cache, tmp_path):
    rec = Recorder()
    a = train(tiny_config(toy_cache, tmp_path / "a"), extra_hooks=[rec], verbose=False)
    b = train(tiny_config(toy_cache, tmp_path / "b"), verbose=False)
    assert a == b
    assert set(a) >= {"val", "test", "stop_reason", "steps"} and a["steps"] == 8
    assert a["test"]["mae_all"] > 0 and math.isfinite(a["test"]["mae_block_cha"])
    per_epoch = ["epoch_start{e}"] + ["batch"] * 4 + ["val", "epoch_end{e}"]
    expected = ["fit_start"] + [x.format(e=e) for e in (0, 1) for x in per_epoch] + ["fit_end"]
    assert rec.events == expected
    # checkpoints load with weights_only=True and carry the hook states
    ck = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    assert ck["format"] == CHECKPOINT_FORMAT and ck["trainer"]["global_step"] == 8
    assert ck["hooks"]["Recorder"] == {"n": len(expected)}  # Checkpoint saves after the others
    assert (tmp_path / "a" / "best.pt").exists() and (tmp_path / "a" / "model.pt").exists()
    vals = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [v["kind"] for v in vals].count("val") == 2 and "lr" in vals[-1]
    assert (tmp_path / "a" / "metrics.csv").read_text().count("\n") == 3  # header + 2


def test_other_seed_differs(toy_cache, tmp_path):
    a = train(tiny_config(toy_cache, tmp_path / "a", max_steps=2), verbose=False)
    b = train(tiny_config(toy_cache, tmp_path / "b", max_steps=2, seed=7), verbose=False)
    assert a["steps"] == b["steps"] == 2 and "max_steps" in a["stop_reason"]
    assert a["test"]["mae_all"] != b["test"]["mae_all"]


def test_early_stopping_and_exception_hooks(toy_cache, tmp_path):
    stopper = H.EarlyStopping(patience=1, monitor="val_loss", min_delta=1e9)
    doc = train(tiny_config(toy_cache, tmp_path / "es", epochs=5, setup="baseline"),
                extra_hooks=[stopper], verbose=False)
    assert "early stopping" in doc["stop_reason"] and doc["steps"] == 8
    assert stopper.state_dict() == {"best": pytest.approx(stopper.best), "wait": 1}

    class Boom(H.Hook):
        def on_batch_end(self, trainer, metrics):
            raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny_config(toy_cache, tmp_path / "ex", setup="baseline"),
              extra_hooks=[Boom(), rec], verbose=False)
    assert rec.events[-1] == "exception:boom"


def test_device_selection_logic():
    assert select_device("cpu", cuda_available=True, cuda_count=2).type == "cpu"
    assert select_device("auto", cuda_available=False).type == "cpu"
    assert select_device("auto", local_rank=1, cuda_available=True, cuda_count=2) == \
        torch.device("cuda", 1)
    assert select_device("cuda", local_rank=3, cuda_available=True, cuda_count=2) == \
        torch.device("cuda", 1)
    assert select_device("cuda:0", cuda_available=True, cuda_count=1) == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda", cuda_available=False)
    with pytest.raises(ConfigError, match="only 1 CUDA"):
        select_device("cuda:3", cuda_available=True, cuda_count=1)
    with pytest.raises(ConfigError, match="train.device"):
        select_device("tpu", cuda_available=True, cuda_count=1)
    assert backend_for(torch.device("cuda", 0)) == "nccl"
    assert backend_for(torch.device("cpu")) == "gloo"
    env = env_from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert env == DistEnv(3, 4, 1) and env.distributed and not env.is_main
    # batches for a GPU come from pinned memory (asynchronous host-to-device copies)
    assert _loader([], [], 0, torch.device("cuda", 0)).pin_memory
    assert not _loader([], [], 0, torch.device("cpu")).pin_memory


def test_bad_configs(toy_tree, tmp_path):
    with pytest.raises(ConfigError, match="train: unknown key"):
        config_from_dict({"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="train.dtype"):
        config_from_dict({"train": {"dtype": "float16"}})
    with pytest.raises(ConfigError, match="model.irreps_hidden"):
        config_from_dict({"model": {"irreps_hidden": "4x1o+2x2e"}})
    with pytest.raises(ConfigError, match="data.path"):
        train(config_from_dict({"train": {"out_dir": str(tmp_path / "x")}}), verbose=False)
    cfg = tiny_config(tmp_path / "nowhere", tmp_path / "y")
    with pytest.raises(ConfigError, match="does not exist"):
        train(cfg, verbose=False)
    cfg = tiny_config(toy_tree, tmp_path / "z", batch_size=1, device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            train(cfg, verbose=False)
    # a structure without hamiltonians.h5 cannot be trained on
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(toy_tree, broken)
    (broken / "s001" / "hamiltonians.h5").unlink()
    with pytest.raises(DeepHFormatError, match="hamiltonians.h5"):
        train(tiny_config(broken, tmp_path / "w"), verbose=False)
    cfg = tiny_config(toy_tree, tmp_path / "v")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, split="nosuch.json"))
    with pytest.raises(TgkitError, match="data.split"):
        train(cfg, verbose=False)


def test_soc_training_uses_complex_blocks(toy_tree, tmp_path):
    from tests.conftest import make_spinful
    from tgkit.data.deeph import read_structure, write_structure

    root = tmp_path / "soc"
    for name in ("s000", "s001", "s002"):
        write_structure(make_spinful(read_structure(toy_tree / name)), root / name)
    cfg = tiny_config(root, tmp_path / "run", max_steps=2, setup="tracegrad",
                      dtype="float32")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, train_fraction=0.34, val_fraction=0.33))
    doc = train(cfg, verbose=False)
    assert doc["steps"] == 2 and math.isfinite(doc["test"]["mae_all"])
    assert math.isfinite(doc["val"]["loss_t"])


def test_twisted_structures_are_reported_separately(toy_tree, tmp_path):
    from tgkit.data.deeph import read_structure, write_structure

    root = tmp_path / "tw"
    for name in ("s000", "s001", "s002", "s003", "s004"):
        s = read_structure(toy_tree / name)
        s.info["twisted"] = name == "s004"
        write_structure(s, root / name)
    cfg = tiny_config(root, tmp_path / "run", max_steps=1, setup="baseline")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, train_fraction=0.5, val_fraction=0.25))
    doc = train(cfg, verbose=False)
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["test_twisted"] == ["s004"] and "s004" not in split["train"] + split["test"]
    assert doc["test_t"]["num_samples"] == 1 and list(doc["test_t"]["mae_sample"]) == ["s004"]
    assert doc["test"]["num_samples"] == 1


def test_adam_is_fused_adam_and_stays_fused_after_an_older_checkpoint(toy_cache, tmp_path):
    """tgkit's Adam is torch's update rule (fused kernel, same values to round-off), and a
    checkpoint saved without the fused flag (before it existed) does not switch it off."""
    from tgkit.train.checkpoint import load_checkpoint, save_checkpoint
    from tgkit.train.trainer import adam

    w, g = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)).unbind(0)[:2]
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    opt_a, opt_b = adam([a], 1e-2), torch.optim.Adam([b], lr=1e-2)
    for k in range(3):
        a.grad, b.grad = g * (k + 1), g * (k + 1)
        opt_a.step()
        opt_b.step()
    assert opt_a.param_groups[0]["fused"] is True  # torch 2.13 fuses Adam on the CPU
    assert (a - w).abs().max() > 1e-3 and (a - b).abs().max() <= 1e-6

    run = tmp_path / "r"
    train(tiny_config(toy_cache, run, max_steps=2), verbose=False)
    state = load_checkpoint(run / "last.pt")
    for group in state["optimizer"]["param_groups"]:
        group["fused"] = None
    save_checkpoint(state, run / "last.pt")
    seen = []

    class Probe(H.Hook):
        def on_fit_start(self, trainer):
            seen.append([grp["fused"] for grp in trainer.optimizer.param_groups])

    out = train(tiny_config(toy_cache, run, max_steps=4), resume=True, extra_hooks=[Probe()],
                verbose=False)
    assert out["steps"] == 4 and seen == [[True]]


def test_train_compile_runs_the_frame_products_compiled(toy_cache, tmp_path, monkeypatch):
    """train.compile: true reaches HamiltonianModel.compile_training, and a run with compiled
    frame products and TraceGrad modules (dynamo's 'eager' backend here, to skip inductor's
    minute of compiling) trains to the same metrics as without."""
    from tgkit.nn import TraceGrad
    from tgkit.nn.edge_frame import FrameProduct
    from tgkit.nn.model import HamiltonianModel

    original, seen = HamiltonianModel.compile_training, []

    def compile_training(self, backend="inductor"):
        seen.append(backend)
        original(self, backend="eager")

    class Probe(H.Hook):
        def on_fit_start(self, trainer):
            seen.append(sorted({(type(m).__name__, m.compile_backend)
                                for m in trainer.model.modules()
                                if isinstance(m, FrameProduct | TraceGrad)}))

    monkeypatch.setattr(HamiltonianModel, "compile_training", compile_training)
    ref = train(tiny_config(toy_cache, tmp_path / "a", max_steps=2), verbose=False)
    comp = train(tiny_config(toy_cache, tmp_path / "b", max_steps=2, compile=True),
                 extra_hooks=[Probe()], verbose=False)
    assert seen == ["inductor", [("FrameProduct", "eager"), ("TraceGrad", "eager")]]
    assert comp["steps"] == 2
    assert comp["test"]["mae_all"] == pytest.approx(ref["test"]["mae_all"], rel=1e-4)
