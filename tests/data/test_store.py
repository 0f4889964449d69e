"""The HDF5 graph cache: exact blocks, atomic writes, lazy handles that survive workers."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tgkit import keys as K
from tgkit.data.deeph import write_structure
from tgkit.data.graph import collate, graph_blocks
from tgkit.data.store import GraphDataset, build_cache
from tgkit.errors import DeepHFormatError, TgkitError


@pytest.fixture()
def tree(carbon, mixed, tmp_path):
    write_structure(carbon, tmp_path / "data" / "a")
    write_structure(mixed, tmp_path / "data" / "b")
    return tmp_path / "data"


def test_cache_reproduces_blocks_exactly(tree, carbon, mixed, tmp_path):
    path = build_cache(tree, tmp_path / "cache.h5", progress=False)
    ds = GraphDataset(path)
    assert ds.names == ["a", "b"] and len(ds) == 2
    assert ds.basis.dim == 13
    for g, s in zip(ds, [carbon, mixed], strict=True):
        back = graph_blocks(g, ds.basis)
        assert set(back) == set(s.hamiltonians)
        for k, blk in s.hamiltonians.items():
            np.testing.assert_array_equal(back[k], blk)
        over = graph_blocks(g, ds.basis, K.OVERLAP)
        for k, blk in s.overlaps.items():
            np.testing.assert_array_equal(over[k], blk)


def test_float32_view_and_subset(tree, tmp_path):
    path = build_cache(tree, tmp_path / "cache.h5", progress=False)
    ds = GraphDataset(path, dtype=torch.float32).subset(["b"])
    g = ds[0]
    assert g[K.HAMILTONIAN].dtype == torch.float32 and g[K.EDGE_INDEX].dtype == torch.int64
    assert g[K.STRUCTURE_ID].item() == 1  # id in the whole cache, stable across subsets
    with pytest.raises(TgkitError, match="no structure named 'zz'"):
        ds.subset(["zz"])


def test_dataset_pickles_without_handle_and_works_in_workers(tree, tmp_path):
    ds = GraphDataset(build_cache(tree, tmp_path / "cache.h5", progress=False))
    ds[0]  # opens the handle
    assert ds._file is not None
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None
    torch.testing.assert_close(clone[1][K.HAMILTONIAN], ds[1][K.HAMILTONIAN])
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    (batch,) = list(loader)
    assert batch[K.NUM_NODES].tolist() == [3, 4]


def test_failed_build_leaves_no_cache(tree, tmp_path):
    (tree / "b" / "lat.dat").write_text("garbage\n")
    out = tmp_path / "cache.h5"
    with pytest.raises(DeepHFormatError, match=r"lat\.dat"):
        build_cache(tree, out, progress=False)
    assert not out.exists() and not (tmp_path / "cache.h5.tmp").exists()


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(TgkitError, match="tgkit preprocess"):
        GraphDataset(tmp_path / "nope.h5")


def test_cutoff_cache_for_structures_without_hamiltonians(tree, tmp_path):
    for d in tree.iterdir():
        (d / "hamiltonians.h5").unlink()
    ds = GraphDataset(build_cache(tree, tmp_path / "c.h5", cutoff=4.5, progress=False))
    g = ds[1]
    assert K.HAMILTONIAN not in g and g[K.EDGE_INDEX].shape[1] > 4


def test_cache_fingerprint_detects_changed_sources(tree, tmp_path):
    from tgkit.config import config_from_dict
    from tgkit.data.store import cache_is_current
    from tgkit.train.run import prepare_cache

    cfg = config_from_dict({"data": {"path": str(tree)}})
    cache = prepare_cache(cfg, tmp_path / "run")
    assert cache_is_current(cache, tree)
    stamp = cache.stat().st_mtime_ns
    h = tree / "a" / "hamiltonians.h5"
    h.touch()  # new mtime, same bytes: still current, not rebuilt
    assert cache_is_current(cache, tree)
    assert prepare_cache(cfg, tmp_path / "run").stat().st_mtime_ns == stamp
    with h5py.File(h, "a") as f:  # the source data changes: the cache is stale and rebuilt
        for key in f:
            f[key][...] = f[key][()] * 1.5
    assert not cache_is_current(cache, tree)
    prepare_cache(cfg, tmp_path / "run")
    assert cache_is_current(cache, tree)
    ds = GraphDataset(cache)
    assert ds.names == ["a", "b"]
    (tree / "a" / "info.json").unlink()  # a source file disappears
    assert not cache_is_current(cache, tree)


def test_cache_matches_source_and_edge_rule(tree, tmp_path):
    from tgkit.data.store import cache_matches

    keys = build_cache(tree, tmp_path / "keys.h5", progress=False)
    radius = build_cache(tree, tmp_path / "radius.h5", cutoff=4.5, progress=False)
    assert cache_matches(keys, tree) and not cache_matches(keys, tree, cutoff=4.5)
    assert cache_matches(radius, tree, cutoff=4.5) and not cache_matches(radius, tree)
    assert not cache_matches(keys, tree / "a")  # another source
    assert not cache_matches(tmp_path / "missing.h5", tree)
