import json
import sys

import numpy as np
import pytest

from tgkit.errors import TgkitError
from tgkit.viz import demo, structure
from tgkit.viz.structure import StructureDashboard, atom_layers, structure_figure, value_colors


def test_frontend_version_read_from_installed_extension(tmp_path, monkeypatch):
    ext = tmp_path / "labextensions" / structure.NGLVIEW_EXTENSION
    ext.mkdir(parents=True)
    (ext / "package.json").write_text(json.dumps({"name": "nglview-js-widgets",
                                                  "version": "9.8.7"}))
    import jupyter_core.paths

    monkeypatch.setattr(jupyter_core.paths, "jupyter_path",
                        lambda *parts: [str(tmp_path / "labextensions")])
    assert structure.nglview_extension_version() == "9.8.7"
    monkeypatch.delitem(sys.modules, "nglview", raising=False)
    monkeypatch.delitem(sys.modules, "nglview._frontend", raising=False)
    assert structure.patch_nglview_frontend() == "9.8.7"
    assert sys.modules["nglview._frontend"].__frontend_version__ == "9.8.7"


def test_nglview_widget_requests_installed_version():
    nv = structure.import_nglview()
    installed = structure.nglview_extension_version()
    if installed is None:
        pytest.skip("nglview lab extension not installed")
    view = structure.nglview_view(demo.twisted_bilayers(ms=(1,))[21.7868])
    assert view._view_module_version == installed
    assert nv.NGLWidget._model_module_version.default_value == installed


def test_layers_colours_and_plotly_fallback():
    bil = demo.twisted_bilayers(ms=(1,))
    atoms = bil[21.7868]
    layer = atom_layers(atoms)
    assert sorted(np.unique(layer)) == [0, 1] and len(atoms) == 28
    fig = structure_figure(atoms)
    assert [t.name for t in fig.data] == ["bonds", "layer 0", "layer 1"]  # slab: no cell
    cols, bins = value_colors(np.linspace(0, 1, 28), num_bins=4)
    assert len(cols) == 4 and bins.min() == 0 and bins.max() == 3
    fig = structure_figure(atoms, values=np.arange(28.0))
    assert fig.data[-1].marker.colorbar.title.text == "error (meV)"


def test_structure_dashboard_twist_and_colour():
    structs = demo.twisted_bilayers(ms=(1, 2))
    errors = {a: np.linspace(0, 1, len(at)) for a, at in structs.items()}
    d = StructureDashboard(structs, errors, backend="plotly", start=0.0)
    assert d.twist.value == 0.0 and len(d.atoms) == 16 and not d.cell.value
    d.twist.value = d.twist.options[-1][1]
    assert len(d.atoms) == 28 and "28 atoms" in d.info.value
    d.color_by.value = "prediction error"
    assert d.current_values().shape == (28,) and d.widget.children[-1] is d.view
    with pytest.raises(TgkitError, match="colour values"):
        structure.structure_view(d.atoms, values=np.zeros(3), backend="plotly")
