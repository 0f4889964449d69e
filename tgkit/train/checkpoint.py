"""Checkpoint files: atomic writes, safe loads, and random-number-generator states.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that it loads
with ``torch.load(weights_only=True)`` (the torch >= 2.6 default, which refuses pickled
objects). Keys written by :class:`tgkit.train.trainer.Trainer`::

    format        "tgkit-checkpoint-1"
    config        the run's configuration (nested dicts, see tgkit.config.config_to_dict)
    basis         {Z: orbital_types} of the dataset the model was built for
    spinful       bool
    model         model.state_dict()
    optimizer     optimizer.state_dict()
    scheduler     scheduler.state_dict()
    trainer       epoch, batch position in the epoch, global step, smoothed val loss, ...
    hooks         {hook name: hook.state_dict()}
    rng           torch CPU / CUDA, numpy and python generator states

Files are written to ``<name>.tmp`` and renamed with ``os.replace`` (atomic on POSIX), so a
crash or SIGKILL during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgkit.errors import TgkitError

CHECKPOINT_FORMAT = "tgkit-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically (tmp file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise TgkitError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise TgkitError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TgkitError(f"{path}: not a tgkit checkpoint ({CHECKPOINT_FORMAT})")
    return state


def rng_state() -> dict[str, Any]:
    """All generator states as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": py[0], "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s generators (CUDA only where it exists on both sides)."""
    torch.set_rng_state(state["torch"].cpu())
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), numpy and python."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
