"""Band errors of a model on DFT structures, during training and after it.

A small MAE is not good bands (a few meV of uncorrelated block error can move a band near E_F
by 100 meV), so runs report both: :class:`BandErrorHook` adds ``val_band_max`` and
``val_band_mean`` (meV, within E_F +- 2 eV, along the lattice's standard path) to the
validation metrics, and :func:`subset_band_errors` gives the same numbers for the test sets in
``results.json`` and ``tgkit eval``. Both use :class:`tgkit.physics.bands.BandReference`, the
code behind ``tgkit bands``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tgkit import keys as K
from tgkit.data.deeph import Structure, read_structure
from tgkit.data.graph import graph_blocks, to_device
from tgkit.data.store import GraphDataset
from tgkit.nn.inference import predict_structure
from tgkit.physics.bands import BandReference
from tgkit.train.hooks import Hook

if TYPE_CHECKING:
    from tgkit.train.trainer import Trainer

BAND_WINDOW = 2.0  # eV around E_F, as `tgkit bands` and the data builders
VAL_NPOINTS = 40  # k points per validation (cheap); final reports use 60, as `tgkit bands`


_REFERENCES: dict[tuple, BandReference] = {}  # reference bands by source files, per process
_MAX_REFERENCES = 8


def _reference(d: Path, npoints: int) -> BandReference | None:
    """The reference bands of DeepH directory ``d``, computed once per process: evaluating
    several runs on the same structures (``bench_converged.py --extra-test``, a notebook
    comparing models) solves the DFT bands once. Keyed by the files' sizes and mtimes, so a
    rewritten directory is solved again."""
    stat = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns)
                 for f in sorted(d.iterdir()) if f.is_file())
    key = (str(d.resolve()), npoints, stat)
    if key not in _REFERENCES:
        s = read_structure(d)
        if s.fermi_level is None:
            return None
        if len(_REFERENCES) >= _MAX_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = BandReference(s, npoints=npoints)
    return _REFERENCES[key]


def references(ds: GraphDataset, names: Sequence[str], npoints: int) -> dict[str, BandReference]:
    """Reference bands of the structures whose DeepH directory is still where the cache says
    (the cache holds no overlaps or Fermi level); the others are left out."""
    out = {}
    for name in names:
        d = ds.source_dir(name)
        ref = _reference(Path(d), npoints) if d is not None else None
        if ref is not None:
            out[name] = ref
    return out


@torch.no_grad()
def band_errors(model: torch.nn.Module, ds: GraphDataset, refs: dict[str, BandReference],
                device: torch.device | str = "cpu") -> dict[str, tuple[float, float]]:
    """``{name: (max, mean)}`` band errors in meV of ``model``'s prediction of each structure."""
    was_training = model.training
    model.eval()
    out = {}
    try:
        for k, name in enumerate(ds.names):
            if name not in refs:
                continue
            graph = to_device(ds[k], device)
            hp = model(graph)[K.H_PRED].detach().cpu()
            hp = hp.to(torch.complex128 if hp.is_complex() else torch.float64)
            blocks = graph_blocks({**graph, K.HAMILTONIAN: hp}, ds.basis)
            c = refs[name].compare(blocks, BAND_WINDOW)
            out[name] = (1e3 * c.max_error, 1e3 * c.mean_error)
    finally:
        model.train(was_training)
    return out


def structure_errors(model: torch.nn.Module, structure: Structure,
                     device: torch.device | str = "cpu") -> dict[str, float]:
    """MAE (all elements of all blocks) and band errors, meV, of ``model`` on one DFT structure
    (what the model cards record and the shipped-model tests check)."""
    pred = predict_structure(model, structure, device=device)
    ref = structure.hamiltonians
    err = np.concatenate([np.abs(pred[k] - ref[k]).ravel() for k in ref])
    c = BandReference(structure).compare(pred, BAND_WINDOW)
    return {"mae_meV": 1e3 * float(err.mean()), "band_max_meV": 1e3 * c.max_error,
            "band_mean_meV": 1e3 * c.mean_error}


def summarize(errors: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Max of the maxima and mean of the means over structures, plus the per-structure pairs."""
    if not errors:
        return {}
    return {"band_max_meV": max(m for m, _ in errors.values()),
            "band_mean_meV": sum(a for _, a in errors.values()) / len(errors),
            "band_errors_meV": {n: list(v) for n, v in errors.items()}}


def subset_band_errors(model: torch.nn.Module, ds: GraphDataset, subsets: dict[str, Sequence[str]],
                       device: torch.device | str = "cpu", npoints: int = 60
                       ) -> dict[str, dict[str, Any]]:
    """:func:`summarize` of each named subset (e.g. ``{"test": [...], "test_t": [...]}``)."""
    out = {}
    for key, names in subsets.items():
        if names:
            sub = ds.subset(list(names))
            out[key] = summarize(band_errors(model, sub, references(sub, names, npoints), device))
    return out


class BandErrorHook(Hook):
    """Adds ``val_band_max`` / ``val_band_mean`` (meV) to every ``every``-th validation.

    Runs before the loggers (``order``), with the weights validation uses (the average, when
    there is one). Structures whose DeepH directory cannot be found are skipped, said once.
    """

    order = -10

    def __init__(self, every: int = 1, npoints: int = VAL_NPOINTS) -> None:
        self.every, self.npoints = every, npoints
        self.refs: dict[str, BandReference] | None = None
        self.count = 0

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.count += 1
        ds = trainer.val_set
        if not isinstance(ds, GraphDataset) or (self.count - 1) % self.every:
            return
        if self.refs is None:
            self.refs = references(ds, ds.names, self.npoints)
            if len(self.refs) < len(ds.names) and trainer.env.is_main:
                print(f"band errors: {len(ds.names) - len(self.refs)} of {len(ds.names)} "
                      "validation structures have no source directory or Fermi level; "
                      "left out", file=sys.stderr)
        if not self.refs:
            return
        with trainer.inference_weights():
            s = summarize(band_errors(trainer.model, ds, self.refs, trainer.device))
        metrics["val_band_max"] = s.get("band_max_meV", math.nan)
        metrics["val_band_mean"] = s.get("band_mean_meV", math.nan)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = int(state["count"])
