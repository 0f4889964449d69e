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


def value_colors(values: np.ndarray, num_bins: int = 8) -> tuple[list[str], np.ndarray]:
    """Bin per-atom values into a sequential colour scale (Viridis).

    Returns:
        (hex colour per bin, (N,) bin index per atom); equal values share one bin.
    """
    from plotly.colors import sample_colorscale

    values = np.asarray(values, dtype=float)
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    frac = np.zeros_like(values) if hi <= lo else (values - lo) / (hi - lo)
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


def structure_figure(
    atoms: Atoms, values: np.ndarray | None = None, title: str = "", value_label: str = "error"
) -> go.Figure:
    """Plotly 3D scatter of the atoms (dependency-light, works offline without anywidget).

    Coloured by layer, or by ``values`` (N,) with a colour bar. Shows the in-plane cell.
    """
    pos = atoms.positions
    fig = go.Figure()
    if values is None:
        layer = atom_layers(atoms)
        for g in np.unique(layer):
            sel = layer == g
            fig.add_trace(go.Scatter3d(
                x=pos[sel, 0], y=pos[sel, 1], z=pos[sel, 2], mode="markers", name=f"layer {g}",
                marker=dict(size=5, color=LAYER_COLORS[g % len(LAYER_COLORS)]),
            ))
    else:
        fig.add_trace(go.Scatter3d(
            x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="markers", name="atoms",
            marker=dict(size=5, color=np.asarray(values, float), colorscale="Viridis",
                        colorbar=dict(title=value_label)),
            text=[f"atom {i}: {v:.3g}" for i, v in enumerate(np.asarray(values, float))],
        ))
    c = atoms.cell.array
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ c[:2]
    fig.add_trace(go.Scatter3d(x=corners[:, 0], y=corners[:, 1], z=np.full(5, pos[:, 2].min()),
                               mode="lines", name="cell", line=dict(color="gray")))
    fig.update_layout(title=title, scene=dict(aspectmode="data"), height=450,
                      margin=dict(l=0, r=0, t=40, b=0))
    return fig


def nglview_view(atoms: Atoms, values: np.ndarray | None = None, num_bins: int = 8):
    """An nglview widget (ball+stick, unit cell) coloured by layer or by binned ``values``."""
    nv = import_nglview()
    view = nv.show_ase(atoms, default=False)
    if values is None:
        layer = atom_layers(atoms)
        colors = [LAYER_COLORS[g % len(LAYER_COLORS)] for g in range(layer.max() + 1)]
        groups = layer
    else:
        colors, groups = value_colors(values, num_bins)
    # one representation per colour group: public API, no private colour-scheme classes
    for col, sel in _selections(colors, groups):
        view.add_ball_and_stick(selection=sel, color=col)
    view.add_unitcell()
    view.center()  # zoom to the atoms once the view has its final size
    return view


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


def structure_view(atoms: Atoms, values: np.ndarray | None = None, backend: str = "nglview"):
    """A 3D view with the chosen backend; falls back nglview -> weas -> plotly if not installed.

    Args:
        atoms: the structure.
        values: optional (N,) per-atom values to colour by (else layers).
        backend: ``nglview``, ``weas`` or ``plotly``.
    """
    if backend not in BACKENDS:
        raise TgkitError(f"unknown 3D backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if values is not None and len(values) != len(atoms):
        raise TgkitError(f"{len(values)} colour values for {len(atoms)} atoms")
    order = BACKENDS[BACKENDS.index(backend):]
    for name in order:
        try:
            if name == "nglview":
                return nglview_view(atoms, values)
            if name == "weas":
                return weas_view(atoms, values)
        except ImportError:
            continue
    return go.FigureWidget(structure_figure(atoms, values)) if _has_anywidget() \
        else structure_figure(atoms, values)


def _has_anywidget() -> bool:
    try:
        import anywidget  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- dashboard


class StructureDashboard:
    """Twisted-bilayer viewer: a twist-angle selector, a colouring choice and a 3D view.

    Args:
        structures: ``{twist angle in degrees: ase.Atoms}`` (e.g. from
            :func:`tgkit.data.structures.twisted_bilayer_graphene` for several m).
        errors: optional ``{twist angle: (N,) per-atom error, eV}`` (see
            :func:`tgkit.viz.records.atom_errors`); enables "prediction error" colouring.
        backend: ``nglview``, ``weas`` or ``plotly``.

    Attributes:
        widget: the ipywidgets box to display.
        view: the current 3D view widget (replaced when a control changes).
    """

    def __init__(
        self, structures: dict[float, Atoms], errors: dict[float, np.ndarray] | None = None,
        backend: str = "nglview",
    ) -> None:
        import ipywidgets as w

        if not structures:
            raise TgkitError("StructureDashboard needs at least one structure")
        self.structures = dict(sorted(structures.items()))
        self.errors = errors or {}
        self.backend = backend
        angles = list(self.structures)
        self.twist = w.SelectionSlider(
            options=[(f"{a:.2f} deg", a) for a in angles], value=angles[0],
            description="twist", continuous_update=False)
        self.color_by = w.ToggleButtons(
            options=["layer", "prediction error"] if self.errors else ["layer"],
            value="layer", description="colour")
        self.info = w.HTML()
        self.view = None
        self.widget = w.VBox([w.HBox([self.twist, self.color_by]), self.info, w.HTML()])
        self.twist.observe(self._refresh, names="value")
        self.color_by.observe(self._refresh, names="value")
        self._refresh()

    @property
    def atoms(self) -> Atoms:
        return self.structures[self.twist.value]

    def current_values(self) -> np.ndarray | None:
        """Per-atom colour values of the current state (None: colour by layer)."""
        if self.color_by.value == "prediction error":
            return self.errors.get(self.twist.value)
        return None

    def _refresh(self, _change=None) -> None:
        values = self.current_values()
        self.view = structure_view(self.atoms, values, backend=self.backend)
        txt = f"{len(self.atoms)} atoms, twist {self.twist.value:.3f} deg"
        if values is not None:
            lo, hi = np.nanmin(values) * 1e3, np.nanmax(values) * 1e3
            txt += f"; per-atom MAE {lo:.2f} .. {hi:.2f} meV"
        self.info.value = txt
        self.widget.children = (*self.widget.children[:2], self.view)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
