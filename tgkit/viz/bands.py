"""Predicted against DFT band structures (:func:`tgkit.physics.compare_bands`) in plotly.

:func:`bands_figure` draws a :class:`tgkit.physics.BandComparison`; :class:`BandsDashboard`
selects the structure, the prediction (setup) and the energy window and recomputes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from tgkit.data.deeph import Key, Structure
from tgkit.physics import BandComparison, compare_bands


def bands_figure(result: BandComparison, window: float | None = None) -> go.Figure:
    """DFT bands (black) and predicted bands (red dashed), E - E_F, special k points marked."""
    x = result.path.x
    w = result.window if window is None else window
    fig = go.Figure()
    for e, name, style in ((result.e_ref, "DFT", dict(color="black")),
                           (result.e_pred, "predicted", dict(color="red", dash="dash"))):
        for n in range(e.shape[1]):
            fig.add_trace(go.Scatter(x=x, y=e[:, n] - result.fermi_level, mode="lines",
                                     line=style, name=name, legendgroup=name,
                                     showlegend=n == 0))
    for sx in result.path.special_x:
        fig.add_vline(x=float(sx), line=dict(color="gray", width=1))
    fig.add_hrect(y0=-w, y1=w, fillcolor="gold", opacity=0.12, line_width=0)
    fig.update_layout(
        title=f"{result.name}: max |dE| in E_F +- {result.window:g} eV = "
              f"{result.max_error * 1e3:.1f} meV (mean {result.mean_error * 1e3:.1f} meV)",
        xaxis=dict(tickvals=list(result.path.special_x), ticktext=result.path.labels),
        yaxis=dict(title="E - E_F (eV)", range=[-3 * w, 3 * w]), height=450)
    return fig


class BandsDashboard:
    """Structure, prediction and window selectors over :func:`compare_bands`.

    Args:
        structures: DFT structures (with overlaps and a Fermi level).
        predictions: ``{label: {structure name: blocks}}``.
        npoints: k points along the path.
    """

    def __init__(self, structures: Sequence[Structure],
                 predictions: Mapping[str, Mapping[str, dict[Key, np.ndarray]]],
                 npoints: int = 40) -> None:
        import ipywidgets as w

        self.structures = {s.name: s for s in structures}
        self.predictions = dict(predictions)
        self.npoints = npoints
        self.structure = w.Dropdown(options=list(self.structures), description="structure")
        self.source = w.Dropdown(options=list(self.predictions), description="prediction")
        self.window = w.FloatSlider(value=2.0, min=0.5, max=10.0, step=0.5, description="window",
                                    continuous_update=False)
        self.summary = w.HTML()
        self.figure = go.FigureWidget()
        self.result: BandComparison | None = None
        self.widget = w.VBox([w.HBox([self.structure, self.source, self.window]), self.summary,
                              self.figure])
        for ctl in (self.structure, self.source, self.window):
            ctl.observe(lambda _c: self.update(), names="value")
        self.update()

    def update(self) -> None:
        """Recompute the comparison and redraw."""
        st = self.structures[self.structure.value]
        pred = self.predictions[self.source.value][st.name]
        self.result = compare_bands(st, pred, npoints=self.npoints, window=self.window.value)
        fig = bands_figure(self.result)
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout
        s = self.result.summary()
        self.summary.value = (f"max error {s['max_error_meV']:.1f} meV, mean "
                              f"{s['mean_error_meV']:.1f} meV over {s['num_in_window']} (k, band) "
                              f"values within E_F +- {self.window.value:g} eV")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
