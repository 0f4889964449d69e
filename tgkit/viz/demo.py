"""Data for the notebooks: the checkout's ``datasets/`` (or ``TGKIT_DATASETS``), tiny in CI.

Every notebook's first cell reads ``TGKIT_TINY`` (``1`` in CI: a few tiny toy structures and
a handful of training steps, seconds on 2 cores) and calls the functions here, so that the
notebooks stay thin and the data choice is tested with the package.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms

from tgkit.config import Config, DataConfig, ModelConfig, TraceGradConfig, TrainConfig
from tgkit.data.deeph import Key, Structure, find_structures, read_structure
from tgkit.data.structures import (
    bilayer_graphene,
    commensurate_angle,
    layer_index,
    twisted_bilayer_graphene,
)
from tgkit.errors import TgkitError
from tgkit.nn.inference import predict_structure


def twisted_bilayers(tiny: bool = True, ms: tuple[int, ...] | None = None) -> dict[float, Atoms]:
    """``{twist angle (deg): atoms}``: AB bilayer (0 deg) and commensurate twisted bilayers.

    Args:
        tiny: small cells only (m = 1, 2: 28 and 76 atoms).
        ms: explicit list of m (n = m + 1) instead of the default.
    """
    ms = ms if ms is not None else ((1, 2) if tiny else (1, 2, 3, 5, 8))
    out: dict[float, Atoms] = {}
    ab = bilayer_graphene(size=(2, 2))
    ab.set_array("layer", layer_index(ab.positions[:, 2]))
    out[0.0] = ab
    for m in ms:
        atoms = twisted_bilayer_graphene(m)
        out[round(commensurate_angle(m, m + 1), 4)] = atoms
    return out


def layer_array(atoms: Atoms) -> np.ndarray:
    """(N,) layer index stored by the builders (``atoms.arrays['layer']``)."""
    return np.asarray(atoms.arrays["layer"], dtype=int)


# --------------------------------------------------------------------------- training data

DATASETS_ENV = "TGKIT_DATASETS"  # a directory holding graphene-tiny/ (and graphene-8/)
TINY_NAME = "graphene-tiny"  # 2 structures x 8 C atoms (CP2K, shipped in the repository)
SMALL_NAME = "graphene-8"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (it has ``datasets/``), or None if installed."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "datasets").is_dir() and (root / "tgkit").is_dir() else None


def datasets_root(path: str | Path | None = None) -> Path:
    """Where the notebooks' DeepH trees live.

    In order: ``path``, the ``TGKIT_DATASETS`` variable, the checkout's ``datasets/``.

    Raises:
        TgkitError: none of them is an existing directory.
    """
    given = path if path is not None else os.environ.get(DATASETS_ENV)
    if given is not None:
        root = Path(given)
        if not root.is_dir():
            raise TgkitError(f"{root}: no such datasets directory")
        return root
    repo = checkout_root()
    if repo is None:
        raise TgkitError(
            "no datasets directory: tgkit is not running from a source checkout; set "
            f"{DATASETS_ENV}=DIR (a folder with {TINY_NAME}/) or pass the path explicitly")
    return repo / "datasets"


# a small encoder: seconds per step on 2 CPU cores, enough to see the curves move
TINY_MODEL = dict(irreps_embed="8x0e", irreps_hidden="8x0e+4x1o+2x2e+2x3o+2x4e",
                  num_blocks=1, num_radial=16, radial_hidden=16)
TINY_TRACEGRAD = dict(num_invariants=8, hidden=16, num_z=8, decoder_hidden=16)


def data_path(tiny: bool = True, root: str | Path | None = None) -> Path:
    """The DeepH tree the notebooks train on: ``graphene-tiny`` (CI) or ``graphene-8`` under
    :func:`datasets_root` (``root`` overrides it)."""
    base = datasets_root(root)
    small = base / SMALL_NAME
    path = base / TINY_NAME if tiny or not small.exists() else small
    if not path.exists():
        raise TgkitError(f"{path}: dataset missing (see datasets/README.md)")
    return path


def demo_config(
    out_dir: str | Path, setup: str = "tracegrad", tiny: bool = True, steps: int = 6,
    lr: float = 2e-3, data: str | Path | None = None, seed: int = 42,
) -> Config:
    """A :class:`tgkit.config.Config` for a short notebook run (small model when ``tiny``)."""
    model = ModelConfig(**TINY_MODEL) if tiny else ModelConfig()
    tg = TraceGradConfig(setup=setup, **TINY_TRACEGRAD) if tiny else TraceGradConfig(setup=setup)
    return Config(
        model=model, tracegrad=tg,
        data=DataConfig(path=str(data or data_path(tiny)), train_fraction=0.5, val_fraction=0.5),
        train=TrainConfig(out_dir=str(out_dir), max_steps=steps, epochs=10_000, lr=lr,
                          log_every=1, progress=False, tensorboard=False, seed=seed,
                          dtype="float64" if tiny else "float32"),
    )


def read_structures(path: str | Path) -> list[Structure]:
    """All structures of a DeepH tree, named like the graph cache names them."""
    root = Path(path)
    out = []
    for d in find_structures(root):
        st = read_structure(d)
        st.name = (str(d.relative_to(root)) if d != root else d.name).replace("/", "__")
        out.append(st)
    return out


def load_run_model(run_dir: str | Path):
    """The trained model of a run directory (``model.pt``), in eval mode."""
    from tgkit.nn import load_model

    return load_model(Path(run_dir) / "model.pt").eval()


def predictor(model, cutoff: float | None = None) -> Callable[[Structure], dict[Key, np.ndarray]]:
    """``Structure -> {key: block}`` (file order, eV) from a :class:`HamiltonianModel`.

    Edges come from the structure's keys, or from ``cutoff`` (A) when it has no blocks
    (rotated copies in :func:`tgkit.physics.check_equivariance` arrive without blocks).
    """
    return functools.partial(predict_structure, model, cutoff=cutoff)


def predict_all(model, structures: Sequence[Structure]) -> dict[str, dict[Key, np.ndarray]]:
    """``{structure name: predicted blocks}`` for an :class:`tgkit.viz.records.ErrorTable`."""
    fn = predictor(model)
    return {st.name: fn(st) for st in structures}


def datasets_available(root: str | Path | None = None) -> dict[str, Path]:
    """``{name: path}`` of the DeepH trees under :func:`datasets_root`."""
    base = datasets_root(root)
    return {p.name: p for p in sorted(base.iterdir())
            if p.is_dir() and any(p.rglob("hamiltonians.h5"))}


def trained_run(tiny: bool = True, setup: str = "tracegrad", steps: int | None = None,
                root: str | Path | None = None) -> Path:
    """A run directory with a trained model, trained on first use and reused afterwards.

    The notebooks share it (``runs/notebooks/<tiny|full>-<setup>`` in the checkout, else in
    the working directory; git-ignored; the ``TGKIT_NOTEBOOK_RUNS`` variable moves it), so
    only the first one pays for training. Returns the run directory.
    """
    from tgkit.train import train

    if root is None:
        base = checkout_root() or Path.cwd()
        root = os.environ.get("TGKIT_NOTEBOOK_RUNS", base / "runs" / "notebooks")
    root = Path(root)
    out = root / f"{'tiny' if tiny else 'full'}-{setup}"
    if not (out / "model.pt").exists():
        n = steps if steps is not None else (3 if tiny else 300)
        train(demo_config(out, setup=setup, tiny=tiny, steps=n), verbose=False, force=True)
    return out


def structure_atoms(structure: Structure) -> Atoms:
    """An :class:`ase.Atoms` of a DeepH structure (for the 3D views)."""
    return Atoms(numbers=structure.numbers, positions=structure.positions,
                 cell=structure.lattice, pbc=True)
