"""What the dashboards open on: the shipped pretrained models and shipped DFT structures.

No notebook trains on first use. :func:`test_structures` gives the held-out structure of the
graphene model card (``datasets/graphene-8``) and the shipped 28-atom 21.8 degree twisted
bilayer (``datasets/tbg-21.8/t000``); :func:`model_for` picks the shipped model that covers a
structure (``bilayer`` for twisted ones); :func:`model_choices` lists the shipped names and the
run directories under ``runs/`` for the model pickers.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tgkit import models
from tgkit.data.deeph import Structure, read_structure
from tgkit.errors import TgkitError
from tgkit.viz.records import is_twisted

REPO = Path(__file__).resolve().parents[2]
GRAPHENE_DATA = REPO / "datasets" / "graphene-8"
TWISTED_DATA = REPO / "datasets" / "tbg-21.8"
MONOLAYER, BILAYER = "graphene", "bilayer"


def shipped_names() -> list[str]:
    """Names of the shipped models (``tgkit.models.available()``)."""
    return models.available()


def twisted_model_name() -> str:
    """``bilayer`` (the shipped model trained with the twisted test); the monolayer model
    only while no bilayer model is shipped."""
    names = shipped_names()
    if BILAYER in names:
        return BILAYER
    if MONOLAYER in names:
        return MONOLAYER
    raise TgkitError("no shipped model; see models/ and tgkit.models.available()")


def model_for(structure: Structure) -> str:
    """The shipped model to predict ``structure`` with: bilayer for twisted, else graphene."""
    if is_twisted(structure):
        return twisted_model_name()
    return MONOLAYER if MONOLAYER in shipped_names() else twisted_model_name()


def run_dirs(root: str | Path | None = None) -> list[Path]:
    """Run directories (holding ``model.pt``) under ``root`` (default ``runs/``), sorted."""
    root = Path(root) if root is not None else REPO / "runs"
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.rglob("model.pt") if p.parent.name != "checkpoints")


def model_choices(root: str | Path | None = None) -> dict[str, str]:
    """``{label: source}`` for a model picker: shipped names, then run directories."""
    out = {f"{n} (shipped)": n for n in shipped_names()}
    for d in run_dirs(root):
        try:
            label = str(d.relative_to(REPO))
        except ValueError:
            label = str(d)
        out[label] = str(d)
    return out


def load(source: str, float64: bool = False):
    """A model in eval mode from a shipped name or a run directory (cached; do not modify).

    Args:
        float64: a double-precision copy (the equivariance check then sees round-off at
            1e-12 eV instead of float32's 1e-5 eV).
    """
    model = _load(source)
    if float64:
        import copy

        model = copy.deepcopy(model).double()
    return model


@functools.lru_cache(maxsize=8)
def _load(source: str):
    if source in shipped_names():
        return models.load(source)
    path = Path(source)
    file = path / "model.pt" if path.is_dir() else path
    if not file.is_file():
        raise TgkitError(f"{source}: neither a shipped model ({', '.join(shipped_names())}) "
                         "nor a run directory with model.pt")
    from tgkit.nn import load_model

    return load_model(file).eval()


def read(path: str | Path, name: str | None = None) -> Structure:
    """One DeepH structure directory, named ``<dataset>/<dir>`` unless ``name`` is given."""
    path = Path(path)
    st = read_structure(path)
    st.name = name or f"{path.parent.name}/{path.name}"
    return st


def monolayer_test_names() -> list[str]:
    """The graphene model card's held-out structures (``0000`` when the card has none)."""
    try:
        names = models.card(MONOLAYER)["split"]["test"]
    except (TgkitError, KeyError, OSError):
        names = []
    return [n for n in names if (GRAPHENE_DATA / n).is_dir()] or ["0000"]


def test_structures(twisted: bool = True, monolayer: bool = True) -> list[Structure]:
    """Shipped DFT test structures: the first held-out graphene-8 cell, the twisted bilayer."""
    out = []
    if monolayer:
        out.append(read(GRAPHENE_DATA / monolayer_test_names()[0]))
    if twisted:
        out.extend(read(d) for d in sorted(TWISTED_DATA.iterdir()) if d.is_dir())
    return out


def predict(source: str, structure: Structure):
    """Blocks of ``structure`` predicted by a shipped model name or a run directory."""
    from tgkit.nn.inference import predict_structure

    return predict_structure(load(source), structure)


def default_choice(structure: Structure, choices: dict[str, str]) -> str:
    """The picker label of :func:`model_for` ``(structure)`` among ``choices``."""
    name = model_for(structure)
    return next((label for label, src in choices.items() if src == name), next(iter(choices)))
