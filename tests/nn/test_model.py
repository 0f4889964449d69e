"""The whole model: O(3)/SU(2) equivariance, hermiticity, locality, export, training."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

from tgkit import keys as K
from tgkit.config import TraceGradConfig
from tgkit.data.graph import collate
from tgkit.irreps import basis_rotation
from tgkit.nn import load_model, save_model, trace_labels
from tgkit.nn.tracegrad import TraceGrad

from .conftest import SETUPS, TOL, get_model, rotate_graph, rotations


def _assert_equivariant(model, graph, spinful):
    out = model(graph)
    h = out[K.H_PRED]
    assert h.abs().max() > 1e-3  # a non-trivial prediction
    for rot in rotations():
        out_r = model(rotate_graph(graph, rot))
        d = basis_rotation(model.basis, rot, spinful)
        d = d if spinful else d.to(h.dtype)
        expected = d @ h @ d.conj().T
        assert (out_r[K.H_PRED] - expected).abs().max() <= TOL
        if K.T_PRED in out:  # Theorem 1 on the prediction side: T is invariant
            assert (out_r[K.T_PRED] - out[K.T_PRED]).abs().max() <= TOL


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
@pytest.mark.parametrize("setup", SETUPS)
def test_equivariance_mixed_elements(setup, spinful, mixed_graph):
    """Rotated crystal -> D H D^dagger, inversion included (parity), C + O + H bases."""
    with torch.no_grad():
        _assert_equivariant(get_model(setup, spinful), mixed_graph, spinful)


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
def test_equivariance_twisted_bilayer(spinful, bilayer_graph):
    with torch.no_grad():
        _assert_equivariant(get_model("tracegrad", spinful), bilayer_graph, spinful)


def test_equivariance_in_training_mode(carbon_graph):
    """create_graph=True (training) must give the same, equivariant, forward values."""
    model = get_model("tracegrad", fresh=True).train()
    _assert_equivariant(model, carbon_graph, False)
    with torch.no_grad():
        ref = get_model("tracegrad")(carbon_graph)[K.H_PRED]
    assert (model(carbon_graph)[K.H_PRED] - ref).abs().max() <= TOL


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
def test_hermitian_across_reverse_edges(spinful, mixed_graph):
    h = get_model("grad", spinful)(mixed_graph)[K.H_PRED].detach()
    rev = mixed_graph[K.REVERSE_EDGE]
    assert (h - h[rev].transpose(-1, -2).conj()).abs().max() <= TOL


def test_masks_follow_species(mixed_graph, basis):
    out = get_model("trace")(mixed_graph)
    assert (out[K.H_PRED][~out[K.H_MASK]] == 0).all()
    hydrogen = basis.species_index(1)
    sp = mixed_graph[K.SPECIES][mixed_graph[K.EDGE_INDEX]]
    hh = (sp[0] == hydrogen) & (sp[1] == hydrogen)
    assert out[K.H_MASK][hh].sum(dim=(1, 2)).eq(5 * 5).all()  # H: s s p
    assert out[K.BLOCK_MASK][hh].sum(1).eq(3 * 3).all()
    label = out[K.T_LABEL]
    assert (label[~out[K.BLOCK_MASK]] == 0).all()


def test_independent_of_edge_order(mixed_graph):
    model = get_model("tracegrad")
    e = mixed_graph[K.EDGE_VEC].shape[0]
    perm = torch.randperm(e, generator=torch.Generator().manual_seed(0))
    inv = torch.argsort(perm)
    g = dict(mixed_graph)
    for key in (K.EDGE_VEC, K.CELL_SHIFT, K.HAMILTONIAN, K.OVERLAP):
        g[key] = mixed_graph[key][perm]
    g[K.EDGE_INDEX] = mixed_graph[K.EDGE_INDEX][:, perm]
    g[K.REVERSE_EDGE] = inv[mixed_graph[K.REVERSE_EDGE][perm]]
    with torch.no_grad():
        a, b = model(mixed_graph), model(g)
    for key in (K.H_PRED, K.T_PRED):
        assert (b[key] - a[key][perm]).abs().max() <= TOL


def test_independent_of_batch_composition(mixed_graph, carbon_graph, bilayer_graph):
    model = get_model("tracegrad", spinful=True)
    with torch.no_grad():
        alone = model(carbon_graph)[K.H_PRED]
        batch = model(collate([mixed_graph, carbon_graph, bilayer_graph]))[K.H_PRED]
    e0 = mixed_graph[K.EDGE_VEC].shape[0]
    assert (batch[e0:e0 + alone.shape[0]] - alone).abs().max() <= TOL


def test_no_grad_eval_matches_grad_enabled(mixed_graph):
    model = get_model("grad")
    with torch.no_grad():
        a = model(mixed_graph)[K.H_PRED]
    b = model(mixed_graph)[K.H_PRED]
    assert (a - b).abs().max() <= TOL and not a.requires_grad


@pytest.mark.parametrize("setup", SETUPS)
def test_export_and_load_round_trip(setup, mixed_graph, tmp_path):
    model = get_model(setup)
    infer = model.export_inference()
    assert infer.trace_decoder is None and infer.trace_branch is None
    assert len(infer.node_grads) == len(model.node_grads)  # the invariant encoder stays
    with torch.no_grad():
        ref = model(mixed_graph)
        got = infer(mixed_graph)
    assert K.T_PRED not in got
    assert (got[K.H_PRED] - ref[K.H_PRED]).abs().max() == 0
    for m, name in ((model, "full.pt"), (infer, "infer.pt")):
        save_model(m, tmp_path / name)
        back = load_model(tmp_path / name)
        assert back.inference_only == m.inference_only
        with torch.no_grad():
            out = back(mixed_graph)
        assert (out[K.H_PRED] - ref[K.H_PRED]).abs().max() == 0
        assert (K.T_PRED in out) == (K.T_PRED in ref and not m.inference_only)


def test_checkpoint_without_newer_model_keys_loads_with_defaults(mixed_graph, tmp_path):
    """A checkpoint written before ``model.use_edge_frame`` existed loads with its default."""
    model = get_model("tracegrad")
    save_model(model, tmp_path / "m.pt")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ckpt["model"]["use_edge_frame"] is True
    del ckpt["model"]["use_edge_frame"]
    torch.save(ckpt, tmp_path / "old.pt")
    back = load_model(tmp_path / "old.pt")
    assert back.model_config.use_edge_frame
    with torch.no_grad():
        assert (back(mixed_graph)[K.H_PRED] - model(mixed_graph)[K.H_PRED]).abs().max() == 0


def test_load_rejects_foreign_file(tmp_path):
    from tgkit.errors import TgkitError

    torch.save({"weights": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(TgkitError, match="not a tgkit model"):
        load_model(tmp_path / "x.pt")


def _loss(out, graph):
    target = graph[K.HAMILTONIAN]
    mask = out[K.H_MASK]
    loss = (out[K.H_PRED] - target).abs().pow(2)[mask].mean()
    if K.T_PRED in out:  # paper eq. 10-11: loss_Q + lambda NoGrad(loss_Q / loss_T) loss_T
        bm = out[K.BLOCK_MASK]
        loss_t = (out[K.T_PRED] - out[K.T_LABEL])[bm].pow(2).mean()
        loss = loss + 0.3 * (loss / loss_t).detach() * loss_t
    return loss


def _adam_steps(model, graph: dict, steps: int) -> list[float]:
    """Losses of ``steps`` Adam steps (lr 1e-2) on one graph."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = _loss(model(graph), graph)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
@pytest.mark.parametrize("setup", SETUPS)
def test_trains_with_falling_loss(setup, spinful, carbon_graph, carbon_soc_graph):
    graph = carbon_soc_graph if spinful else carbon_graph
    model = copy.deepcopy(get_model(setup, spinful)).train()
    losses = _adam_steps(model, graph, 10)
    assert losses[-1] < 0.7 * losses[0]
    if setup in ("grad", "tracegrad"):  # second-order path: s_nonlin gets gradients from H
        w = model.node_grads[0].s_nonlin[0].weight
        assert w.grad is not None and w.grad.abs().sum() > 0


def test_trace_labels_of_soc_targets_are_su2_invariant(carbon_soc_graph, basis):
    g = carbon_soc_graph
    t = trace_labels(g[K.HAMILTONIAN], basis)
    for rot in rotations():
        d = basis_rotation(basis, rot, spinful=True)
        t_r = trace_labels(d @ g[K.HAMILTONIAN] @ d.conj().T, basis)
        assert (t_r - t).abs().max() <= TOL * t.abs().max()


SHIPPED = Path(__file__).resolve().parents[2] / "datasets" / "graphene-8"


@pytest.mark.skipif(not (SHIPPED / "0000" / "hamiltonians.h5").exists(),
                    reason="shipped CP2K dataset not built")
@pytest.mark.parametrize("setup", SETUPS)
def test_trains_on_shipped_graphene(setup):
    """CP2K graphene (8 atoms, 13 orbitals, 7 A pairs): a tiny model's loss falls."""
    from tgkit.config import TraceGradConfig
    from tgkit.data.deeph import read_structure
    from tgkit.data.graph import structure_to_graph
    from tgkit.irreps import OrbitalBasis
    from tgkit.nn import HamiltonianModel

    from .conftest import TINY, TINY_TG

    s = read_structure(SHIPPED / "0000")
    basis = OrbitalBasis({6: s.orbital_types[0]})
    graph = structure_to_graph(s, basis, dtype=torch.float32)
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, cutoff=7.2, avg_num_neighbors=50.0)
    model = HamiltonianModel(basis, False, cfg, TraceGradConfig(setup=setup, **TINY_TG)).train()
    losses = _adam_steps(model, graph, 8)
    assert losses[-1] < 0.85 * losses[0]  # on-site blocks reach 17 eV: a slow start


@pytest.mark.parametrize("spinful", [False, True], ids=["spinless", "soc"])
@pytest.mark.parametrize("setup", SETUPS)
def test_edge_frame_path_equals_e3nn_path(setup, spinful, mixed_graph):
    """The default edge-frame convolutions give e3nn's tensor-product model, every setup."""
    from tgkit.nn import HamiltonianModel

    model = get_model(setup, spinful)
    assert model.model_config.use_edge_frame
    slow = HamiltonianModel(
        model.basis, spinful, dataclasses.replace(model.model_config, use_edge_frame=False),
        model.tracegrad_config, dtype=torch.float64).eval()
    slow.load_state_dict(model.state_dict())  # same parameters either way
    with torch.no_grad():
        fast = model(mixed_graph)
        ref = slow(mixed_graph)
    for key in (K.H_PRED, K.T_PRED):
        if key in ref:
            assert ref[key].abs().max() > 1e-3
            assert (fast[key] - ref[key]).abs().max() <= TOL


@pytest.mark.parametrize("variant", [
    {"grad_where": "node"}, {"grad_where": "edge"}, {"grad_where": "last"},
    {"grad_norm": True}, {"grad_init": "zero"},
], ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()))
def test_grad_variants_are_equivariant(variant, mixed_graph):
    """Every tracegrad.* variant keeps O(3) equivariance (and trains its T decoder)."""
    from tgkit.nn import HamiltonianModel

    from .conftest import BASIS, TINY, TINY_TG

    torch.manual_seed(0)
    tg = TraceGradConfig(setup="tracegrad", **TINY_TG, **variant)
    model = HamiltonianModel(BASIS, False, TINY, tg, dtype=torch.float64).eval()
    with torch.no_grad():
        _assert_equivariant(model, mixed_graph, False)
    grads = [m for m in [*model.node_grads, *model.edge_grads] if isinstance(m, TraceGrad)]
    where = variant.get("grad_where", "both")
    expected = {"both": 4, "node": 2, "edge": 2, "last": 2}[where]
    assert len(grads) == expected


def test_zero_init_grad_starts_as_identity(mixed_graph):
    """grad_init=zero: v = 0 at initialisation, so o = f in every Grad module."""
    torch.manual_seed(0)
    f = torch.randn(5, TraceGrad("4x0e+2x1o+1x2e", 8, 16, 8).irreps_in.dim, dtype=torch.float64)
    tg = TraceGrad("4x0e+2x1o+1x2e", 8, 16, 8, zero_init=True).double()
    o, _ = tg(f)
    assert torch.equal(o, f)
    default = TraceGrad("4x0e+2x1o+1x2e", 8, 16, 8).double()
    assert (default(f)[0] - f).abs().max() > 1e-6  # the default init does move f


def test_model_files_do_not_depend_on_e3nn_einsum_setting(mixed_graph, tmp_path):
    """e3nn's compiled graphs carry constants in state_dict only with einsum optimisation on:
    a file written under either setting loads under the other, with the same predictions."""
    import e3nn

    from tgkit.nn import HamiltonianModel

    from .conftest import BASIS, TINY, TINY_TG

    before = e3nn.get_optimization_defaults()
    try:
        for write, read in ((True, False), (False, True)):
            e3nn.set_optimization_defaults(optimize_einsums=write)
            torch.manual_seed(0)
            m = HamiltonianModel(BASIS, False, TINY, TraceGradConfig(setup="tracegrad", **TINY_TG),
                                 dtype=torch.float64).export_inference()
            save_model(m, tmp_path / f"{write}.pt")
            e3nn.set_optimization_defaults(optimize_einsums=read)
            loaded = load_model(tmp_path / f"{write}.pt")
            with torch.no_grad():
                diff = (loaded(mixed_graph)[K.H_PRED] - m(mixed_graph)[K.H_PRED]).abs().max()
            assert diff <= 1e-12
    finally:
        e3nn.set_optimization_defaults(**before)
