"""Training hooks in the style of Lightning callbacks: small no-op methods plus saved state.

A hook subclasses :class:`Hook` and overrides what it needs. The trainer calls the hooks in
list order, so a hook that adds values to a metrics dict (:class:`LRMonitor`) goes before the
ones that write them (:class:`MetricsLogger`). Every hook's :meth:`Hook.state_dict` is saved
in checkpoints under its :attr:`Hook.name` and given back by :meth:`Hook.load_state_dict` on
resume. Hooks that write files act on the main process only (``trainer.env.is_main``).

Metrics dicts hold plain floats: per-step dicts (``on_batch_end``) are :class:`StepRecord`,
which carry ``step``, ``epoch`` and, at log steps (every ``log_every`` steps,
:attr:`StepRecord.is_log_step`), ``loss`` / ``loss_t`` / ``mu`` (reading a loss value
synchronises with the device, so the trainer only does it when someone will log it);
validation dicts carry ``val_loss`` (MSE of H, eV^2), ``val_loss_t``, ``val_mae_all`` (meV),
``train_loss`` (mean over the steps since the previous validation) and ``lr``. In per-step
dicts ``epoch`` is the current epoch (from 0); in validation dicts it is the number of epochs
completed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tgkit.errors import TrainingDiverged
from tgkit.train.checkpoint import keep_previous

if TYPE_CHECKING:
    from tgkit.train.trainer import Trainer


class StepRecord(dict):
    """The metrics of one optimizer step, as hooks receive them in ``on_batch_end``.

    A dict (hooks add values, e.g. ``lr``; loggers write it as it is) holding ``epoch`` and
    ``step`` and, at log steps, the losses ``{name: value}``.

    Attributes:
        is_log_step: whether this step logs (the losses were read from the device).
    """

    def __init__(self, epoch: int, step: int, losses: dict[str, float] | None = None) -> None:
        super().__init__(epoch=epoch, step=step, **(losses or {}))
        self.is_log_step = losses is not None


class Hook:
    """Base class: every method is a no-op; ``name`` keys the hook's checkpointed state.

    ``order`` sorts hooks (stable): checkpointing runs after everything else at a step.
    """

    order = 0

    @property
    def name(self) -> str:
        return type(self).__name__

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None: ...

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _better(value: float, best: float, mode: str, min_delta: float = 0.0) -> bool:
    if math.isnan(value):
        return False
    return value < best - min_delta if mode == "min" else value > best + min_delta


class Checkpoint(Hook):
    """Saves ``last.pt`` every ``every_n_steps`` steps and after each validation, and
    ``best.pt`` when the monitored value improves. Writes are atomic.

    Args:
        directory: where the files go.
        monitor: key of the validation metrics to compare (``val_loss``).
        every_n_steps: 0 saves only after validations; N also saves mid-epoch every N steps,
            which bounds the work lost to a crash (exact resume from any of them).
    """

    def __init__(self, directory: str | os.PathLike, monitor: str = "val_loss",
                 every_n_steps: int = 0) -> None:
        self.dir = Path(directory)
        self.monitor = monitor
        self.every = every_n_steps
        self.order = 100
        self.best = math.inf
        self._wrote_last = False

    def _save_last(self, trainer: Trainer) -> None:
        check_finite(trainer)  # a diverged model is never saved
        if trainer.env.is_main:
            # --resume falls back to last.prev.pt if last.pt is bad; a last.pt this process
            # did not write is checked first, so a damaged one never becomes the fallback
            keep_previous(self.dir / "last.pt", verify=not self._wrote_last)
        trainer.save_checkpoint(self.dir / "last.pt")
        self._wrote_last = True

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        if self.every and trainer.global_step % self.every == 0:
            self._save_last(trainer)

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor, math.nan)
        if math.isfinite(value) and _better(value, self.best, "min"):
            check_finite(trainer)
            self.best = value
            trainer.save_checkpoint(self.dir / "best.pt")
        self._save_last(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._save_last(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])


def check_finite(trainer: Trainer, metrics: dict[str, float] | None = None) -> None:
    """Raise :class:`tgkit.errors.TrainingDiverged` if a logged loss or a parameter is not
    finite. One device sync (all parameters reduced to one flag); call it at log steps,
    validations and saves, not every step."""
    for key in ("loss", "val_loss", "val_mae_all"):  # loss_t is NaN without a T decoder
        value = (metrics or {}).get(key)
        if value is not None and not math.isfinite(value):
            raise TrainingDiverged(f"training diverged at step {trainer.global_step}: {key} is "
                                   f"{value} (lower train.lr, set train.grad_clip, or check the "
                                   "data); no model was saved from this state")
    import torch

    params = [p.detach() for p in trainer.model.parameters()]
    if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        bad = next(n for n, p in trainer.model.named_parameters()
                   if not bool(torch.isfinite(p).all()))
        raise TrainingDiverged(f"training diverged at step {trainer.global_step}: parameter "
                               f"{bad} is not finite (lower train.lr or set train.grad_clip); "
                               "no model was saved from this state")


class DivergenceGuard(Hook):
    """Stops training with :class:`tgkit.errors.TrainingDiverged` when the loss (checked at
    log steps) or a validation metric or parameter (checked at validations) is NaN or inf.

    Runs before every other hook, so a diverged state is never logged as good or saved.
    """

    order = -100

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        if metrics.is_log_step:
            check_finite(trainer, metrics)

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        check_finite(trainer, metrics)


class EarlyStopping(Hook):
    """Stops training when ``monitor`` has not improved by ``min_delta`` for ``patience``
    validations in a row."""

    def __init__(self, patience: int, monitor: str = "val_loss", min_delta: float = 0.0) -> None:
        self.patience = patience
        self.monitor = monitor
        self.min_delta = min_delta
        self.best = math.inf
        self.wait = 0

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        value = metrics.get(self.monitor, math.nan)
        if _better(value, self.best, "min", self.min_delta):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop(f"early stopping: {self.monitor} did not improve for "
                             f"{self.patience} validations")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = float(state["best"]), int(state["wait"])


class LRMonitor(Hook):
    """Adds the current learning rate (``lr``) to every metrics dict."""

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        metrics["lr"] = trainer.lr

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        metrics["lr"] = trainer.lr


class MetricsLogger(Hook):
    """Appends metrics to ``metrics.jsonl`` (one record per log step and per validation, with
    ``"kind": "train"`` or ``"val"``) and validation records to ``metrics.csv``.

    The file sizes are checkpointed; on resume the files are cut back to them, so records
    written after the checkpoint by a killed run are not duplicated.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.jsonl = self.dir / "metrics.jsonl"
        self.csv = self.dir / "metrics.csv"
        self.columns: list[str] = []

    def _sizes(self) -> dict[str, int]:
        return {p.name: (p.stat().st_size if p.exists() else 0) for p in (self.jsonl, self.csv)}

    def _write(self, trainer: Trainer, kind: str, metrics: dict[str, float]) -> None:
        if not trainer.env.is_main:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        record = {"kind": kind, **metrics}
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        if kind == "val":
            if not self.columns:
                self.columns = list(metrics)
            new = not self.csv.exists() or self.csv.stat().st_size == 0
            buf = io.StringIO()
            w = csv.DictWriter(buf, self.columns, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(metrics)
            with open(self.csv, "a") as f:
                f.write(buf.getvalue())

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        if metrics.is_log_step:
            self._write(trainer, "train", metrics)

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._write(trainer, "val", metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"sizes": self._sizes(), "columns": list(self.columns)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.columns = list(state["columns"])
        for p in (self.jsonl, self.csv):
            size = int(state["sizes"].get(p.name, 0))
            if p.exists() and p.stat().st_size > size:
                with open(p, "r+b") as f:
                    f.truncate(size)


class TensorBoard(Hook):
    """Writes scalars to ``<directory>`` with ``torch.utils.tensorboard`` when the
    ``tensorboard`` package is installed; otherwise does nothing."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.dir = Path(directory)
        self.writer = None

    @staticmethod
    def available() -> bool:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            return False
        return True

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.env.is_main and self.available():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.dir))

    def _log(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        for k, v in metrics.items():
            if k not in ("step", "epoch") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        if metrics.is_log_step:
            self._log("train", metrics, trainer.global_step)

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._log("val", metrics, trainer.global_step)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self.on_fit_end(trainer)


class ProgressBar(Hook):
    """A tqdm bar over the steps of each epoch, showing the last logged loss (main process)."""

    def __init__(self) -> None:
        self.bar = None

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if not trainer.env.is_main:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.steps_per_epoch, initial=trainer.batch_in_epoch,
                        desc=f"epoch {epoch}", unit="step", leave=False, dynamic_ncols=True)

    def on_batch_end(self, trainer: Trainer, metrics: StepRecord) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if metrics.is_log_step:
                self.bar.set_postfix(loss=f"{metrics['loss']:.3g}")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, trainer: Trainer, epoch: int) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._close()


class PrintValidation(Hook):
    """Prints one line per validation (main process), e.g. for the README's main job."""

    def on_validation_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if trainer.env.is_main:
            print(f"epoch {metrics['epoch']:4d}  step {metrics['step']:6d}  "
                  f"train loss {metrics.get('train_loss', math.nan):.4e}  "
                  f"val loss {metrics['val_loss']:.4e} eV^2  "
                  f"val MAE {metrics['val_mae_all']:.3f} meV"
                  + (f"  bands max/mean {metrics['val_band_max']:.0f}/"
                     f"{metrics['val_band_mean']:.0f} meV" if "val_band_max" in metrics else "")
                  + f"  lr {trainer.lr:.2e}", flush=True)
