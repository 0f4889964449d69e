import numpy as np
import pytest

from tgkit.errors import TgkitError
from tgkit.viz.records import atom_errors, edge_type, error_table, structure_layers


def test_error_table_matches_direct_mae(toy_structures, tables):
    t = tables[("run", "baseline")]
    assert t.pairs == [(1, 1), (1, 6), (6, 1), (6, 6)]
    assert t.twisted == {"s0": False, "s1": True}
    assert t.labels[6] == ["1s", "1px", "1py", "1pz"]
    st = toy_structures[0]
    from .conftest import perturbed

    pred = perturbed(st, 0.02, 0)
    keys = [k for k in st.hamiltonians if st.numbers[k[3]] == 6 and st.numbers[k[4]] == 6]
    direct = np.mean([np.abs(pred[k] - st.hamiltonians[k]) for k in keys], axis=0)
    np.testing.assert_allclose(t.mae_matrix((6, 6), structures=["s0"]), direct)
    assert t.mae_matrix((6, 6), twisted=True, structures=["s0"]) is None


def test_trace_rows_are_frobenius_norms(toy_structures, tables):
    tr = tables[("run", "baseline")].trace
    assert len({len(v) for v in tr.values()}) == 1
    st = toy_structures[0]
    key = next(k for k in sorted(st.hamiltonians) if st.numbers[k[3]] == 6 and k[3] != k[4])
    blk = st.hamiltonians[key][1:4, 1:4]  # p-p shell pair of a C-C edge
    assert np.any(np.isclose(tr["t_true"], np.sum(blk**2)))
    assert set(tr["edge_type"]) <= {"onsite", "intralayer", "interlayer"}
    assert (tr["dist"][tr["edge_type"] == "onsite"] == 0).all()


def test_worst_structures_ranked(tables):
    worst = tables[("run", "baseline")].worst_structures((6, 6), 0, 0)
    assert [n for n, _ in worst] and worst == sorted(worst, key=lambda t: -t[1])


def test_atom_errors_and_layers(toy_structures):
    st = toy_structures[0]
    exact = atom_errors(st, st.hamiltonians)
    assert exact.shape == (3,) and np.all(exact == 0)
    assert structure_layers(st).shape == (3,)
    assert edge_type((0, 0, 0, 1, 1), np.zeros(3, int)) == "onsite"
    assert edge_type((1, 0, 0, 1, 1), np.array([0, 0, 1])) == "intralayer"


def test_missing_prediction_is_a_clear_error(toy_structures):
    with pytest.raises(TgkitError, match="no prediction"):
        error_table(toy_structures, {})
