"""Live rotation-equivariance check: Euler-angle sliders, re-prediction, per-block errors.

For a rotation R the dashboard predicts H(x) and H(R x) and shows, for every block type, the
max |H(R x) - D(R) H(x) D(R)^T| (:func:`tgkit.physics.check_equivariance`), and for one
chosen edge the orbital-by-orbital error as a heatmap. A deliberately non-equivariant
variant of the model (:func:`non_equivariant_variant`: a plain ``tanh`` applied to each
component of the l >= 1 node features) shows what a broken model looks like: its errors
are O(1) while the real model's are at round-off level.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import plotly.graph_objects as go
import torch
from scipy.spatial.transform import Rotation

from tgkit.data.deeph import Key, Structure
from tgkit.physics.equivariance import block_type_errors, rotate, rotate_blocks
from tgkit.viz.records import _symbols

Predictor = Callable[[Structure], dict[Key, np.ndarray]]


def euler_rotation(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """(3, 3) rotation from z-y-z Euler angles in degrees (intrinsic)."""
    return Rotation.from_euler("ZYZ", [alpha, beta, gamma], degrees=True).as_matrix()


def non_equivariant_variant(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of a :class:`tgkit.nn.HamiltonianModel` whose node blocks apply ``tanh`` to
    every component of their l >= 1 outputs (a plain activation, which breaks rotation
    equivariance: tanh does not commute with D(R)). Weights are shared values, not retrained.
    """
    broken = copy.deepcopy(model)
    for block in broken.node_blocks:
        mask = torch.cat([torch.full((mul * ir.dim,), ir.l > 0) for mul, ir in block.irreps_out])

        def hook(_mod, _inp, out, mask=mask):
            return torch.where(mask.to(out.device), torch.tanh(out), out)

        # on the block's last step, the norm, which chunked inference calls too
        block.norm.register_forward_hook(hook)
    return broken


def error_figure(errors: dict, title: str = "") -> go.Figure:
    """Bar chart of max |H(Rx) - D H D^T| (eV) per block type, log scale."""
    labels = [f"{a}-{b} {i}/{j}" for a, b, i, j in errors]
    vals = [max(v, 1e-18) for v in errors.values()]
    fig = go.Figure(go.Bar(x=labels, y=vals))
    fig.update_layout(title=title, yaxis_type="log", yaxis_title="max error (eV)", height=330,
                      margin=dict(l=50, r=10, t=40, b=90))
    return fig


def edge_error_figure(diff: np.ndarray, title: str = "") -> go.Figure:
    """Heatmap of |H(Rx) - D H(x) D^T| (eV) of one edge's block."""
    fig = go.Figure(go.Heatmap(z=np.abs(diff), colorscale="Viridis", colorbar=dict(title="eV")))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=360, width=420, margin=dict(l=40, r=10, t=40, b=40))
    return fig


class EquivarianceDashboard:
    """Euler-angle sliders, a model/variant toggle, per-block-type errors and an edge heatmap.

    Args:
        structure: the geometry x (its blocks are not used).
        predictors: ``{label: Structure -> blocks}``, e.g. the model and its
            :func:`non_equivariant_variant` wrapped by :func:`tgkit.viz.demo.predictor`.
    """

    def __init__(self, structure: Structure, predictors: dict[str, Predictor]) -> None:
        import ipywidgets as w

        # both predictions must use the same (cutoff) edges, so start without blocks
        self.structure = rotate(structure, np.eye(3), with_blocks=False)
        self.structure.hamiltonians = {}
        self.predictors = dict(predictors)
        slider = dict(min=0.0, max=360.0, step=5.0, continuous_update=False)
        self.alpha = w.FloatSlider(value=30.0, description="alpha", **slider)
        self.beta = w.FloatSlider(value=45.0, description="beta", **{**slider, "max": 180.0})
        self.gamma = w.FloatSlider(value=60.0, description="gamma", **slider)
        self.model = w.ToggleButtons(options=list(self.predictors), description="model")
        self.edge = w.Dropdown(description="edge")
        self.summary = w.HTML()
        self.bars = go.FigureWidget(error_figure({}))
        self.heat = go.FigureWidget(edge_error_figure(np.zeros((1, 1))))
        self.max_error = float("nan")
        self.errors: dict = {}
        self._diff: dict[Key, np.ndarray] = {}
        self.widget = w.VBox([w.HBox([self.alpha, self.beta, self.gamma]), self.model,
                              self.summary, self.bars, w.HBox([self.edge, self.heat])])
        for ctl in (self.alpha, self.beta, self.gamma, self.model):
            ctl.observe(lambda _c: self.update(), names="value")
        self.edge.observe(lambda _c: self._draw_edge(), names="value")
        self.update()

    @property
    def rotation(self) -> np.ndarray:
        return euler_rotation(self.alpha.value, self.beta.value, self.gamma.value)

    def update(self) -> None:
        """Re-predict for the current rotation and model, and redraw."""
        fn, rot, st = self.predictors[self.model.value], self.rotation, self.structure
        h = fn(st)
        h_rot = fn(rotate(st, rot, with_blocks=False))
        ref = rotate_blocks(st, h, rot)
        keys = sorted(set(h_rot) & set(ref))
        self._diff = {k: np.asarray(h_rot[k]) - np.asarray(ref[k]) for k in keys}
        self.errors = block_type_errors(st, h_rot, ref)
        self.max_error = max(self.errors.values())
        sym = _symbols(st.numbers)
        worst = sorted(keys, key=lambda k: -np.abs(self._diff[k]).max())[:50]
        opts = [(f"{sym[k[3]]}{k[3]}-{sym[k[4]]}{k[4]} R={k[:3]}", k) for k in worst]
        old = self.edge.value
        self.edge.options = opts
        self.edge.value = old if old in dict(opts).values() else opts[0][1]
        self.summary.value = (f"<b>{self.model.value}</b>: max |H(Rx) - D H(x) D<sup>T</sup>| = "
                              f"{self.max_error:.3e} eV over {len(keys)} blocks")
        fig = error_figure(self.errors, "max error per block type (Z_i-Z_j shell_i/shell_j)")
        with self.bars.batch_update():
            self.bars.data[0].x, self.bars.data[0].y = fig.data[0].x, fig.data[0].y
        self._draw_edge()

    def _draw_edge(self) -> None:
        key = self.edge.value
        if key is None or key not in self._diff:
            return
        d = np.abs(self._diff[key])
        with self.heat.batch_update():
            self.heat.data[0].z = d
            self.heat.layout.title = f"edge {key}: max {d.max():.2e} eV"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
