"""Per-block (orbital-by-orbital) MAE heatmaps, the view of the paper's Figs 4-5.

:func:`block_heatmap` is a pure figure function; :class:`BlockErrorDashboard` adds selectors
(run, setup, a second setup to compare, sample, edge type, twisted or not, element pair),
shows the two setups side by side plus their difference map, and lists the worst samples of
an orbital element when a heatmap cell is clicked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from ase.data import chemical_symbols

from tgkit.errors import TgkitError
from tgkit.viz.records import EDGE_TYPES, ErrorTable, Pair

NONE = "(none)"
ALL = "(all)"


def block_heatmap(
    mae: np.ndarray | None, labels_i: Sequence[str], labels_j: Sequence[str], title: str = "",
    diverging: bool = False, zmax: float | None = None, elements: tuple[str, str] = ("", ""),
) -> go.Figure:
    """Heatmap of an (n_i, n_j) MAE matrix in eV, shown in meV (rows: orbitals of atom i).

    ``diverging`` uses a red-blue scale centred on 0 (difference maps); ``elements`` names
    the two atoms' species in the axis titles.
    """
    fig = go.Figure()
    z = None if mae is None else np.asarray(mae) * 1e3
    kw = dict(colorscale="RdBu_r", zmid=0.0) if diverging else dict(colorscale="Viridis", zmin=0)
    if zmax is not None and not diverging:
        kw["zmax"] = zmax
    fig.add_trace(go.Heatmap(z=z, x=list(labels_j), y=list(labels_i),
                             colorbar=dict(title="meV"), hovertemplate="%{y} / %{x}: "
                             "%{z:.3f} meV<extra></extra>", **kw))
    fig.update_yaxes(autorange="reversed", title=f"orbital of atom i {elements[0]}".strip())
    fig.update_xaxes(title=f"orbital of atom j {elements[1]}".strip())
    fig.update_layout(title=title if mae is not None else f"{title} (no blocks)", height=420,
                      width=480, margin=dict(l=80, r=10, t=40, b=70))
    return fig


def pair_label(pair: Pair) -> str:
    return f"{chemical_symbols[pair[0]]}-{chemical_symbols[pair[1]]}"


class BlockErrorDashboard:
    """Selectors plus heatmaps of setup A, setup B and A - B, and a worst-samples list.

    Args:
        tables: ``{(run, setup): ErrorTable}``, e.g. from :func:`tgkit.viz.records.error_table`.
    """

    def __init__(self, tables: Mapping[tuple[str, str], ErrorTable]) -> None:
        import ipywidgets as w

        if not tables:
            raise TgkitError("BlockErrorDashboard needs at least one error table")
        self.tables = dict(tables)
        runs = sorted({r for r, _ in self.tables})
        self.run = w.Dropdown(options=runs, value=runs[0], description="run")
        self.setup = w.Dropdown(description="setup")
        self.compare = w.Dropdown(description="compare")
        self.sample = w.Dropdown(description="sample")
        self.edge = w.Dropdown(options=[ALL, *EDGE_TYPES], value=ALL, description="edges")
        self.twisted = w.ToggleButtons(options=["all", "non-twisted", "twisted"], value="all",
                                       description="structures")
        self.pair = w.Dropdown(description="elements")
        self.fig_a = go.FigureWidget(block_heatmap(None, [], []))
        self.fig_b = go.FigureWidget(block_heatmap(None, [], []))
        self.fig_diff = go.FigureWidget(block_heatmap(None, [], [], diverging=True))
        self.worst = w.HTML("click a cell of the left heatmap to list its worst samples")
        self.selected_cell: tuple[int, int] | None = None
        self.fig_a.data[0].on_click(self._on_click)
        self.widget = w.VBox([
            w.HBox([self.run, self.setup, self.compare]),
            w.HBox([self.sample, self.edge, self.pair]), self.twisted,
            w.HBox([self.fig_a, self.fig_b]), w.HBox([self.fig_diff, self.worst]),
        ])
        self._busy = False
        self.run.observe(self._on_run, names="value")
        for ctl in (self.setup, self.compare, self.sample, self.edge, self.twisted, self.pair):
            ctl.observe(lambda _c: self.refresh(), names="value")
        self._on_run()

    # ---------------------------------------------------------------- state
    @property
    def table_a(self) -> ErrorTable:
        return self.tables[(self.run.value, self.setup.value)]

    @property
    def table_b(self) -> ErrorTable | None:
        key = (self.run.value, self.compare.value)
        return self.tables.get(key) if self.compare.value != NONE else None

    def filters(self) -> dict:
        """Keyword filters for :meth:`ErrorTable.mae_matrix` from the selectors."""
        tw = {"all": None, "non-twisted": False, "twisted": True}[self.twisted.value]
        return dict(structures=None if self.sample.value == ALL else [self.sample.value],
                    edge_types=EDGE_TYPES if self.edge.value == ALL else (self.edge.value,),
                    twisted=tw)

    def _on_run(self, _change=None) -> None:
        self._busy = True  # one refresh after all dependent options are set
        setups = sorted(s for r, s in self.tables if r == self.run.value)
        self.setup.options = setups
        self.setup.value = setups[0]
        self.compare.options = [NONE, *setups]
        self.compare.value = setups[1] if len(setups) > 1 else NONE
        t = self.table_a
        self.sample.options = [ALL, *t.structures]
        self.sample.value = ALL
        self.pair.options = [(pair_label(p), p) for p in t.pairs]
        self.pair.value = t.pairs[0]
        self._busy = False
        self.refresh()

    def refresh(self) -> None:
        """Redraw the heatmaps for the current selection."""
        if self._busy or self.pair.value is None:
            return
        if self.compare.value == self.setup.value:  # A - A is a blank map: compare another
            other = [s for s in self.compare.options if s not in (NONE, self.setup.value)]
            if other:
                self.compare.value = other[0]  # its observer refreshes
                return
        pair, f = self.pair.value, self.filters()
        t = self.table_a
        li, lj = t.labels[pair[0]], t.labels[pair[1]]
        a = t.mae_matrix(pair, **f)
        b = self.table_b.mae_matrix(pair, **f) if self.table_b is not None else None
        zmax = max((float(np.max(m)) * 1e3 for m in (a, b) if m is not None), default=None)
        name = pair_label(pair)
        si, sj = (chemical_symbols[z] for z in pair)
        self._replace(self.fig_a, block_heatmap(a, li, lj, f"{self.setup.value}: {name}",
                                                zmax=zmax, elements=(si, sj)))
        self._replace(self.fig_b, block_heatmap(b, li, lj, f"{self.compare.value}: {name}",
                                                zmax=zmax, elements=(si, sj)))
        diff = None if a is None or b is None else a - b
        self._replace(self.fig_diff, block_heatmap(
            diff, li, lj, f"{self.setup.value} - {self.compare.value}", diverging=True,
            elements=(si, sj)))
        if self.selected_cell is not None:
            self.select_cell(*self.selected_cell)

    @staticmethod
    def _replace(widget: go.FigureWidget, fig: go.Figure) -> None:
        # assign fields (not replace the trace) so the click handler on fig_a stays attached;
        # z=None must be set explicitly (to_plotly_json drops None values)
        src = fig.data[0]
        with widget.batch_update():
            for name in ("z", "x", "y", "zmin", "zmax", "zmid", "colorscale"):
                setattr(widget.data[0], name, getattr(src, name))
            widget.layout.title = fig.layout.title
            widget.layout.xaxis.title, widget.layout.yaxis.title = (fig.layout.xaxis.title,
                                                                    fig.layout.yaxis.title)

    # ---------------------------------------------------------------- clicks
    def _on_click(self, _trace, points, _state) -> None:
        if points.point_inds:
            ind = points.point_inds[0]
            row, col = (ind if isinstance(ind, (list, tuple)) else (points.ys[0], points.xs[0]))
            self.select_cell(int(row), int(col))

    def worst_samples(self, row: int, col: int, top: int = 5) -> list[tuple[str, float]]:
        """Worst structures (name, MAE in eV) of orbital element (row, col) for setup A."""
        f = self.filters()
        f.pop("structures")  # ranking across samples, whatever sample is shown
        return self.table_a.worst_structures(self.pair.value, row, col, top=top, **f)

    def select_cell(self, row: int, col: int) -> list[tuple[str, float]]:
        """Show (and return) the worst samples of a heatmap cell."""
        self.selected_cell = (row, col)
        t, pair = self.table_a, self.pair.value
        li, lj = t.labels[pair[0]], t.labels[pair[1]]
        if row >= len(li) or col >= len(lj):
            self.worst.value = ""
            return []
        worst = self.worst_samples(row, col)
        items = "".join(f"<li>{n}: {v * 1e3:.3f} meV</li>" for n, v in worst)
        self.worst.value = (f"<b>worst samples for {pair_label(pair)} {li[row]} / {lj[col]}"
                            f" ({self.setup.value})</b><ol>{items}</ol>")
        return worst

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
