"""DashboardHook and TrainingDashboard state, driven through the trainer's hook methods."""

import math

import plotly.graph_objects as go

from tgkit.train import StepRecord
from tgkit.viz.training import STOP_REASON, DashboardHook, TrainingDashboard, training_figure


class _Trainer:
    """The two trainer attributes a hook touches (global_step, stop)."""

    def __init__(self):
        self.global_step = 0
        self.stop_reason = ""

    def stop(self, reason):
        self.stop_reason = reason


def test_hook_appends_points_and_updates_figure():
    fig = go.FigureWidget(training_figure())
    hook, tr = DashboardHook(fig), _Trainer()
    hook.on_fit_start(tr)
    for step in (1, 2, 3):
        tr.global_step = step
        hook.on_batch_end(tr, StepRecord(0, step, {"loss": 1.0 / step, "loss_t": 0.5}))
    hook.on_validation_end(tr, {"val_mae_all": 12.5, "val_loss": 0.1})
    assert hook.steps == [1, 2, 3] and hook.loss_q == [1.0, 0.5, 1 / 3]
    assert list(fig.data[0].y) == hook.loss_q and list(fig.data[1].y) == [0.5] * 3
    assert list(fig.data[2].x) == [3] and list(fig.data[2].y) == [12.5]
    # steps without a logged loss only update the status; baseline has no loss_T curve
    hook.on_batch_end(tr, StepRecord(0, 4))
    hook.on_batch_end(tr, StepRecord(0, 5, {"loss": 0.1, "loss_t": 0.0}))
    assert len(hook.steps) == 4 and math.isnan(hook.loss_t[-1])


def test_stop_request_stops_trainer_at_next_step():
    hook, tr = DashboardHook(), _Trainer()
    hook.on_batch_end(tr, StepRecord(0, 1, {"loss": 1.0}))
    assert tr.stop_reason == ""
    hook.request_stop()
    hook.on_batch_end(tr, StepRecord(0, 2, {"loss": 1.0}))
    assert tr.stop_reason == STOP_REASON
    hook.on_fit_end(tr)
    assert STOP_REASON in hook.status


def test_training_dashboard_config_follows_controls(tmp_path):
    d = TrainingDashboard({"tiny": tmp_path}, out_root=tmp_path / "runs", tiny=True, steps=7)
    d.setup.value = "grad"
    d.lr.value = 1e-3
    d.device.value = "cpu"
    cfg = d.config()
    assert cfg.tracegrad.setup == "grad" and cfg.train.max_steps == 7
    assert cfg.train.device == "cpu" and abs(cfg.train.lr - 1e-3) < 1e-12
    assert cfg.data.path == str(tmp_path) and cfg.train.out_dir.endswith("grad")
    d.stop()
    assert d.hook.stop_requested and not d.running


def test_progress_bar_and_band_error_curve():
    import ipywidgets as w

    fig = go.FigureWidget(training_figure())
    bar, label = w.IntProgress(), w.HTML()
    hook, tr = DashboardHook(fig, bar, label), _Trainer()
    tr.total_steps = 4
    hook.on_fit_start(tr)
    assert bar.max == 4 and bar.value == 0
    for step in (1, 2):
        tr.global_step = step
        hook.on_batch_end(tr, StepRecord(0, step, {"loss": 0.5}))
    assert bar.value == 2 and "step 2 / 4" in label.value and "ETA" in label.value
    hook.on_validation_end(tr, {"val_mae_all": 3.0, "val_band_max": 90.0, "val_band_mean": 40.0})
    assert list(fig.data[3].y) == [90.0] and list(fig.data[4].y) == [40.0]
    titles = [fig.layout[a].title.text for a in ("yaxis", "yaxis2", "yaxis3", "xaxis")]
    assert all(titles) and "meV" in titles[2]
