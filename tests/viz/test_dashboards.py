"""Dashboard logic without a browser: selectors change the figures, clicks list samples."""

import numpy as np

from tgkit.viz.blocks import BlockErrorDashboard, block_heatmap
from tgkit.viz.trace import TraceDashboard


def test_block_dashboard_selectors_and_click(tables):
    d = BlockErrorDashboard(tables)
    assert d.setup.value == "baseline" and d.compare.value == "tracegrad"
    a = np.asarray(d.fig_a.data[0].z)
    b = np.asarray(d.fig_b.data[0].z)
    np.testing.assert_allclose(np.asarray(d.fig_diff.data[0].z), a - b)
    assert a.mean() > b.mean()  # baseline was perturbed twice as much
    d.edge.value = "onsite"
    assert not np.allclose(np.asarray(d.fig_a.data[0].z), a)
    d.edge.value = "(all)"
    d.twisted.value = "twisted"
    assert d.filters()["twisted"] is True
    worst = d.select_cell(0, 0)
    assert [n for n, _ in worst] == ["s1"] and "s1" in d.worst.value
    d.compare.value = "(none)"
    assert d.fig_b.data[0].z is None and d.fig_diff.data[0].z is None
    d.pair.value = (1, 6)
    assert np.asarray(d.fig_a.data[0].z).shape == (1, 4)


def test_block_heatmap_units():
    fig = block_heatmap(np.full((2, 2), 0.001), ["a", "b"], ["c", "d"])
    np.testing.assert_allclose(fig.data[0].z, 1.0)  # eV -> meV


def test_trace_dashboard_controls(tables):
    d = TraceDashboard({"a": tables[("run", "baseline")], "b": tables[("run", "tracegrad")]})
    types = d.blocks.options
    d.blocks.value = types[:2]
    assert len(d.hist.data) == 2
    assert d.parity.layout.xaxis.type == "log"
    d.log.value = False
    assert d.parity.layout.xaxis.type == "linear" and d.distance.layout.yaxis.type == "linear"
    d.edge.value = "onsite"
    assert all(len(t.x) == 0 or max(t.x) == 0 for t in d.distance.data)
    y_a = list(d.parity.data[0].y)
    d.source.value = "b"
    assert list(d.parity.data[0].y) != y_a
