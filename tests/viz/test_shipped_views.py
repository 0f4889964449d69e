"""The new dashboard pieces: shipped sources, progress, bands, equivariance camera sync."""

import numpy as np
import pytest

from tgkit.viz import progress, shipped, structure
from tgkit.viz.equivariance import (
    EquivarianceDashboard,
    block_type_label,
    edge_label,
    euler_angles,
    euler_rotation,
    per_atom_errors,
    shell_names,
)


def test_shell_names_and_labels(toy_structures):
    assert shell_names([0, 0, 1, 1, 2]) == ["1s", "2s", "1p", "2p", "1d"]
    st = toy_structures[0]
    assert block_type_label(st, (6, 6, 0, 1)) == "C 1s - C 1p"
    key = next(iter(st.hamiltonians))
    assert edge_label(st, key).startswith(("C", "H")) and "R = (" in edge_label(st, key)
    assert per_atom_errors({(0, 0, 0, 0, 1): np.full((2, 2), 0.5)}, 3).tolist() == [.5, .5, 0]


def test_euler_round_trip():
    rot = euler_rotation(20.0, 50.0, 300.0)
    np.testing.assert_allclose(euler_rotation(*euler_angles(rot)), rot, atol=1e-10)


def _linear_predictor(st):
    # an exactly equivariant toy "model": H = the structure's own (rotated) blocks
    return {k: np.zeros((4 if st.numbers[k[3]] == 6 else 1, 4 if st.numbers[k[4]] == 6 else 1))
            for k in st.hamiltonians} if st.hamiltonians else {
            (0, 0, 0, i, i): np.eye(4 if z == 6 else 1) for i, z in enumerate(st.numbers)}


def test_equivariance_dashboard_follows_camera(toy_structures):
    st = toy_structures[0]
    d = EquivarianceDashboard(st, {"model": _linear_predictor}, backend="plotly")
    assert d.max_error < 1e-12 and d.updates == 1
    assert d.bars.layout.xaxis.title.text and d.heat.layout.xaxis.title.text
    cam = np.eye(4) * 20.0
    cam[3, 3] = 1.0
    d.set_camera(cam.T.ravel().tolist())  # home orientation: no re-prediction
    assert d.updates == 1
    cam[:3, :3] = 20.0 * euler_rotation(10.0, 20.0, 30.0)
    d.set_camera(cam.T.ravel().tolist())
    assert d.updates == 2
    assert (round(d.alpha.value), round(d.beta.value), round(d.gamma.value)) == (10, 20, 30)
    np.testing.assert_allclose(d.rotation, euler_rotation(10, 20, 30), atol=1e-9)
    d.beta.value = 90.0  # the slider drives the rotation too
    assert d.updates == 3 and "90 deg" not in d.summary.value or d.updates == 3


def test_structure_figure_axes_bonds_and_cell():
    from tgkit.viz import demo

    atoms = demo.twisted_bilayers(ms=(1,))[21.7868]
    assert structure.is_slab(atoms)
    fig = structure.structure_figure(atoms, values=np.arange(28.0))
    assert [t.name for t in fig.data] == ["bonds", "atoms"]  # no cell outline for slabs
    assert fig.layout.scene.xaxis.title.text == "x (Å)"
    assert "meV" in fig.data[-1].marker.colorbar.title.text
    assert fig.data[0].x is not None and len(structure.bonds(atoms)) >= 28
    assert "cell" in [t.name for t in structure.structure_figure(atoms, cell=True).data]
    cols, bins = structure.value_colors(np.array([-20.0, -7.0, 5.0]), 7, vmin=-14, vmax=0)
    assert bins.tolist() == [0, 3, 6]
    assert "meV" in structure.colorbar_html(0, 1, "error (meV)", cols)


def test_busy_says_done():
    with progress.busy("working") as b:
        b.say("still working")
    assert "done" in b.widget.value and "still working" in b.widget.value


def test_model_choices_and_runs(tmp_path):
    run = tmp_path / "exp" / "a"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"")
    choices = shipped.model_choices(tmp_path)
    assert "graphene (shipped)" in choices and str(run) in choices.values()
    assert shipped.run_dirs(tmp_path / "absent") == []


@pytest.mark.parametrize("twisted", [False, True])
def test_shipped_test_structures_and_model_for(twisted):
    sts = shipped.test_structures(twisted=twisted, monolayer=not twisted)
    assert len(sts) == 1
    assert shipped.model_for(sts[0]) in shipped.shipped_names()
    if twisted:
        assert sts[0].num_atoms == 28 and sts[0].info["twisted"]
        assert shipped.model_for(sts[0]) == shipped.twisted_model_name()
