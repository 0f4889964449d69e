"""Refusing to overwrite: a run directory or output files that already hold results.

``tgkit train`` into a directory with a previous run continues it only with ``--resume``,
replaces it only with ``--force`` (the old checkpoints and metrics are deleted first, so
nothing is appended to them), and otherwise stops with one line. ``predict`` and ``bands``
use :func:`refuse_overwrite` on the files they would replace.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from tgkit.errors import TgkitError
from tgkit.io_utils import checksum_path

# what a training run writes into train.out_dir (graphs.h5 is a cache, checked by content)
RUN_OUTPUTS = ("last.pt", "last.prev.pt", "best.pt", "model.pt", "metrics.jsonl",
               "metrics.csv", "results.json", "block_mae.npz", "config.yaml", "split.json",
               "tensorboard")
CHECKPOINTS = ("last.pt", "last.prev.pt")


def run_outputs(out_dir: Path) -> list[Path]:
    """The files of a previous run found in ``out_dir``."""
    return [out_dir / n for n in RUN_OUTPUTS if (out_dir / n).exists()]


def clear_run(out_dir: Path) -> None:
    """Delete a previous run's outputs (and checksums) from ``out_dir``; caches stay."""
    for p in run_outputs(out_dir):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
            checksum_path(p).unlink(missing_ok=True)


def claim_run_dir(out_dir: str | Path, resume: bool, force: bool) -> None:
    """Make ``out_dir`` ready for a run, or refuse in one line.

    Args:
        out_dir: the run directory.
        resume: continue the run there; without a checkpoint to continue from, the partial
            outputs (metrics of a run killed before its first checkpoint) are cleared.
        force: replace a previous run.
    """
    out_dir = Path(out_dir)
    found = run_outputs(out_dir)
    if not found:
        return
    can_resume = any((out_dir / n).exists() for n in CHECKPOINTS)
    if force or (resume and not can_resume):
        clear_run(out_dir)
    elif not resume:
        names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise TgkitError(f"{out_dir}: already holds a training run ({names}); pass --resume to "
                         "continue it or --force to replace it")


def refuse_overwrite(paths: Iterable[Path], force: bool) -> None:
    """One-line error naming the first of ``paths`` that exists, unless ``force``."""
    if force:
        return
    for p in paths:
        if Path(p).exists():
            raise TgkitError(f"{p}: already exists; pass --force to overwrite it")
