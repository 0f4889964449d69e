"""Band comparison figure for files (``bands.png``), drawn with matplotlib's object API.

The same :class:`tgkit.physics.BandComparison` feeds :func:`tgkit.viz.bands.bands_figure`
(plotly, notebooks). A :class:`matplotlib.figure.Figure` with its own Agg canvas needs no
pyplot state and never switches the global backend, so drawing here is safe inside a
notebook's kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tgkit.io_utils import atomic_path
from tgkit.physics.bands import BandComparison


def band_figure(result: BandComparison) -> Figure:
    """Reference (black) against predicted (red dashed) bands, E - E_F within +-2 windows."""
    ef, kp = result.fermi_level, result.path
    fig = Figure(figsize=(5.0, 4.5), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for n in range(result.e_ref.shape[1]):
        ax.plot(kp.x, result.e_ref[:, n] - ef, color="black", lw=1.2,
                label="reference" if n == 0 else None)
        ax.plot(kp.x, result.e_pred[:, n] - ef, color="tab:red", lw=1.0, ls="--",
                label="prediction" if n == 0 else None)
    for sx in kp.special_x:
        ax.axvline(sx, color="0.7", lw=0.6)
    ax.axhline(0.0, color="0.5", lw=0.6, ls=":")
    ax.set_xticks(kp.special_x, kp.labels)
    ax.set_xlim(kp.x[0], kp.x[-1])
    ax.set_ylim(-2 * result.window, 2 * result.window)
    ax.set_ylabel("E - E_F (eV)")
    ax.set_title(f"{result.name}: max {1e3 * result.max_error:.1f} meV, "
                 f"mean {1e3 * result.mean_error:.1f} meV in ±{result.window:g} eV", fontsize=8)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig


def write_bands_png(result: BandComparison, path: str | os.PathLike) -> Path:
    """Save :func:`band_figure` to ``path`` (atomically) and return it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        band_figure(result).savefig(tmp)
    return path


__all__ = ["band_figure", "write_bands_png"]
