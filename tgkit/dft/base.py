"""The interface shared by DFT backends, pair truncation and compact DeepH writing.

A backend turns one :class:`ase.Atoms` into a :class:`DFTResult`: the *full* real-space
Hamiltonian and overlap blocks (every pair the DFT code kept, OpenMX orbital order, eV) plus
the DFT code's own eigenvalues on its SCF mesh and along a path off the mesh. The builder
(:func:`tgkit.dft.build_structure`) then truncates to a pair cutoff, measures what
the truncation costs in band energies, and writes the DeepH directory with a ``dft_bands.json``
that :func:`tgkit.dft.check.check_directory` later compares against.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tgkit.data.deeph import H_FILE, S_FILE, Key, Structure, format_key
from tgkit.physics.bands import BandSolver

BANDS_FILE = "dft_bands.json"
HARTREE_EV = 27.211386245988  # CODATA 2018, the value CP2K 2023 uses


@dataclass
class ReferenceBands:
    """Eigenvalues the DFT code printed itself, eV.

    Attributes:
        kpoints: (K, 3) fractional reciprocal coordinates (units of the cell's b vectors).
        eigenvalues: (K, nb) the lowest ``nb`` eigenvalues at each k, ascending.
        kind: ``"mesh"`` (the SCF k mesh) or ``"path"`` (off the mesh).
    """

    kpoints: np.ndarray
    eigenvalues: np.ndarray
    kind: str

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "kpoints": np.asarray(self.kpoints).tolist(),
            "eigenvalues": np.asarray(self.eigenvalues).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ReferenceBands:
        return cls(np.asarray(d["kpoints"], float), np.asarray(d["eigenvalues"], float), d["kind"])


@dataclass
class DFTResult:
    """What a backend returns for one structure (nothing on disk is needed afterwards).

    Attributes:
        structure: all blocks the code kept (OpenMX order, eV), ``fermi_level`` set.
        references: the code's own band energies (mesh and path).
        meta: provenance (code, version, basis, settings, wall time) for ``info.json``.
    """

    structure: Structure
    references: list[ReferenceBands] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class Backend(ABC):
    """A DFT code that produces real-space H(R) and S(R) blocks for periodic structures."""

    name: str = "backend"

    @abstractmethod
    def compute(self, atoms, workdir: str | os.PathLike) -> DFTResult:
        """Run the code on ``atoms`` inside ``workdir`` (created; the caller deletes it)."""

    def check_available(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Raise a :class:`~tgkit.errors.TgkitError` saying how to install the code if missing."""


# --------------------------------------------------------------------------- truncation


def pair_distances(structure: Structure, keys: list[Key]) -> np.ndarray:
    """(E,) |tau_j + R.L - tau_i| for each key."""
    return np.linalg.norm(structure.edge_vectors(keys), axis=1)


def truncate(structure: Structure, cutoff: float | None) -> Structure:
    """A copy keeping only pairs with distance < ``cutoff`` Angstrom (None keeps all).

    The distance depends only on the pair geometry, so (i, j, R) and (j, i, -R) go together
    and hermiticity survives; on-site blocks (distance 0) are always kept.
    """
    if cutoff is None:
        return structure
    keys = sorted(structure.hamiltonians)
    keep = [k for k, d in zip(keys, pair_distances(structure, keys), strict=False) if d < cutoff]
    ovl = structure.overlaps
    return Structure(
        numbers=structure.numbers,
        lattice=structure.lattice,
        positions=structure.positions,
        orbital_types=structure.orbital_types,
        hamiltonians={k: structure.hamiltonians[k] for k in keep},
        overlaps=None if ovl is None else {k: ovl[k] for k in keep if k in ovl},
        spinful=structure.spinful,
        fermi_level=structure.fermi_level,
        name=structure.name,
        info=dict(structure.info),
    )


# --------------------------------------------------------------------------- bands


EXACT_OVERLAP_THRESHOLD = 1e-12


def band_energies(structure: Structure, kpts: np.ndarray) -> np.ndarray:
    """(K, n) eigenvalues of H(k) c = e S(k) c from the stored blocks, eV, ascending.

    The exact generalized problem: the shared solver of :mod:`tgkit.physics.bands` with its
    overlap projection only for numerically null directions (1e-12), so stored blocks are
    judged against the DFT code's eigenvalues without any regularisation.
    """
    solver = BandSolver(structure, overlap_threshold=EXACT_OVERLAP_THRESHOLD)
    return solver.bands(np.atleast_2d(kpts), solver="dense").energies


def band_error(
    structure: Structure | None,
    ref: ReferenceBands,
    window: float | None,
    fermi: float | None,
    energies: np.ndarray | None = None,
) -> float:
    """Max |e_stored - e_ref| over k and the reference's bands (within E_F +- window if set).

    ``energies`` (K, n): precomputed :func:`band_energies` of ``structure`` at ``ref.kpoints``.
    """
    if energies is None:
        energies = band_energies(structure, ref.kpoints)
    ev = energies[:, : ref.eigenvalues.shape[1]]
    diff = np.abs(ev - ref.eigenvalues)
    if window is not None and fermi is not None:
        mask = np.abs(ref.eigenvalues - fermi) <= window
        diff = diff[mask]
    return float(diff.max(initial=0.0))


# --------------------------------------------------------------------------- writing


def compress_h5(path: Path, level: int = 9) -> None:
    """Rewrite an HDF5 block file with gzip + shuffle (lossless; h5py reads it unchanged)."""
    tmp = path.with_name(f".{path.name}.gz.tmp")
    with h5py.File(path, "r") as src, h5py.File(tmp, "w") as dst:
        for key in src.keys():
            arr = src[key][()]
            dst.create_dataset(
                key, data=arr, compression="gzip", compression_opts=level, shuffle=True
            )
    os.replace(tmp, path)


def write_bands(path: Path, refs: list[ReferenceBands], extra: dict) -> None:
    """Write ``dft_bands.json``: the code's own eigenvalues plus truncation measurements."""
    doc = dict(extra)
    doc["references"] = [r.to_dict() for r in refs]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def compress_directory(d: Path) -> None:
    for name in (H_FILE, S_FILE):
        if (d / name).exists():
            compress_h5(d / name)


__all__ = [
    "BANDS_FILE",
    "HARTREE_EV",
    "Backend",
    "DFTResult",
    "ReferenceBands",
    "band_energies",
    "band_error",
    "compress_directory",
    "format_key",
    "truncate",
    "write_bands",
]
