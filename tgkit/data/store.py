"""An HDF5 cache of processed graphs, and a lazy torch Dataset over it.

Layout of a cache file::

    /                attrs: format, basis (JSON {Z: orbital_types}), spinful, cutoff, source,
                     names, skipped (JSON {name: reason} of structures left out by skip_bad)
    /sources         JSON {relative path: [size, mtime_ns, sha256]} of every source file, the
                     fingerprint that :func:`cache_is_current` compares (stale caches rebuild)
    /graphs/<name>/  one group per structure, one dataset per graph field (see tgkit.keys)

Blocks are stored in the universal basis in e3nn order, in float64/complex128, gzip
compressed (padding zeros cost almost nothing), so reading the cache back reproduces every
block of the DeepH files bit for bit (:func:`tgkit.data.graph.graph_blocks` inverts it).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from tgkit import keys as K
from tgkit.data.deeph import (
    H_FILE,
    INFO_FILE,
    REQUIRED_FILES,
    S_FILE,
    find_structures,
    read_species_basis,
    read_structure,
)
from tgkit.data.graph import Graph, structure_to_graph
from tgkit.errors import DeepHFormatError, TgkitError
from tgkit.irreps import OrbitalBasis, basis_conflict

CACHE_FORMAT = "tgkit-graphs-1"
_STORED = (
    K.POSITIONS,
    K.ATOMIC_NUMBERS,
    K.SPECIES,
    K.LATTICE,
    K.EDGE_INDEX,
    K.CELL_SHIFT,
    K.EDGE_VEC,
    K.REVERSE_EDGE,
    K.FERMI_LEVEL,
    K.NUM_NODES,
    K.NUM_EDGES,
    K.HAMILTONIAN,
    K.OVERLAP,
)


SOURCE_FILES = (*REQUIRED_FILES, INFO_FILE, H_FILE, S_FILE)


def dataset_basis(dirs: Iterable[Path], skipped: dict[Path, str] | None = None
                  ) -> OrbitalBasis:
    """The universal basis of a set of structure directories (reads only the small files).

    An element with two different bases in two directories is an error naming both. With
    ``skipped`` (a dict), unreadable directories are recorded there instead of raising.
    """
    merged: dict[int, tuple[int, ...]] = {}
    where: dict[int, Path] = {}
    for d in dirs:
        try:
            basis = read_species_basis(d)
            for z, ls in basis.items():
                if (have := basis_conflict(merged, z, ls)) is not None:
                    raise DeepHFormatError(
                        d / "orbital_types.dat", f"element Z={z} has basis {ls} but "
                        f"{where[z] / 'orbital_types.dat'} gives it {have} "
                        "(one basis per element in a dataset)")
        except DeepHFormatError as exc:
            if skipped is None:
                raise
            skipped[d] = str(exc)
            continue
        for z, ls in basis.items():
            merged.setdefault(z, ls)
            where.setdefault(z, d)
    if not merged:
        raise DeepHFormatError(next(iter(skipped), "data") if skipped else "data",
                               "no readable structure")
    return OrbitalBasis(merged)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_fingerprint(root: str | os.PathLike, dirs: Iterable[Path] | None = None,
                       previous: dict[str, list] | None = None) -> dict[str, list]:
    """``{relative path: [size, mtime_ns, sha256]}`` of the DeepH files under ``root``.

    A file whose size and mtime equal its entry in ``previous`` keeps that entry's hash
    without being read again, so checking an unchanged dataset costs one ``stat`` per file.
    """
    root = Path(root)
    previous = previous or {}
    out: dict[str, list] = {}
    for d in find_structures(root) if dirs is None else dirs:
        for name in SOURCE_FILES:
            p = d / name
            if not p.is_file():
                continue
            st = p.stat()
            rel = str(p.relative_to(root)) if p != root else p.name
            old = previous.get(rel)
            same = old is not None and old[0] == st.st_size and old[1] == st.st_mtime_ns
            out[rel] = [st.st_size, st.st_mtime_ns, old[2] if same else _sha256(p)]
    return out


def cache_is_current(cache: str | os.PathLike, source: str | os.PathLike) -> bool:
    """Whether ``cache`` was built from ``source`` as its files are now (same names, hashes).

    Files touched without a change (new mtime, same content) still count as current.
    """
    try:
        with h5py.File(cache, "r") as f:
            if f.attrs.get("format") != CACHE_FORMAT or "sources" not in f:
                return False
            stored = json.loads(f["sources"][()])
    except (OSError, KeyError, ValueError):
        return False
    try:
        now = source_fingerprint(source, previous=stored)
    except DeepHFormatError:
        return False
    return {k: v[::2] for k, v in now.items()} == {k: v[::2] for k, v in stored.items()}


# the ``cutoff`` attribute of a cache whose edges are the hamiltonians.h5 keys (no radius)
_KEY_EDGES = -1.0


def cache_matches(cache: str | os.PathLike, source: str | os.PathLike,
                  cutoff: float | None = None) -> bool:
    """Whether ``cache`` is what :func:`build_cache` of ``source`` with ``cutoff`` would write
    now: the same source tree, the same edges (None: the hamiltonians.h5 keys) and no source
    file changed since (:func:`cache_is_current`). A missing or unreadable file does not.
    """
    want = _KEY_EDGES if cutoff is None else float(cutoff)
    try:
        with h5py.File(cache, "r") as f:
            same = (f.attrs.get("source") == str(Path(source).resolve())
                    and float(f.attrs["cutoff"]) == want)
    except (OSError, KeyError, ValueError):
        return False
    return same and cache_is_current(cache, source)


def _progress(items: Sequence, desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="structure")


def build_cache(
    root: str | os.PathLike,
    out: str | os.PathLike,
    basis: OrbitalBasis | None = None,
    cutoff: float | None = None,
    progress: bool = True,
    skip_bad: bool = False,
) -> Path:
    """Read every DeepH structure under ``root`` and write their graphs to ``out``.

    The file is written to ``out.tmp`` and renamed only when complete, so an error (bad input,
    Ctrl-C) never leaves a half-written cache where a reader would pick it up.

    Args:
        root: a structure directory or a tree of them.
        out: the cache file to write (``.h5``).
        basis: the universal basis; default the union of the structures' bases.
        cutoff: None takes edges from the hamiltonians.h5 keys; a radius builds them from a
            neighbour list (structures without Hamiltonians, for prediction).
        progress: show a progress bar.
        skip_bad: leave out structures that fail validation, listing them (with the count)
            on stderr and in the cache's ``skipped`` attribute, instead of stopping at the
            first one. An element with two bases in the dataset stays an error.

    Returns:
        The path of the cache.
    """
    dirs = find_structures(root)
    skipped: dict[Path, str] = {}
    fingerprint = source_fingerprint(root, dirs)
    basis = dataset_basis(dirs, skipped if skip_bad else None) if basis is None else basis
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    spinful_seen: set[bool] = set()
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CACHE_FORMAT
            f.attrs["basis"] = json.dumps(basis.to_dict())
            f.attrs["cutoff"] = _KEY_EDGES if cutoff is None else float(cutoff)
            f.attrs["source"] = str(Path(root).resolve())
            grp = f.create_group("graphs")
            names: list[str] = []
            for d in _progress([d for d in dirs if d not in skipped], "preprocess", progress):
                try:
                    s = read_structure(d, require_hamiltonian=cutoff is None)
                    g = structure_to_graph(s, basis, cutoff=cutoff)
                except DeepHFormatError as exc:
                    if not skip_bad:
                        raise
                    skipped[d] = str(exc)
                    continue
                spinful_seen.add(s.spinful)
                if len(spinful_seen) > 1:
                    raise DeepHFormatError(
                        d / INFO_FILE, "mixes spinful and spinless structures in one dataset",
                        key="isspinful")
                name = str(d.relative_to(root)) if d != Path(root) else d.name
                name = name.replace("/", "__")
                sub = grp.create_group(name)
                for field in _STORED:
                    if field in g:
                        arr = g[field].numpy()
                        opts = {"compression": "gzip", "shuffle": True} if arr.ndim == 3 else {}
                        sub.create_dataset(field, data=arr, **opts)
                sub.attrs["twisted"] = bool(s.info.get("twisted", False))
                sub.attrs["relpath"] = str(d.relative_to(root)) if d != Path(root) else "."
                names.append(name)
            if not names:
                raise DeepHFormatError(root, f"all {len(dirs)} structures are bad (skipped)")
            f.attrs["names"] = json.dumps(names)
            f.attrs["skipped"] = json.dumps({str(d): r for d, r in skipped.items()})
            f["sources"] = json.dumps(fingerprint)
            f.attrs["spinful"] = bool(spinful_seen.pop()) if spinful_seen else False
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if skipped:
        print(f"skipped {len(skipped)} of {len(dirs)} structure(s) (skip_bad):", file=sys.stderr)
        for reason in skipped.values():
            print(f"  {reason}", file=sys.stderr)
    return out


class GraphDataset(Dataset):
    """Graphs from a cache file, read lazily; picklable for DataLoader workers.

    The h5py handle opens on first access in each process and is dropped when the dataset is
    pickled (an open HDF5 handle cannot cross a fork/spawn safely).

    Args:
        path: a cache written by :func:`build_cache`.
        names: the structures to expose, in order (default: all, in cache order).
        dtype: float dtype of positions, vectors and blocks (complex follows it).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        names: Sequence[str] | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise TgkitError(f"{self.path}: cache file not found (run `tgkit preprocess` first)")
        if self.path.is_dir():
            raise TgkitError(f"{self.path}: a directory, expected a graph cache file")
        try:
            f = h5py.File(self.path, "r")
        except OSError:
            raise TgkitError(f"{self.path}: not an HDF5 file, so not a tgkit graph cache (pass a "
                             "DeepH directory tree or a cache from `tgkit preprocess`)") from None
        try:
            with f:
                if f.attrs.get("format") != CACHE_FORMAT:
                    raise TgkitError(f"{self.path}: not a tgkit graph cache ({CACHE_FORMAT})")
                self.basis = OrbitalBasis.from_dict(json.loads(f.attrs["basis"]))
                self.spinful = bool(f.attrs["spinful"])
                all_names = json.loads(f.attrs["names"])
                self.twisted = {n: bool(f["graphs"][n].attrs.get("twisted", False))
                                for n in all_names}
        except (KeyError, OSError, ValueError) as exc:
            raise TgkitError(f"{self.path}: corrupt graph cache ({type(exc).__name__}: "
                             f"{exc}); delete it and rerun `tgkit preprocess`") from None
        self.all_names = list(all_names)
        self._id = {n: k for k, n in enumerate(self.all_names)}  # stable id across subsets
        if names is None:
            names = all_names
        missing = sorted(set(names) - set(all_names))
        if missing:
            raise TgkitError(f"{self.path}: no structure named {missing[0]!r} in the cache")
        self.names = list(names)
        self.dtype = dtype
        self._file: h5py.File | None = None

    def subset(self, names: Sequence[str]) -> GraphDataset:
        """The same cache restricted to ``names``."""
        return GraphDataset(self.path, names, self.dtype)

    def source_dir(self, name: str) -> Path | None:
        """The DeepH directory a structure was read from, or None when it is gone (band errors
        need its overlaps and Fermi level, which the cache does not hold)."""
        with h5py.File(self.path, "r") as f:
            source = f.attrs.get("source")
            rel = f["graphs"][name].attrs.get("relpath", name.replace("__", "/"))
        d = Path(str(source)) / str(rel) if source else None
        return d if d is not None and d.is_dir() else None

    def num_edges(self) -> list[int]:
        """Edges of every exposed structure, read without loading any block."""
        with h5py.File(self.path, "r") as f:
            return [int(f["graphs"][n][K.NUM_EDGES][0]) for n in self.names]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, idx: int) -> Graph:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        grp = self._file["graphs"][self.names[idx]]
        cdtype = torch.complex128 if self.dtype == torch.float64 else torch.complex64
        g: Graph = {}
        for field, ds in grp.items():
            t = torch.from_numpy(np.asarray(ds[()]))
            if t.is_complex():
                t = t.to(cdtype)
            elif t.is_floating_point():
                t = t.to(self.dtype)
            g[field] = t
        g[K.STRUCTURE_ID] = torch.tensor([self._id[self.names[idx]]])
        return g

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
