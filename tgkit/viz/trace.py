"""Trace-label views: T = ||H_b||_F^2 per shell-pair block type (paper Theorem 1).

Pure figure functions over the ``trace`` arrays of an :class:`tgkit.viz.records.ErrorTable`
(histogram per block type, predicted vs true T, T vs bond length), and
:class:`TraceDashboard` with a block-type selector, an edge-type filter and log-scale toggles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from tgkit.viz.records import EDGE_TYPES, ErrorTable

ALL = "(all)"


def _mask(trace: Mapping[str, np.ndarray], blocks: Sequence[str] | None,
          edge_types: Sequence[str]) -> np.ndarray:
    m = np.isin(trace["edge_type"], list(edge_types))
    if blocks is not None:
        m &= np.isin(trace["block"], list(blocks))
    return m


def _log_values(t: np.ndarray, log: bool) -> np.ndarray:
    # T is a sum of squares: log10 of it, with exact zeros (absent couplings) floored
    return np.log10(np.maximum(t, 1e-12)) if log else t


def trace_histogram(trace: Mapping[str, np.ndarray], blocks: Sequence[str],
                    edge_types: Sequence[str] = EDGE_TYPES, log: bool = True) -> go.Figure:
    """Overlaid histograms of the true T for each block type in ``blocks``."""
    fig = go.Figure()
    for b in blocks:
        m = _mask(trace, [b], edge_types)
        fig.add_trace(go.Histogram(x=_log_values(trace["t_true"][m], log), name=b, opacity=0.6))
    fig.update_layout(barmode="overlay", height=350, width=1000,
                      title="T = ||H_b||_F^2 per block type",
                      xaxis_title="log10 T (eV^2)" if log else "T (eV^2)", yaxis_title="blocks")
    return fig


def trace_parity(trace: Mapping[str, np.ndarray], blocks: Sequence[str] | None = None,
                 edge_types: Sequence[str] = EDGE_TYPES, log: bool = True) -> go.Figure:
    """Predicted T against true T, one colour per block type, with the y = x line."""
    m = _mask(trace, blocks, edge_types)
    fig = go.Figure()
    for b in np.unique(trace["block"][m]):
        sel = m & (trace["block"] == b)
        fig.add_trace(go.Scattergl(x=trace["t_true"][sel], y=trace["t_pred"][sel],
                                   mode="markers", name=str(b), marker=dict(size=4)))
    both = np.concatenate([trace["t_true"][m], trace["t_pred"][m]]) if m.any() else np.ones(1)
    lo = max(float(both[both > 0].min()) if (both > 0).any() else 1e-6, 1e-12)
    hi = float(both.max()) if both.max() > 0 else 1.0
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                             line=dict(color="black", dash="dash")))
    kind = "log" if log else "linear"
    fig.update_layout(height=400, width=500, title="predicted vs true T",
                      xaxis_title="T true (eV^2)",
                      yaxis_title="T predicted (eV^2)", xaxis_type=kind, yaxis_type=kind)
    return fig


def trace_vs_distance(trace: Mapping[str, np.ndarray], blocks: Sequence[str] | None = None,
                      edge_types: Sequence[str] = EDGE_TYPES, log: bool = True) -> go.Figure:
    """True T against bond length, one colour per block type (on-site blocks at r = 0)."""
    m = _mask(trace, blocks, edge_types)
    fig = go.Figure()
    for b in np.unique(trace["block"][m]):
        sel = m & (trace["block"] == b)
        fig.add_trace(go.Scattergl(x=trace["dist"][sel], y=trace["t_true"][sel],
                                   mode="markers", name=str(b), marker=dict(size=4)))
    fig.update_layout(height=400, width=500, title="T vs bond length",
                      xaxis_title="|r_ij| (Angstrom)",
                      yaxis_title="T (eV^2)", yaxis_type="log" if log else "linear")
    return fig


class TraceDashboard:
    """Block-type and edge-type selectors, a log toggle and the three trace figures.

    Args:
        tables: ``{label: ErrorTable}`` (e.g. one per setup); T_true is the same for all,
            T_pred differs.
    """

    def __init__(self, tables: Mapping[str, ErrorTable], max_types: int = 6) -> None:
        import ipywidgets as w

        self.tables = dict(tables)
        labels = list(self.tables)
        self.source = w.Dropdown(options=labels, value=labels[0], description="prediction")
        types = sorted(np.unique(self.trace["block"]).tolist())
        self.blocks = w.SelectMultiple(options=types, value=tuple(types[:max_types]),
                                       description="block types", rows=8)
        self.edge = w.Dropdown(options=[ALL, *EDGE_TYPES], value=ALL, description="edges")
        self.log = w.Checkbox(value=True, description="log scale")
        self.hist = go.FigureWidget()
        self.parity = go.FigureWidget()
        self.distance = go.FigureWidget()
        self.widget = w.VBox([w.HBox([self.source, self.edge, self.log]), self.blocks,
                              self.hist, w.HBox([self.parity, self.distance])])
        for ctl in (self.source, self.blocks, self.edge, self.log):
            ctl.observe(lambda _c: self.refresh(), names="value")
        self.refresh()

    @property
    def trace(self) -> dict[str, np.ndarray]:
        return self.tables[self.source.value].trace

    def refresh(self) -> None:
        """Redraw the three figures for the current selection."""
        blocks = list(self.blocks.value)
        edges = EDGE_TYPES if self.edge.value == ALL else (self.edge.value,)
        log = self.log.value
        for widget, fig in ((self.hist, trace_histogram(self.trace, blocks, edges, log)),
                            (self.parity, trace_parity(self.trace, blocks, edges, log)),
                            (self.distance, trace_vs_distance(self.trace, blocks, edges, log))):
            with widget.batch_update():
                widget.data = ()
                widget.add_traces(list(fig.data))
                widget.layout = fig.layout

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
