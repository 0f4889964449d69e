"""Splits from a seed, from explicit lists and from the paper's manifests."""

from __future__ import annotations

import pytest

from tgkit.data.splits import (
    PAPER_SPLITS,
    Split,
    split_by_seed,
    split_from_lists,
    split_from_manifest,
)
from tgkit.errors import TgkitError

NAMES = [f"s{k:03d}" for k in range(20)]


def test_seed_split_is_deterministic_and_disjoint():
    a = split_by_seed(NAMES, (0.6, 0.2, 0.2), seed=1)
    b = split_by_seed(list(reversed(NAMES)), (0.6, 0.2, 0.2), seed=1)
    assert a == b
    assert (len(a.train), len(a.val), len(a.test)) == (12, 4, 4)
    assert set(a.train) | set(a.val) | set(a.test) == set(NAMES)
    assert not set(a.train) & set(a.test)
    assert split_by_seed(NAMES, seed=2) != a


def test_twisted_go_to_test_only():
    s = split_by_seed(NAMES, seed=0, twisted=["s000", "s001"])
    assert s.test_twisted == ("s000", "s001")
    assert "s000" not in s.train + s.val + s.test


def test_explicit_lists_are_checked():
    s = split_from_lists(NAMES, {"train": NAMES[:10], "val": NAMES[10:15], "test": NAMES[15:]})
    assert len(s.train) == 10
    with pytest.raises(TgkitError, match="both"):
        split_from_lists(NAMES, {"train": NAMES[:10], "val": NAMES[9:15]})
    with pytest.raises(TgkitError, match="not in the dataset"):
        split_from_lists(NAMES, {"train": ["x"]})


def test_manifest_sizes_and_checks():
    names = [f"m{k:03d}" for k in range(60 + 20 + 20 + 9)]
    tw = names[-9:]
    with pytest.raises(TgkitError, match="expects 300"):
        split_from_manifest("BG", names, twisted=tw)
    assert PAPER_SPLITS["BG"] == (180, 60, 60, 9)
    names = [f"m{k:03d}" for k in range(300 + 9)]
    s = split_from_manifest("bg", names, twisted=names[-9:], seed=3)
    assert (len(s.train), len(s.val), len(s.test), len(s.test_twisted)) == (180, 60, 60, 9)
    with pytest.raises(TgkitError, match="unknown manifest"):
        split_from_manifest("XX", names)


def test_json_round_trip(tmp_path):
    s = split_by_seed(NAMES, seed=0)
    s.to_json(tmp_path / "split.json")
    assert Split.from_json(tmp_path / "split.json") == s
