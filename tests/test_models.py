"""Every shipped pretrained model loads by name, predicts shipped structures, and matches its
model card (MAE and band errors recorded by bench/ship_model.py)."""

from __future__ import annotations

import pytest
import torch

from tgkit import models
from tgkit.data.deeph import read_structure
from tgkit.train.band_error import structure_errors

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
# CPU float32 on another machine or BLAS differs in the last bits; band errors of a few meV
# move by a few percent at most
REL, ABS = 0.05, 0.05


def test_registry_rejects_unknown_name():
    with pytest.raises(Exception, match="no shipped model named 'nope'"):
        models.load("nope")


@pytest.mark.parametrize("name", models.available())
def test_shipped_model_matches_its_card(name):
    torch.set_num_threads(1)
    card = models.card(name)
    model = models.load(name)
    assert card["checks"], f"{name}: the card records no check on a shipped structure"
    for check in card["checks"]:
        got = structure_errors(model, read_structure(ROOT / check["structure"]))
        for key in ("mae_meV", "band_max_meV", "band_mean_meV"):
            assert got[key] == pytest.approx(check[key], rel=REL, abs=ABS), (name, check, key)


def test_models_are_shipped():
    """The converged-models issue ships a monolayer and a bilayer model."""
    assert {"graphene", "bilayer"} <= set(models.available())
