"""Predicted against DFT band structures (:func:`tgkit.physics.compare_bands`) in plotly.

:func:`bands_figure` draws a :class:`tgkit.physics.BandComparison`; :class:`BandsDashboard`
selects the structure, the model (shipped names and run directories, predicted on demand) and
the energy window, and recomputes. DFT reference bands are solved once per structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from tgkit.data.deeph import Key, Structure
from tgkit.physics import BandComparison
from tgkit.physics.bands import BandReference

Blocks = dict[Key, np.ndarray]


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
        title=f"{result.name}: max |dE| in E_F ± {result.window:g} eV = "
              f"{result.max_error * 1e3:.1f} meV (mean {result.mean_error * 1e3:.1f} meV)",
        xaxis=dict(tickvals=list(result.path.special_x), ticktext=result.path.labels,
                   title="wave vector along the path (high-symmetry points)"),
        yaxis=dict(title="E - E_F (eV)", range=[-3 * w, 3 * w]), height=480, width=900,
        margin=dict(l=60, r=10, t=50, b=50))
    return fig


def dos_figure(structure: Structure, predicted: Blocks, energies: np.ndarray | None = None,
               kmesh: tuple[int, int, int] = (8, 8, 1), smearing: float = 0.05,
               label: str = "predicted") -> go.Figure:
    """Density of states (sisl, :func:`tgkit.physics.sisl_dos`) of the DFT and the predicted
    Hamiltonian on the DFT overlaps, per cell, against E - E_F."""
    from tgkit.physics import sisl_dos

    ef = float(structure.fermi_level or 0.0)
    e = np.linspace(-3.0, 3.0, 301) if energies is None else np.asarray(energies, float)
    fig = go.Figure()
    for blocks, name, style in ((None, "DFT", dict(color="black")),
                                (predicted, label, dict(color="red", dash="dash"))):
        d = sisl_dos(structure, blocks, e + ef, kmesh=kmesh, smearing=smearing)
        fig.add_trace(go.Scatter(x=e, y=d, mode="lines", line=style, name=name))
    fig.add_vline(x=0.0, line=dict(color="gray", width=1, dash="dot"))
    fig.update_layout(
        title=f"{structure.name}: density of states ({kmesh[0]}x{kmesh[1]}x{kmesh[2]} k mesh, "
              f"Gaussian {smearing * 1e3:.0f} meV, sisl)",
        xaxis=dict(title="E - E_F (eV)"), yaxis=dict(title="DOS (states / eV per cell)"),
        height=380, width=900, margin=dict(l=60, r=10, t=50, b=50))
    return fig


class BandsDashboard:
    """Structure, model and window selectors over :meth:`BandReference.compare`.

    Args:
        structures: DFT structures (with overlaps and a Fermi level).
        predictions: ``{model label: {structure name: blocks}}`` computed beforehand, or
        predict: ``(model label, structure) -> blocks``, called on demand (cached), with
        models: the model labels offered (with ``predict``).
        default_model: ``structure -> model label`` chosen when the structure changes
            (e.g. the bilayer model for twisted structures).
        npoints: k points along the path.

    Attributes:
        result: the current :class:`BandComparison`; ``errors``
            ``{(structure, model): (max, mean) meV}`` of every comparison made so far.
    """

    def __init__(self, structures: Sequence[Structure],
                 predictions: Mapping[str, Mapping[str, Blocks]] | None = None,
                 npoints: int = 40, predict: Callable[[str, Structure], Blocks] | None = None,
                 models: Sequence[str] | None = None,
                 default_model: Callable[[Structure], str] | None = None) -> None:
        import ipywidgets as w

        self.structures = {s.name: s for s in structures}
        self._cache: dict[tuple[str, str], Blocks] = {
            (label, name): blocks for label, per in (predictions or {}).items()
            for name, blocks in per.items()}
        self._predict = predict
        labels = list(models or []) + [m for m in (predictions or {}) if m not in (models or [])]
        self.npoints = npoints
        self.default_model = default_model
        self._refs: dict[str, BandReference] = {}
        self.errors: dict[tuple[str, str], tuple[float, float]] = {}
        first = next(iter(self.structures.values()))
        self.structure = w.Dropdown(options=list(self.structures), description="structure",
                                    layout=w.Layout(width="340px"))
        self.source = w.Dropdown(options=labels, description="model",
                                 layout=w.Layout(width="420px"),
                                 value=self._default(first, labels))
        self.window = w.FloatSlider(value=2.0, min=0.5, max=10.0, step=0.5, description="window",
                                    continuous_update=False)
        self.status = w.HTML()
        self.summary = w.HTML()
        self.table = w.HTML()
        self.figure = go.FigureWidget()
        self.result: BandComparison | None = None
        self.widget = w.VBox([w.HBox([self.structure, self.source]), self.window, self.status,
                              self.summary, self.figure, self.table])
        self._busy = False
        self.structure.observe(self._on_structure, names="value")
        for ctl in (self.source, self.window):
            ctl.observe(lambda _c: self.update(), names="value")
        self.update()

    def _default(self, st: Structure, labels: Sequence[str]) -> str:
        if self.default_model is not None:
            label = self.default_model(st)
            if label in labels:
                return label
        return labels[0]

    def _on_structure(self, _change=None) -> None:
        self._busy = True  # one update after the model follows the structure
        self.source.value = self._default(self.structures[self.structure.value],
                                          list(self.source.options))
        self._busy = False
        self.update()

    def prediction(self, label: str, st: Structure) -> Blocks:
        """The blocks of ``st`` predicted by model ``label`` (cached)."""
        key = (label, st.name)
        if key not in self._cache:
            if self._predict is None:
                raise KeyError(f"no prediction of {st.name} by {label}")
            self._cache[key] = self._predict(label, st)
        return self._cache[key]

    def reference(self, st: Structure) -> BandReference:
        """DFT bands of ``st`` along its path (solved once)."""
        if st.name not in self._refs:
            self._refs[st.name] = BandReference(st, npoints=self.npoints)
        return self._refs[st.name]

    def update(self) -> None:
        """Recompute the comparison and redraw (the status line says what is computed)."""
        if self._busy:
            return
        st = self.structures[self.structure.value]
        label = self.source.value
        self.status.value = (f"<i>&#8987; computing the bands of {st.name} ({st.num_atoms} atoms)"
                             f" with {label} ...</i>")
        self.result = self.reference(st).compare(self.prediction(label, st), self.window.value)
        fig = bands_figure(self.result)
        fig.layout.title.text = f"{label} — {fig.layout.title.text}"
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fig.data))
            self.figure.layout = fig.layout
        s = self.result.summary()
        self.errors[(st.name, label)] = (s["max_error_meV"], s["mean_error_meV"])
        self.status.value = ""
        self.summary.value = (f"<b>band error</b> of {label} on {st.name}: max "
                              f"{s['max_error_meV']:.1f} meV, mean {s['mean_error_meV']:.1f} meV "
                              f"over {s['num_in_window']} (k, band) values within E_F ± "
                              f"{self.window.value:g} eV")
        rows = "".join(f"<tr><td>{n}</td><td>{m}</td><td>{a:.1f}</td><td>{b:.1f}</td></tr>"
                       for (n, m), (a, b) in self.errors.items())
        self.table.value = ("<table><tr><th>structure</th><th>model</th><th>max (meV)</th>"
                            f"<th>mean (meV)</th></tr>{rows}</table>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
