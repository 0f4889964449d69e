"""Fixtures for the training tests: a tiny toy DeepH dataset and a tiny model config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tgkit.config import Config, config_from_dict
from tgkit.data.deeph import write_structure
from tgkit.data.store import build_cache
from tgkit.testing import toy_dataset

TINY_BASIS = {6: (0, 0, 1)}  # s s p: blocks up to L = 2 keep the model tiny


@pytest.fixture(scope="session")
def toy_tree(tmp_path_factory) -> Path:
    """Six 2-atom carbon crystals with toy Hamiltonians, as DeepH directories."""
    root = tmp_path_factory.mktemp("toy") / "raw"
    for s in toy_dataset(6, numbers=(6, 6), basis=TINY_BASIS, cutoff=4.0):
        write_structure(s, root / s.name)
    return root


@pytest.fixture(scope="session")
def toy_cache(toy_tree) -> Path:
    return build_cache(toy_tree, toy_tree.parent / "graphs.h5", progress=False)


def tiny_config(data: Path | str, out_dir: Path | str, setup: str = "tracegrad",
                **train: Any) -> Config:
    """A model small enough for a CPU step in well under a second; float64 for exact tests."""
    t = {"out_dir": str(out_dir), "epochs": 2, "batch_size": 1, "lr": 0.01, "dtype": "float64",
         "device": "cpu", "progress": False, "log_every": 1, "tensorboard": False,
         "num_threads": 1}
    t.update(train)
    return config_from_dict({
        # 6 structures: 4 train, 1 val, 1 test
        "data": {"path": str(data), "train_fraction": 0.67, "val_fraction": 0.17},
        "model": {"irreps_embed": "4x0e", "irreps_hidden": "4x0e+2x1o+2x2e", "num_blocks": 1,
                  "lmax": 2, "num_radial": 8, "radial_hidden": 8, "cutoff": 4.0,
                  "avg_num_neighbors": 10.0},
        "tracegrad": {"setup": setup, "num_invariants": 4, "hidden": 8, "num_z": 4,
                      "decoder_hidden": 8},
        "train": t,
    })
