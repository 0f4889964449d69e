"""Shipped pretrained models: find, describe and load them by name.

Each model is a folder of the ``tgkit.pretrained`` package (``models/`` in a source checkout)
holding ``model.pt`` (:func:`tgkit.nn.save_model`), ``card.md`` (data recipe, config, commit,
metrics, band errors, the command that reproduces it) and ``card.json`` (the same figures,
read by the tests that check each model against its card)::

    from tgkit import models
    models.available()                 # ['bilayer', 'graphene']
    model = models.load("graphene")    # a HamiltonianModel in eval mode
    models.card("graphene")["test"]["mae_all"]
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from tgkit.errors import TgkitError

MODEL_FILE, CARD_JSON, CARD_MD = "model.pt", "card.json", "card.md"


def _root() -> Path:
    return Path(str(resources.files("tgkit.pretrained")))


def available() -> list[str]:
    """Names of the shipped models, sorted."""
    root = _root()
    return sorted(p.name for p in root.iterdir() if (p / MODEL_FILE).is_file())


def model_dir(name: str) -> Path:
    """The folder of a shipped model; a clear error lists the names when it is unknown."""
    d = _root() / name
    if not (d / MODEL_FILE).is_file():
        raise TgkitError(f"no shipped model named {name!r}; available: "
                         f"{', '.join(available()) or 'none'}")
    return d


def card(name: str) -> dict[str, Any]:
    """The model card's figures (``card.json``)."""
    return json.loads((model_dir(name) / CARD_JSON).read_text())


def load(name: str, device: str | torch.device = "cpu"):
    """A shipped model, ready for :func:`tgkit.nn.inference.predict_structure`."""
    from tgkit.nn import load_model

    return load_model(model_dir(name) / MODEL_FILE, device).eval()


def resolve(name_or_path: str | Path) -> Path:
    """A path as given when it exists, else the ``model.pt`` of the shipped model so named
    (what ``tgkit predict|eval|export`` accept in place of a run directory)."""
    p = Path(name_or_path)
    if p.exists() or p.suffix or len(p.parts) > 1:
        return p
    return model_dir(str(name_or_path)) / MODEL_FILE
