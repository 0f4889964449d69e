"""Train / validation / test splits: from a seed, from explicit lists, or from a named manifest.

The named manifests are the official sizes of the paper's six databases (its section 5).
Twisted samples go only to the test set, as in the paper.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tgkit.errors import TgkitError
from tgkit.io_utils import write_text


@dataclass(frozen=True)
class Split:
    """Structure names per subset. ``test_twisted`` is the paper's "t" subset of the test set."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    test_twisted: tuple[str, ...] = ()

    def to_json(self, path: str | os.PathLike) -> None:
        write_text(path, json.dumps({k: list(v) for k, v in asdict(self).items()}, indent=1))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Split:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise TgkitError(f"{path}: cannot read split file ({exc})") from None
        unknown = set(d) - {"train", "val", "test", "test_twisted"}
        if unknown:
            raise TgkitError(f"{path}: unknown split key(s) {sorted(unknown)}")
        return cls(**{k: tuple(v) for k, v in d.items()})


# database -> (train, val, test non-twisted, test twisted); paper section 5
PAPER_SPLITS: dict[str, tuple[int, int, int, int]] = {
    "MG": (270, 90, 90, 0),
    "MM": (300, 100, 100, 0),
    "BG": (180, 60, 60, 9),
    "BB": (231, 113, 113, 4),
    "BT": (204, 38, 12, 2),
    "BS": (231, 113, 113, 2),
}


def split_by_seed(
    names: Sequence[str],
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 42,
    twisted: Sequence[str] = (),
) -> Split:
    """Random split of the non-twisted names by ``fractions``; twisted names go to test.

    The same names and seed always give the same split, whatever order the names come in.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise TgkitError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    tw = set(twisted)
    pool = sorted(n for n in names if n not in tw)
    if not pool:
        raise TgkitError("no (non-twisted) structures to split")
    perm = np.random.default_rng(seed).permutation(len(pool))
    n_train = int(round(fractions[0] * len(pool)))
    n_val = int(round(fractions[1] * len(pool)))
    if n_train == 0:
        raise TgkitError(f"{len(pool)} structures leave no training set with fractions {fractions}")
    take = [pool[k] for k in perm]
    return Split(
        tuple(take[:n_train]), tuple(take[n_train:n_train + n_val]), tuple(take[n_train + n_val:]),
        tuple(sorted(tw & set(names))),
    )


def split_from_lists(names: Sequence[str], lists: Mapping[str, Sequence[str]]) -> Split:
    """A split given explicitly; every name must exist and appear in at most one subset."""
    known = set(names)
    seen: dict[str, str] = {}
    for subset, members in lists.items():
        if subset not in ("train", "val", "test", "test_twisted"):
            raise TgkitError(f"unknown split subset {subset!r}")
        for n in members:
            if n not in known:
                raise TgkitError(f"split {subset!r} names {n!r}, which is not in the dataset")
            if n in seen:
                raise TgkitError(f"{n!r} is in both {seen[n]!r} and {subset!r}")
            seen[n] = subset
    return Split(*(tuple(lists.get(k, ())) for k in ("train", "val", "test", "test_twisted")))


def split_from_manifest(
    database: str, names: Sequence[str], twisted: Sequence[str] = (), seed: int = 42
) -> Split:
    """The paper's official sizes for ``database`` (MG, MM, BG, BB, BT, BS), drawn by ``seed``.

    The dataset must hold exactly the official number of structures, twisted included, so a
    wrong or partial download is caught rather than silently split.
    """
    key = database.upper()
    if key not in PAPER_SPLITS:
        raise TgkitError(f"unknown manifest {database!r}; known: {', '.join(PAPER_SPLITS)}")
    n_tr, n_va, n_te, n_tw = PAPER_SPLITS[key]
    tw = sorted(set(twisted) & set(names))
    pool = sorted(set(names) - set(tw))
    if len(pool) != n_tr + n_va + n_te or len(tw) != n_tw:
        raise TgkitError(
            f"manifest {key} expects {n_tr + n_va + n_te} non-twisted + {n_tw} twisted structures, "
            f"the dataset has {len(pool)} + {len(tw)}"
        )
    perm = np.random.default_rng(seed).permutation(len(pool))
    take = [pool[k] for k in perm]
    return Split(
        tuple(take[:n_tr]), tuple(take[n_tr:n_tr + n_va]), tuple(take[n_tr + n_va:]), tuple(tw)
    )
