"""Live rotation-equivariance check: rotate the structure in 3D, re-predict, compare.

For a rotation R the dashboard predicts H(x) and H(R x) and shows, for every block type
(shell pair, e.g. "C 2s - C 1d"), the max |H(R x) - D(R) H(x) D(R)^T|
(:func:`tgkit.physics.block_type_errors`), the atoms of a 3D view coloured by their error on a
fixed log scale with a colour bar, and for one chosen edge the orbital-by-orbital error.

The rotation comes from Euler-angle sliders or from the 3D view itself: dragging the nglview
canvas changes the view's camera orientation, which the frontend syncs back
(``_camera_orientation``); the dashboard takes the rotation relative to the first camera it
saw, sets the sliders to its Euler angles and re-predicts. Moving a slider turns the camera.

A deliberately non-equivariant variant of the model (:func:`non_equivariant_variant`: a
plain ``tanh`` applied to each component of the l >= 1 node features) lights up: its errors
are O(1e-3..1) eV while the real model's are at round-off level.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from scipy.spatial.transform import Rotation

from tgkit.data.deeph import Key, Structure
from tgkit.physics.equivariance import block_type_errors, rotate, rotate_blocks
from tgkit.viz.records import _symbols
from tgkit.viz.structure import colorbar_html, value_colors

Predictor = Callable[[Structure], dict[Key, np.ndarray]]
LOG_RANGE = (-14.0, 0.0)  # log10 eV: round-off (float64) .. 1 eV, fixed so a broken model shows
COLOR_LABEL = "log10 max |H(Rx) - D H(x) D<sup>T</sup>| per atom (eV)"
SPD = "spdfgh"


def euler_rotation(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """(3, 3) rotation from z-y-z Euler angles in degrees (intrinsic)."""
    return Rotation.from_euler("ZYZ", [alpha, beta, gamma], degrees=True).as_matrix()


def euler_angles(rot: np.ndarray) -> tuple[float, float, float]:
    """z-y-z Euler angles (degrees; alpha, gamma in [0, 360), beta in [0, 180]) of ``rot``."""
    import warnings

    with warnings.catch_warnings():  # gimbal lock (beta = 0): any split of alpha + gamma
        warnings.simplefilter("ignore")
        a, b, g = Rotation.from_matrix(rot).as_euler("ZYZ", degrees=True)
    return float(a % 360.0), float(b), float(g % 360.0)


def shell_names(orbital_types: Sequence[int]) -> list[str]:
    """Spectroscopic shell names in file order: ``[0, 0, 1, 1, 2] -> 1s 2s 1p 2p 1d``."""
    seen: dict[int, int] = {}
    out = []
    for l in orbital_types:
        seen[l] = seen.get(l, 0) + 1
        out.append(f"{seen[l]}{SPD[l]}")
    return out


def block_type_label(structure: Structure, bt) -> str:
    """``"C 2s - C 1d"`` for a :class:`tgkit.physics.equivariance.BlockType`."""
    from ase.data import chemical_symbols

    def shells(z: int) -> list[str]:
        k = structure.numbers.tolist().index(z)
        return shell_names(structure.orbital_types[k])

    zi, zj, si, sj = bt
    return (f"{chemical_symbols[zi]} {shells(zi)[si]} - "
            f"{chemical_symbols[zj]} {shells(zj)[sj]}")


def edge_label(structure: Structure, key: Key) -> str:
    """``"C0 - C3, R = (0, 1, 0), 1.42 Å"`` for a block key."""
    sym = _symbols(structure.numbers)
    i, j = key[3], key[4]
    d = float(np.linalg.norm(structure.edge_vectors([key])[0]))
    return f"{sym[i]}{i} - {sym[j]}{j}, R = ({key[0]}, {key[1]}, {key[2]}), {d:.2f} Å"


def per_atom_errors(diff: dict[Key, np.ndarray], num_atoms: int) -> np.ndarray:
    """(N,) max |dH| (eV) over the blocks that touch each atom (as row or column)."""
    out = np.zeros(num_atoms)
    for k, d in diff.items():
        m = float(np.abs(d).max())
        out[k[3]] = max(out[k[3]], m)
        out[k[4]] = max(out[k[4]], m)
    return out


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


def error_figure(errors: dict[str, float], title: str = "") -> go.Figure:
    """Bar chart of max |H(Rx) - D H D^T| (eV) per block type (labels -> values), log scale."""
    vals = [max(v, 1e-18) for v in errors.values()]
    fig = go.Figure(go.Bar(x=list(errors), y=vals))
    fig.update_layout(title=title, yaxis_type="log", height=340, width=1000,
                      xaxis_title="block type (shell pair)",
                      yaxis_title="max |H(Rx) - D H D<sup>T</sup>| (eV)",
                      margin=dict(l=70, r=10, t=40, b=110))
    return fig


def edge_error_figure(diff: np.ndarray, labels_i: Sequence[str] | None = None,
                      labels_j: Sequence[str] | None = None, title: str = "") -> go.Figure:
    """Heatmap of |H(Rx) - D H(x) D^T| (eV) of one edge's block, axes named by orbital."""
    d = np.abs(np.asarray(diff))
    li = list(labels_i) if labels_i is not None else list(range(d.shape[0]))
    lj = list(labels_j) if labels_j is not None else list(range(d.shape[1]))
    fig = go.Figure(go.Heatmap(z=d, x=lj, y=li, colorscale="Viridis",
                               colorbar=dict(title="eV"),
                               hovertemplate="%{y} / %{x}: %{z:.2e} eV<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="orbital of atom i")
    fig.update_xaxes(title="orbital of atom j")
    fig.update_layout(title=title, height=440, width=560, margin=dict(l=80, r=10, t=40, b=70))
    return fig


def _camera_matrix(elements: Sequence[float]) -> np.ndarray:
    # NGL (three.js) matrices are column-major: elements[0:4] is the first column
    return np.asarray(elements, dtype=float).reshape(4, 4).T


class EquivarianceDashboard:
    """A 3D view to rotate, Euler-angle sliders kept in sync with it, a model/variant toggle,
    per-block-type errors, per-atom error colours and an edge heatmap.

    Args:
        structure: the geometry x (its blocks are not used).
        predictors: ``{label: Structure -> blocks}``, e.g. the model and its
            :func:`non_equivariant_variant` wrapped by :func:`tgkit.viz.demo.predictor`.
        backend: ``nglview`` (drag to rotate) or ``plotly`` (sliders only).
        angles: initial Euler angles (degrees).

    Attributes:
        max_error: max |H(Rx) - D H(x) D^T| (eV) of the current state; ``errors``
            ``{block label: max error}``; ``atom_errors`` (N,) eV; ``updates`` count.
    """

    def __init__(self, structure: Structure, predictors: dict[str, Predictor],
                 backend: str = "nglview", angles: tuple[float, float, float] = (30, 45, 60),
                 ) -> None:
        import ipywidgets as w

        from tgkit.viz.demo import structure_atoms

        # both predictions must use the same (cutoff) edges, so start without blocks
        self.structure = rotate(structure, np.eye(3), with_blocks=False)
        self.structure.hamiltonians = {}
        self.atoms = structure_atoms(self.structure)
        self.predictors = dict(predictors)
        self.backend = backend
        slider = dict(min=0.0, max=360.0, step=1.0, continuous_update=False,
                      readout_format=".0f")
        self.alpha = w.FloatSlider(value=angles[0], description="alpha", **slider)
        self.beta = w.FloatSlider(value=angles[1], description="beta",
                                  **{**slider, "max": 180.0})
        self.gamma = w.FloatSlider(value=angles[2], description="gamma", **slider)
        self.model = w.ToggleButtons(options=list(self.predictors), description="model")
        self.edge = w.Dropdown(description="edge", layout=w.Layout(width="420px"))
        self.summary = w.HTML()
        self.colorbar = w.HTML()
        self.bars = go.FigureWidget(error_figure({}))
        self.heat = go.FigureWidget(edge_error_figure(np.zeros((1, 1))))
        self.max_error = float("nan")
        self.errors: dict[str, float] = {}
        self.atom_errors = np.zeros(len(self.atoms))
        self.updates = 0
        self._rotation = euler_rotation(*angles)
        self._diff: dict[Key, np.ndarray] = {}
        self._bins: np.ndarray | None = None
        self._cam0: np.ndarray | None = None  # first camera matrix the view reported
        self._syncing = False
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self.view = self._make_view()
        side = w.VBox([self.alpha, self.beta, self.gamma, self.model, self.summary,
                       self.colorbar], layout=w.Layout(width="440px"))
        self.widget = w.VBox([
            w.HTML("<b>Drag the structure</b> (or move the sliders): the model re-predicts "
                   "H for the rotated structure."),
            w.HBox([self.view, side]), self.bars, w.HBox([self.edge, self.heat])])
        for ctl in (self.alpha, self.beta, self.gamma):
            ctl.observe(self._on_slider, names="value")
        self.model.observe(lambda _c: self.update(), names="value")
        self.edge.observe(lambda _c: self._draw_edge(), names="value")
        self.update()

    # ------------------------------------------------------------------ rotation sources
    @property
    def rotation(self) -> np.ndarray:
        """The (3, 3) rotation R applied to the structure."""
        return self._rotation

    def _make_view(self):
        import ipywidgets as w

        if self.backend == "nglview":
            try:
                from tgkit.viz.structure import nglview_view

                view = nglview_view(self.atoms, cell=False)
                view.layout.width = "560px"
                view.observe(self._on_camera_change, names="_camera_orientation")
                return view
            except ImportError:
                self.backend = "plotly"
        from tgkit.viz.structure import structure_figure

        return w.Output() if self.backend == "none" else go.FigureWidget(
            structure_figure(self.atoms, np.zeros(len(self.atoms)), value_label="log10 eV"))

    def _on_slider(self, _change=None) -> None:
        if self._syncing:
            return
        self._rotation = euler_rotation(self.alpha.value, self.beta.value, self.gamma.value)
        self.update()
        self._push_camera()

    def _push_camera(self) -> None:
        """Turn the 3D view to the current rotation (relative to its first orientation)."""
        if self._cam0 is None or self.backend != "nglview":
            return
        m = self._cam0.copy()
        scale = np.linalg.norm(m[:3, 0])
        m[:3, :3] = scale * (self._rotation @ (self._cam0[:3, :3] / scale))
        self.view._set_camera_orientation(m.T.ravel().tolist())

    def _on_camera_change(self, change) -> None:
        # the frontend sends the camera after every change (many per drag): debounce, then
        # re-predict once for the latest orientation
        elements = change["new"]
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(0.25, self.set_camera, args=(elements,))
        self._timer.daemon = True
        self._timer.start()

    def set_camera(self, elements: Sequence[float]) -> None:
        """Take the rotation from a camera matrix (16 numbers, column-major, as nglview
        syncs ``_camera_orientation``): relative to the first one seen, which is taken to
        show the structure rotated by the sliders' initial rotation."""
        if len(elements) != 16:
            return
        m = _camera_matrix(elements)
        rot = m[:3, :3] / np.linalg.norm(m[:3, 0])
        with self._lock:
            if self._cam0 is None:  # the view's home orientation: turn it to the sliders
                self._cam0 = m
                self._push_camera()
                return
            r0 = self._cam0[:3, :3] / np.linalg.norm(self._cam0[:3, 0])
            new = rot @ r0.T
            if np.allclose(new, self._rotation, atol=1e-6):
                return  # our own push, echoed back
            self._rotation = new
            self._syncing = True
            try:
                self.alpha.value, self.beta.value, self.gamma.value = euler_angles(new)
            finally:
                self._syncing = False
            self.update()

    # ------------------------------------------------------------------ prediction
    def update(self) -> None:
        """Re-predict for the current rotation and model, and redraw."""
        with self._lock:
            self._update()

    def _update(self) -> None:
        fn, rot, st = self.predictors[self.model.value], self.rotation, self.structure
        h = fn(st)
        h_rot = fn(rotate(st, rot, with_blocks=False))
        ref = rotate_blocks(st, h, rot)
        keys = sorted(set(h_rot) & set(ref))
        self._diff = {k: np.asarray(h_rot[k]) - np.asarray(ref[k]) for k in keys}
        by_type = block_type_errors(st, h_rot, ref)
        self.errors = {block_type_label(st, bt): v for bt, v in by_type.items()}
        self.max_error = max(self.errors.values())
        self.atom_errors = per_atom_errors(self._diff, st.num_atoms)
        worst = sorted(keys, key=lambda k: -np.abs(self._diff[k]).max())[:50]
        opts = [(edge_label(st, k), k) for k in worst]
        old = self.edge.value
        self.edge.options = opts
        self.edge.value = old if old in dict(opts).values() else opts[0][1]
        a, b, g = euler_angles(rot)
        self.summary.value = (
            f"<b>{self.model.value}</b>: max |H(Rx) - D H(x) D<sup>T</sup>| = "
            f"{self.max_error:.3e} eV over {len(keys)} blocks<br>rotation (z-y-z Euler): "
            f"{a:.0f}, {b:.0f}, {g:.0f} deg")
        fig = error_figure(self.errors, "max error per block type")
        with self.bars.batch_update():
            self.bars.data[0].x, self.bars.data[0].y = fig.data[0].x, fig.data[0].y
        self._draw_atoms()
        self._draw_edge()
        self.updates += 1

    def _draw_atoms(self) -> None:
        logs = np.log10(np.maximum(self.atom_errors, 1e-300))
        cols, bins = value_colors(logs, num_bins=7, vmin=LOG_RANGE[0], vmax=LOG_RANGE[1])
        self.colorbar.value = colorbar_html(*LOG_RANGE, COLOR_LABEL, cols, ticks=8)
        if self._bins is not None and np.array_equal(bins, self._bins):
            return
        self._bins = bins
        if self.backend == "nglview":
            from tgkit.viz.structure import color_atoms

            color_atoms(self.view, self.atoms, colors=(cols, bins))
        elif isinstance(self.view, go.FigureWidget):
            marker = self.view.data[-1].marker
            marker.color, marker.cmin, marker.cmax = logs, *LOG_RANGE

    def _draw_edge(self) -> None:
        key = self.edge.value
        if key is None or key not in self._diff:
            return
        st = self.structure
        li, lj = (orbital_names(st.orbital_types[key[3]]), orbital_names(st.orbital_types[key[4]]))
        d = np.abs(self._diff[key])
        with self.heat.batch_update():
            self.heat.data[0].z = d
            self.heat.data[0].x, self.heat.data[0].y = lj, li
            self.heat.layout.title = f"{edge_label(st, key)}: max {d.max():.2e} eV"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def orbital_names(orbital_types: Sequence[int]) -> list[str]:
    """Orbital names in file order (``1s 2s 1px ...``; :func:`tgkit.irreps.orbital_labels`)."""
    from tgkit.irreps import orbital_labels

    return orbital_labels(orbital_types)
