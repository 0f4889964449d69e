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

Files are written to a temporary sibling and renamed with ``os.replace`` (atomic on POSIX),
so a crash or SIGKILL during a save leaves the previous checkpoint intact. Each file has a
``<name>.sha256`` sidecar (:mod:`tgkit.io_utils`): flipped bytes or truncation are detected
on load. Before ``last.pt`` is replaced, the previous one is kept as ``last.prev.pt``, and
:func:`resume_checkpoint` falls back to it when ``last.pt`` is damaged.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgkit.errors import TgkitError
from tgkit.io_utils import checksum_path, load_torch, save_torch, verify_checksum

CHECKPOINT_FORMAT = "tgkit-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` atomically (tmp file, fsync, ``os.replace``) with its checksum."""
    return save_torch(state, path)


def previous_path(path: str | os.PathLike) -> Path:
    """``last.pt`` -> ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def keep_previous(path: str | os.PathLike, verify: bool = False) -> None:
    """Rename ``path`` (and its checksum) to :func:`previous_path` before it is replaced.

    With ``verify``, a ``path`` that fails its checksum is not kept (the previous copy stays).
    """
    path = Path(path)
    if verify and path.is_file():
        try:
            verify_checksum(path)
        except TgkitError:
            return
    if path.is_file():
        prev = previous_path(path)
        if checksum_path(path).is_file():
            os.replace(checksum_path(path), checksum_path(prev))
        os.replace(path, prev)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` after checking its SHA-256; a clear
    one-line error if it is damaged or not one."""
    path = Path(path)
    state = load_torch(path, map_location, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TgkitError(f"{path}: not a tgkit checkpoint ({CHECKPOINT_FORMAT})")
    return state


def resume_checkpoint(path: str | os.PathLike) -> Path | None:
    """The checkpoint to resume from: ``path`` if it loads, else its ``.prev`` copy (saying
    so on stderr), else None when neither exists; an error when both are damaged."""
    path = Path(path)
    prev = previous_path(path)
    if not path.exists() and not prev.exists():
        return None
    try:
        load_checkpoint(path)
        return path
    except TgkitError as exc:
        if not prev.exists():
            raise
        try:
            load_checkpoint(prev)
        except TgkitError as exc2:
            raise TgkitError(f"{exc}; the previous checkpoint is unusable too ({exc2})") from None
        print(f"tgkit: {exc}; resuming from the previous checkpoint {prev}", file=sys.stderr)
        return prev


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
    # a checkpoint loaded with map_location="cuda" brings these tensors onto the GPU
    np.random.set_state(("MT19937", npst["keys"].cpu().numpy().astype(np.uint32), npst["pos"],
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
