"""An HDF5 cache of processed graphs, and a lazy torch Dataset over it.

Layout of a cache file::

    /                attrs: format, basis (JSON {Z: orbital_types}), spinful, cutoff, source
    /graphs/<name>/  one group per structure, one dataset per graph field (see tgkit.keys)

Blocks are stored in the universal basis in e3nn order, in float64/complex128, gzip
compressed (padding zeros cost almost nothing), so reading the cache back reproduces every
block of the DeepH files bit for bit (:func:`tgkit.data.graph.graph_blocks` inverts it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from tgkit import keys as K
from tgkit.data.deeph import find_structures, read_species_basis, read_structure
from tgkit.data.graph import Graph, structure_to_graph
from tgkit.errors import DeepHFormatError, TgkitError
from tgkit.irreps import OrbitalBasis

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


def dataset_basis(dirs: Iterable[Path]) -> OrbitalBasis:
    """The universal basis of a set of structure directories (reads only the small files)."""
    return OrbitalBasis.union(read_species_basis(d) for d in dirs)


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

    Returns:
        The path of the cache.
    """
    dirs = find_structures(root)
    basis = dataset_basis(dirs) if basis is None else basis
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    spinful_seen: set[bool] = set()
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CACHE_FORMAT
            f.attrs["basis"] = json.dumps(basis.to_dict())
            f.attrs["cutoff"] = -1.0 if cutoff is None else float(cutoff)
            f.attrs["source"] = str(Path(root).resolve())
            grp = f.create_group("graphs")
            names: list[str] = []
            for d in _progress(dirs, "preprocess", progress):
                s = read_structure(d, require_hamiltonian=cutoff is None)
                spinful_seen.add(s.spinful)
                if len(spinful_seen) > 1:
                    raise DeepHFormatError(
                        d, "mixes spinful and spinless structures in one dataset"
                    )
                name = str(d.relative_to(root)) if d != Path(root) else d.name
                name = name.replace("/", "__")
                g = structure_to_graph(s, basis, cutoff=cutoff)
                sub = grp.create_group(name)
                for field in _STORED:
                    if field in g:
                        arr = g[field].numpy()
                        opts = {"compression": "gzip", "shuffle": True} if arr.ndim == 3 else {}
                        sub.create_dataset(field, data=arr, **opts)
                sub.attrs["twisted"] = bool(s.info.get("twisted", False))
                sub.attrs["relpath"] = str(d.relative_to(root)) if d != Path(root) else "."
                names.append(name)
            f.attrs["names"] = json.dumps(names)
            f.attrs["spinful"] = bool(spinful_seen.pop()) if spinful_seen else False
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
        with h5py.File(self.path, "r") as f:
            if f.attrs.get("format") != CACHE_FORMAT:
                raise TgkitError(f"{self.path}: not a tgkit graph cache ({CACHE_FORMAT})")
            self.basis = OrbitalBasis.from_dict(json.loads(f.attrs["basis"]))
            self.spinful = bool(f.attrs["spinful"])
            all_names = json.loads(f.attrs["names"])
            self.twisted = {n: bool(f["graphs"][n].attrs.get("twisted", False)) for n in all_names}
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
