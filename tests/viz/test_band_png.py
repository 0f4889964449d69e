"""``bands.png`` from a :class:`BandComparison` without touching matplotlib's global backend."""

from __future__ import annotations

import matplotlib
import numpy as np

from tgkit.physics.bands import BandComparison, KPath
from tgkit.viz.band_png import band_figure, write_bands_png


def comparison() -> BandComparison:
    x = np.linspace(0.0, 1.0, 9)
    kp = KPath(kpts=np.stack([x, 0 * x, 0 * x], 1), x=x, special_x=np.array([0.0, 1.0]),
               labels=["G", "X"])
    e_ref = np.stack([np.cos(np.pi * x) - 1.0, np.cos(np.pi * x) + 1.0], 1)
    return BandComparison(path=kp, e_ref=e_ref, e_pred=e_ref + 0.01, fermi_level=0.0,
                          window=2.0, solver="dense", matching="index", max_error=0.01,
                          mean_error=0.01, num_in_window=18, name="toy")


def test_png_written_and_backend_untouched(tmp_path):
    backend = matplotlib.get_backend()
    fig = band_figure(comparison())
    assert len(fig.axes[0].lines) >= 4  # 2 bands x (reference, prediction), plus markers
    png = write_bands_png(comparison(), tmp_path / "sub" / "bands.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert matplotlib.get_backend() == backend
