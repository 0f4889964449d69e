"""Live training dashboard: a trainer hook that feeds a plotly FigureWidget, and controls.

:class:`DashboardHook` is an ordinary :class:`tgkit.train.Hook`: it appends loss_Q and loss_T
at every logged step and the validation MAE after every validation, both to plain lists
(tested without a browser) and to a ``FigureWidget`` when one is attached. It stops the
trainer at the next step after :meth:`DashboardHook.request_stop`.

:class:`TrainingDashboard` runs :func:`tgkit.train.train` in a background thread so that the
kernel stays free to receive the stop button's click while the figure updates.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tgkit.config import SETUPS
from tgkit.train import Hook, StepRecord

STOP_REASON = "stopped from the dashboard"


def training_figure() -> go.Figure:
    """Empty three-panel figure: loss_Q and loss_T per step (log y), validation MAE_all (meV),
    validation band error max and mean (meV, within E_F +- 2 eV; a small MAE is not good
    bands, so both are shown)."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.09, subplot_titles=(
        "training loss", "validation MAE_all", "validation band error"))
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="loss_Q"), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="loss_T"), 1, 1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="val MAE_all"), 1, 2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="band max"), 1, 3)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="band mean"), 1, 3)
    fig.update_yaxes(type="log", title_text="loss (eV², log)", row=1, col=1)
    fig.update_yaxes(title_text="MAE_all (meV)", row=1, col=2)
    fig.update_yaxes(title_text="|ΔE| in E_F ± 2 eV (meV)", row=1, col=3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=360, width=1080, margin=dict(l=60, r=10, t=40, b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class DashboardHook(Hook):
    """Collects the curves of a training run and pushes them to a figure and a progress bar.

    Args:
        figure: a ``go.FigureWidget`` made from :func:`training_figure` (or None: lists only).
        progress: an ``ipywidgets.IntProgress`` advanced at every step (optional).
        label: an ``ipywidgets.HTML`` next to it: step, loss, time per step, ETA (optional).

    Attributes:
        steps, loss_q, loss_t: per logged step (loss_t is NaN for setups without T).
        val_steps, val_mae: per validation (meV); val_band_max, val_band_mean: band errors
            (meV, NaN when the run logs none).
        status: last status line ("running step 3", "finished: ...").
        progress_text: the label's last text.
    """

    def __init__(self, figure: go.FigureWidget | None = None, progress=None, label=None) -> None:
        self.figure, self.progress, self.label = figure, progress, label
        self.steps: list[int] = []
        self.loss_q: list[float] = []
        self.loss_t: list[float] = []
        self.val_steps: list[int] = []
        self.val_mae: list[float] = []
        self.val_band_max: list[float] = []
        self.val_band_mean: list[float] = []
        self.status = "idle"
        self.progress_text = ""
        self.total = 0
        self._t0 = time.monotonic()
        self._first_step: int | None = None
        self._stop = threading.Event()

    # dashboard state is not training state: nothing to checkpoint
    def state_dict(self) -> dict[str, Any]:
        return {}

    def request_stop(self) -> None:
        """Ask the trainer to stop after its current step (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def on_fit_start(self, trainer) -> None:
        self.status = "running"
        self.total = int(getattr(trainer, "total_steps", 0) or 0)
        self._t0 = time.monotonic()
        self._first_step = int(getattr(trainer, "global_step", 0))
        if self.progress is not None:
            self.progress.max = max(self.total, 1)
            self.progress.value = self._first_step
        self._label(f"step {self._first_step} / {self.total}: first step (compiling) ...")

    def on_batch_end(self, trainer, metrics: StepRecord) -> None:
        step = int(metrics["step"])
        if metrics.is_log_step:
            self.steps.append(step)
            self.loss_q.append(float(metrics["loss"]))
            lt = float(metrics.get("loss_t", math.nan))
            self.loss_t.append(lt if lt > 0 else math.nan)  # no T decoder: no curve
            self._push()
        self.status = f"running step {step}"
        self._advance(step)
        if self._stop.is_set():
            trainer.stop(STOP_REASON)

    def _advance(self, step: int) -> None:
        done = step - (self._first_step or 0)
        dt = time.monotonic() - self._t0
        per = dt / max(done, 1)
        left = max(self.total - step, 0)
        loss = f"loss {self.loss_q[-1]:.3g} eV²" if self.loss_q else "loss -"
        if self.progress is not None:
            self.progress.value = min(step, self.progress.max)
        self._label(f"step {step} / {self.total} &middot; {loss} &middot; {per:.2f} s/step "
                    f"&middot; elapsed {_duration(dt)} &middot; ETA {_duration(left * per)}")

    def _label(self, text: str) -> None:
        self.progress_text = text
        if self.label is not None:
            self.label.value = text

    def on_validation_end(self, trainer, metrics: dict[str, float]) -> None:
        self.val_steps.append(int(trainer.global_step))
        self.val_mae.append(float(metrics["val_mae_all"]))
        self.val_band_max.append(float(metrics.get("val_band_max", math.nan)))
        self.val_band_mean.append(float(metrics.get("val_band_mean", math.nan)))
        self._push()

    def on_fit_end(self, trainer) -> None:
        self.status = f"finished: {trainer.stop_reason or 'done'} after {trainer.global_step} steps"

    def _push(self) -> None:
        if self.figure is None:
            return
        d = self.figure.data
        with self.figure.batch_update():
            d[0].x, d[0].y = list(self.steps), list(self.loss_q)
            d[1].x, d[1].y = list(self.steps), list(self.loss_t)
            d[2].x, d[2].y = list(self.val_steps), list(self.val_mae)
            d[3].x, d[3].y = list(self.val_steps), list(self.val_band_max)
            d[4].x, d[4].y = list(self.val_steps), list(self.val_band_mean)


def _device_options() -> list[str]:
    import torch

    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class TrainingDashboard:
    """Pick a dataset, a setup and hyperparameters; start, watch and stop a training run.

    Args:
        datasets: ``{label: DeepH tree path}`` offered in the dataset selector.
        out_root: run directories go to ``out_root/<setup>`` (default: a temporary directory).
        tiny: small model (CI and laptops).
        steps: initial value of the steps slider.

    Attributes:
        widget: the box to display; ``hook`` the current :class:`DashboardHook`;
        result: the ``results.json`` dict of the last finished run; ``error``: its exception.
    """

    def __init__(
        self, datasets: dict[str, str | Path], out_root: str | Path | None = None,
        tiny: bool = True, steps: int = 20,
    ) -> None:
        import ipywidgets as w

        self.tiny = tiny
        self.out_root = Path(out_root or tempfile.mkdtemp(prefix="tgkit-dashboard-"))
        self.dataset = w.Dropdown(options=list(datasets.items()), description="dataset")
        self.setup = w.ToggleButtons(options=list(SETUPS), value="tracegrad", description="setup")
        self.steps = w.IntSlider(value=steps, min=1, max=2000, description="steps")
        self.lr = w.FloatLogSlider(value=2e-3, base=10, min=-5, max=-1, description="lr")
        self.device = w.Dropdown(options=_device_options(), value="auto", description="device")
        self.start_button = w.Button(description="Start", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                                    disabled=True)
        self.status = w.HTML("idle")
        self.progress = w.IntProgress(value=0, min=0, max=steps, description="progress",
                                      bar_style="info", layout=w.Layout(width="360px"))
        self.progress_label = w.HTML("not started")
        self.figure = go.FigureWidget(training_figure())
        self.hook = DashboardHook(self.figure, self.progress, self.progress_label)
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        self.widget = w.VBox([
            w.HBox([self.dataset, self.device]), self.setup, w.HBox([self.steps, self.lr]),
            w.HBox([self.start_button, self.stop_button, self.status]),
            w.HBox([self.progress, self.progress_label]), self.figure,
        ])

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def config(self):
        """The :class:`tgkit.config.Config` the controls describe."""
        from dataclasses import replace

        from tgkit.viz.demo import demo_config

        cfg = demo_config(self.out_root / self.setup.value, setup=self.setup.value, tiny=self.tiny,
                          steps=self.steps.value, lr=self.lr.value, data=self.dataset.value)
        return replace(cfg, train=replace(cfg.train, device=self.device.value))

    def start(self) -> None:
        """Start training in a background thread (no-op while a run is going)."""
        if self.running:
            return
        from tgkit.train import train

        cfg = self.config()
        with self.figure.batch_update():  # fresh curves for the new run
            for trace in self.figure.data:
                trace.x, trace.y = [], []
        self.hook = DashboardHook(self.figure, self.progress, self.progress_label)
        self.progress.max, self.progress.value = cfg.train.max_steps, 0
        self.progress.bar_style = "info"
        self.progress_label.value = "preparing data and model ..."
        self.result, self.error = None, None
        self.start_button.disabled, self.stop_button.disabled = True, False
        self.status.value = f"training {cfg.tracegrad.setup} for {cfg.train.max_steps} steps..."

        def work() -> None:
            try:
                self.result = train(cfg, extra_hooks=[self.hook], verbose=False, force=True)
                mae = self.result.get("val", {}).get("mae_all", math.nan)
                band = self.result.get("val", {}).get("band_max_meV")
                band = f", band error max {band:.0f} meV" if band is not None else ""
                self.status.value = f"{self.hook.status}; val MAE_all {mae:.2f} meV{band}"
                self.progress.bar_style = "success"
            except BaseException as exc:  # shown in the dashboard; the thread must not die silently
                self.error = exc
                self.progress.bar_style = "danger"
                self.status.value = f"<b>error</b>: {type(exc).__name__}: {exc}"
            finally:
                self.start_button.disabled, self.stop_button.disabled = False, True

        self._thread = threading.Thread(target=work, name="tgkit-train", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the run after its current step."""
        self.hook.request_stop()
        self.status.value = "stopping after this step..."

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the run ends; re-raises its exception; returns ``results.json``."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
