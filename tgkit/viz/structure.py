"""3D structure views: nglview (with the JupyterLab 4 handshake fix), weas-widget, plotly.

nglview 4.0.1 asks the browser for frontend module version "4.0" while the lab extension in
the same wheel is 3.1.5, so every nglview widget shows "Error displaying widget" in
JupyterLab 4 (nglview issue 1181). :func:`patch_nglview_frontend` registers a module
``nglview._frontend`` whose ``__frontend_version__`` is the version of the *installed* lab
extension (read from its ``package.json``) before nglview is imported; nglview's widgets read
that module at import time. Always import nglview through :func:`import_nglview`.

Colouring: atoms are coloured per layer (``atoms.arrays['layer']`` from the twisted bilayer
builder, else by z) or by a per-atom value such as the prediction error
(:func:`tgkit.viz.records.atom_errors`).
"""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from ase import Atoms

from tgkit.data.structures import atom_layers
from tgkit.errors import TgkitError

NGLVIEW_EXTENSION = "nglview-js-widgets"  # the lab extension's npm package name
LAYER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
BACKENDS = ("nglview", "weas", "plotly")


# --------------------------------------------------------------------------- nglview fix


def nglview_extension_version() -> str | None:
    """Version of the installed ``nglview-js-widgets`` lab extension, or None if absent.

    Looks in every Jupyter data path (``jupyter --paths``: the venv's ``share/jupyter`` first).
    """
    try:
        from jupyter_core.paths import jupyter_path
        roots = [Path(p) for p in jupyter_path("labextensions")]
    except ImportError:  # jupyter_core absent: the venv's share/jupyter is the usual place
        roots = [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    for root in roots:
        pkg = root / NGLVIEW_EXTENSION / "package.json"
        if pkg.is_file():
            try:
                return str(json.loads(pkg.read_text())["version"])
            except (OSError, ValueError, KeyError):
                continue
    return None


def patch_nglview_frontend() -> str | None:
    """Make nglview request the frontend version that is actually installed.

    Must run before the first ``import nglview`` (nglview copies the version into its widget
    traits at import). Returns the version registered, or None when nglview was already
    imported or no lab extension is installed (then nothing is changed).
    """
    if "nglview" in sys.modules:
        return None
    version = nglview_extension_version()
    if version is None:
        return None
    mod = types.ModuleType("nglview._frontend")
    mod.__frontend_version__ = version
    sys.modules["nglview._frontend"] = mod
    return version


def import_nglview():
    """``import nglview`` with :func:`patch_nglview_frontend` applied first."""
    patch_nglview_frontend()
    import nglview

    return nglview


# --------------------------------------------------------------------------- colouring


def value_colors(values: np.ndarray, num_bins: int = 8, vmin: float | None = None,
                 vmax: float | None = None) -> tuple[list[str], np.ndarray]:
    """Bin per-atom values into a sequential colour scale (Viridis).

    Args:
        vmin, vmax: fixed ends of the scale (default: the values' range); values outside
            go to the end bins.

    Returns:
        (hex colour per bin, (N,) bin index per atom); equal values share one bin.
    """
    from plotly.colors import sample_colorscale

    values = np.asarray(values, dtype=float)
    lo = float(np.nanmin(values)) if vmin is None else vmin
    hi = float(np.nanmax(values)) if vmax is None else vmax
    frac = np.zeros_like(values) if hi <= lo else (values - lo) / (hi - lo)
    frac = np.nan_to_num(np.clip(frac, 0.0, 1.0))
    bins = np.minimum((frac * num_bins).astype(int), num_bins - 1)
    cols = sample_colorscale("Viridis", [(k + 0.5) / num_bins for k in range(num_bins)],
                             colortype="tuple")
    hexes = ["#" + "".join(f"{int(round(255 * c)):02x}" for c in col[:3]) for col in cols]
    return hexes, bins


def _selections(colors: Sequence[str], groups: np.ndarray) -> list[list[str]]:
    """nglview selection colour scheme: [[colour, "@i,j,k"], ...] for atom index groups."""
    out = []
    for g, col in enumerate(colors):
        idx = np.nonzero(groups == g)[0]
        if len(idx):
            out.append([col, "@" + ",".join(map(str, idx.tolist()))])
    return out


# --------------------------------------------------------------------------- views


def is_slab(atoms: Atoms, vacuum: float = 6.0) -> bool:
    """Whether the cell has a vacuum gap along c larger than ``vacuum`` A (a 2D slab)."""
    c = atoms.cell.array[2]
    height = np.ptp(atoms.positions @ c / max(np.linalg.norm(c), 1e-12))
    return bool(np.linalg.norm(c) - height > vacuum)


def _show_cell(atoms: Atoms, cell: bool | None) -> bool:
    # default: the outline helps for bulk cells, but a slab's long vacuum edge dwarfs the atoms
    return (not is_slab(atoms)) if cell is None else cell


def bonds(atoms: Atoms, scale: float = 1.15) -> np.ndarray:
    """(B, 2) atom pairs closer than ``scale`` x the sum of covalent radii (no images)."""
    from ase.data import covalent_radii

    pos = atoms.positions
    r = covalent_radii[atoms.numbers]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    i, j = np.nonzero((d < scale * (r[:, None] + r[None])) & (d > 0.1))
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1)


def structure_figure(
    atoms: Atoms, values: np.ndarray | None = None, title: str = "",
    value_label: str = "error (meV)", cell: bool | None = None,
) -> go.Figure:
    """Plotly 3D ball-and-stick view (dependency-light, works offline without anywidget).

    Coloured by layer, or by ``values`` (N,) with a colour bar titled ``value_label`` (give
    the values in the label's unit). Bonds are drawn whatever the colouring. ``cell``: draw the
    cell outline (default: only for bulk cells, not for slabs). Axes are in Angstrom.
    """
    pos = atoms.positions
    fig = go.Figure()
    b = bonds(atoms)
    if len(b):
        seg = np.full((3 * len(b), 3), np.nan)
        seg[0::3], seg[1::3] = pos[b[:, 0]], pos[b[:, 1]]
        fig.add_trace(go.Scatter3d(x=seg[:, 0], y=seg[:, 1], z=seg[:, 2], mode="lines",
                                   name="bonds", line=dict(color="#9e9e9e", width=4),
                                   hoverinfo="skip"))
    if values is None:
        layer = atom_layers(atoms)
        for g in np.unique(layer):
            sel = layer == g
            fig.add_trace(go.Scatter3d(
                x=pos[sel, 0], y=pos[sel, 1], z=pos[sel, 2], mode="markers", name=f"layer {g}",
                marker=dict(size=6, color=LAYER_COLORS[g % len(LAYER_COLORS)]),
            ))
    else:
        v = np.asarray(values, float)
        fig.add_trace(go.Scatter3d(
            x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="markers", name="atoms",
            marker=dict(size=6, color=v, colorscale="Viridis",
                        colorbar=dict(title=value_label)),
            text=[f"atom {i}: {x:.3g}" for i, x in enumerate(v)],
        ))
    if _show_cell(atoms, cell):
        c = atoms.cell.array
        corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ c[:2]
        fig.add_trace(go.Scatter3d(x=corners[:, 0], y=corners[:, 1],
                                   z=np.full(5, pos[:, 2].min()), mode="lines", name="cell",
                                   line=dict(color="gray")))
    axis = dict(showbackground=False, nticks=5)
    fig.update_layout(
        title=title, height=480, margin=dict(l=0, r=0, t=40, b=0),
        scene=dict(aspectmode="data", xaxis=dict(title="x (Å)", **axis),
                   yaxis=dict(title="y (Å)", **axis), zaxis=dict(title="z (Å)", **axis)))
    return fig


def colorbar_html(lo: float, hi: float, label: str, colors: Sequence[str],
                  ticks: int = 5) -> str:
    """An HTML colour bar (for the WebGL viewers, which have none): gradient plus tick labels.

    Args:
        lo, hi: the values at the two ends, in the unit of ``label``.
        label: title with unit, e.g. ``"mean |H_pred - H_DFT| (meV)"``.
        colors: the colour of each bin, low to high.
    """
    grad = ", ".join(colors)
    vals = np.linspace(lo, hi, ticks)
    labels = "".join(f"<span>{v:.3g}</span>" for v in vals)
    return (f"<div style='width:420px;font-size:12px'><div>{label}</div>"
            f"<div style='height:14px;background:linear-gradient(to right, {grad});"
            f"border:1px solid #888'></div><div style='display:flex;"
            f"justify-content:space-between'>{labels}</div></div>")


def nglview_view(atoms: Atoms, values: np.ndarray | None = None, num_bins: int = 8,
                 cell: bool | None = None, colors=None):
    """An nglview widget: grey bonds for all atoms, spheres coloured by layer or by binned
    ``values`` (bins never break bonds), the cell outline when ``cell`` (default: not for
    slabs), zoomed to the atoms. ``colors``: precomputed ``(bin colours, (N,) bins)``."""
    nv = import_nglview()
    view = nv.show_ase(atoms, default=False)
    view.layout.width, view.layout.height = "100%", "460px"
    color_atoms(view, atoms, values, num_bins, colors)
    if _show_cell(atoms, cell):
        view.add_unitcell()
    view.center()  # zoom to the atoms once the view has its final size
    return view


def color_atoms(view, atoms: Atoms, values: np.ndarray | None = None, num_bins: int = 8,
                colors=None) -> None:
    """(Re)draw the atoms of an nglview view: bonds for all, spheres per colour group."""
    view.clear_representations()
    if colors is not None:
        cols, groups = colors
    elif values is None:
        groups = atom_layers(atoms)
        cols = [LAYER_COLORS[g % len(LAYER_COLORS)] for g in range(groups.max() + 1)]
    else:
        cols, groups = value_colors(values, num_bins)
    view.add_licorice(selection="all", color="#a0a0a0", radiusScale=0.6)
    # one representation per colour group: public API, no private colour-scheme classes
    for col, sel in _selections(cols, groups):
        view.add_spacefill(selection=sel, color=col, radiusScale=0.22)


def weas_view(atoms: Atoms, values: np.ndarray | None = None):
    """A weas-widget viewer coloured by layer or by ``values`` (an atoms attribute)."""
    from weas_widget import WeasWidget

    viewer = WeasWidget()
    viewer.from_ase(atoms)
    attr = atom_layers(atoms).astype(float) if values is None else np.asarray(values, float)
    # put the attribute into the synced atoms dict (a new dict, so the trait change is sent):
    # avr.set_attribute only mutates it in place and messages a frontend that may not exist yet
    data = dict(viewer.avr.atoms)
    data["attributes"] = {"atom": {"tgkit_color": attr.tolist()}, "species": {}}
    viewer.avr.atoms = data
    viewer.avr.color_by = "tgkit_color"
    viewer.avr.color_ramp = ["#1f77b4", "#d62728"] if values is None else ["#440154", "#fde725"]
    return viewer


def structure_view(atoms: Atoms, values: np.ndarray | None = None, backend: str = "nglview",
                   cell: bool | None = None, value_label: str = "error (meV)"):
    """A 3D view with the chosen backend; falls back nglview -> weas -> plotly if not installed.

    Args:
        atoms: the structure.
        values: optional (N,) per-atom values to colour by (else layers).
        backend: ``nglview``, ``weas`` or ``plotly``.
        cell: draw the cell outline (default: not for slabs).
        value_label: colour-bar title with unit (plotly; the other backends take
            :func:`colorbar_html` next to them).
    """
    if backend not in BACKENDS:
        raise TgkitError(f"unknown 3D backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if values is not None and len(values) != len(atoms):
        raise TgkitError(f"{len(values)} colour values for {len(atoms)} atoms")
    order = BACKENDS[BACKENDS.index(backend):]
    for name in order:
        try:
            if name == "nglview":
                return nglview_view(atoms, values, cell=cell)
            if name == "weas":
                return weas_view(atoms, values)
        except ImportError:
            continue
    fig = structure_figure(atoms, values, cell=cell, value_label=value_label)
    return go.FigureWidget(fig) if _has_anywidget() else fig


def _has_anywidget() -> bool:
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- dashboard

ERROR_LABEL = "mean |H_pred - H_DFT| per atom (meV)"


class StructureDashboard:
    """Twisted-bilayer viewer: a twist-angle selector, colouring, cell toggle and a 3D view.

    Args:
        structures: ``{twist angle in degrees: ase.Atoms}`` (e.g. the shipped DFT twisted
            bilayer and :func:`tgkit.data.structures.twisted_bilayer_graphene` cells).
        errors: optional ``{twist angle: (N,) per-atom error, eV}`` (see
            :func:`tgkit.viz.records.atom_errors`); enables "prediction error" colouring,
            shown in meV with a colour bar.
        backend: ``nglview``, ``weas`` or ``plotly``.
        start: the angle to open on (default: the first one with errors, else the first).

    Attributes:
        widget: the ipywidgets box to display.
        view: the current 3D view widget (replaced when a control changes).
    """

    def __init__(
        self, structures: dict[float, Atoms], errors: dict[float, np.ndarray] | None = None,
        backend: str = "nglview", start: float | None = None,
    ) -> None:
        import ipywidgets as w

        if not structures:
            raise TgkitError("StructureDashboard needs at least one structure")
        self.structures = dict(sorted(structures.items()))
        self.errors = errors or {}
        self.backend = backend
        angles = list(self.structures)
        if start is None:
            start = next((a for a in angles if a in self.errors), angles[0])
        self.twist = w.SelectionSlider(
            options=[(f"{a:.2f} deg", a) for a in angles], value=start,
            description="twist", continuous_update=False)
        self.color_by = w.ToggleButtons(
            options=["layer", "prediction error"] if self.errors else ["layer"],
            value="prediction error" if start in self.errors else "layer",
            description="colour")
        self.cell = w.Checkbox(value=False, description="cell outline")
        self.info = w.HTML()
        self.colorbar = w.HTML()
        self.view = None
        self.widget = w.VBox([w.HBox([self.twist, self.color_by, self.cell]), self.info,
                              self.colorbar, w.HTML()])
        self.cell.value = _show_cell(self.atoms, None)
        for ctl in (self.twist, self.color_by, self.cell):
            ctl.observe(self._refresh, names="value")
        self._refresh()

    @property
    def atoms(self) -> Atoms:
        return self.structures[self.twist.value]

    def current_values(self) -> np.ndarray | None:
        """Per-atom colour values (eV) of the current state (None: colour by layer)."""
        if self.color_by.value == "prediction error":
            return self.errors.get(self.twist.value)
        return None

    def _refresh(self, _change=None) -> None:
        values = self.current_values()
        mev = None if values is None else np.asarray(values, float) * 1e3
        self.view = structure_view(self.atoms, mev, backend=self.backend, cell=self.cell.value,
                                   value_label=ERROR_LABEL)
        txt = f"{len(self.atoms)} atoms, twist {self.twist.value:.3f} deg"
        if "source" in self.atoms.info:
            txt += f" ({self.atoms.info['source']})"
        if mev is not None:
            txt += f"; per-atom MAE {np.nanmin(mev):.2f} .. {np.nanmax(mev):.2f} meV"
        elif self.color_by.value == "prediction error":
            txt += "; no prediction error for this structure (DFT data only for the shipped one)"
        self.info.value = txt
        if mev is not None and self.backend != "plotly":
            cols, _ = value_colors(mev)
            self.colorbar.value = colorbar_html(float(np.nanmin(mev)), float(np.nanmax(mev)),
                                                ERROR_LABEL, cols)
        elif mev is None:
            self.colorbar.value = " &nbsp; ".join(
                f"<span style='color:{LAYER_COLORS[g % len(LAYER_COLORS)]}'>&#9679;</span>"
                f" layer {g}" for g in np.unique(atom_layers(self.atoms)))
        else:
            self.colorbar.value = ""
        self.widget.children = (*self.widget.children[:3], self.view)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
