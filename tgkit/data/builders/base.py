"""The interface shared by DFT backends, pair truncation and compact DeepH writing.

A backend turns one :class:`ase.Atoms` into a :class:`DFTResult`: the *full* real-space
Hamiltonian and overlap blocks (every pair the DFT code kept, OpenMX orbital order, eV) plus
the DFT code's own eigenvalues on its SCF mesh and along a path off the mesh. The builder
(:func:`tgkit.data.builders.build_structure`) then truncates to a pair cutoff, measures what
the truncation costs in band energies, and writes the DeepH directory with a ``dft_bands.json``
that :func:`tgkit.data.check.check_directory` later compares against.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.linalg

from tgkit.data.deeph import H_FILE, S_FILE, Key, Structure, format_key

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


def _orbital_offsets(structure: Structure) -> np.ndarray:
    n = [structure.num_orbitals(a) for a in range(structure.num_atoms)]
    return np.concatenate([[0], np.cumsum(n)])


def bloch_matrix(
    structure: Structure, blocks: dict[Key, np.ndarray], kpts: np.ndarray, spin_factor: int = 1
) -> np.ndarray:
    """(K, n, n) sum_R M(R) exp(i 2 pi k.R), k fractional; ``spin_factor`` 2 for SOC blocks."""
    off = _orbital_offsets(structure) * spin_factor
    n = int(off[-1])
    kpts = np.atleast_2d(np.asarray(kpts, dtype=float))
    out = np.zeros((len(kpts), n, n), dtype=np.complex128)
    if spin_factor == 1:
        for (rx, ry, rz, i, j), b in blocks.items():
            phase = np.exp(2j * np.pi * (kpts @ np.array([rx, ry, rz], dtype=float)))
            out[:, off[i] : off[i + 1], off[j] : off[j + 1]] += phase[:, None, None] * b
        return out
    # spin-major blocks [[uu, ud], [du, dd]] go to the global spin-major matrix
    base = _orbital_offsets(structure)
    nb = int(base[-1])
    for (rx, ry, rz, i, j), b in blocks.items():
        phase = np.exp(2j * np.pi * (kpts @ np.array([rx, ry, rz], dtype=float)))
        ni, nj = base[i + 1] - base[i], base[j + 1] - base[j]
        for si in range(2):
            for sj in range(2):
                sub = b[si * ni : (si + 1) * ni, sj * nj : (sj + 1) * nj]
                r0, c0 = si * nb + base[i], sj * nb + base[j]
                out[:, r0 : r0 + ni, c0 : c0 + nj] += phase[:, None, None] * sub
    return out


def band_energies(structure: Structure, kpts: np.ndarray) -> np.ndarray:
    """(K, n) eigenvalues of H(k) c = e S(k) c from the stored blocks, eV, ascending."""
    spin = 2 if structure.spinful else 1
    hk = bloch_matrix(structure, structure.hamiltonians, kpts, spin)
    if structure.overlaps is None:
        sk = None
    else:
        s1 = bloch_matrix(structure, structure.overlaps, kpts, 1)
        sk = s1 if spin == 1 else np.stack([scipy.linalg.block_diag(s, s) for s in s1])
    out = []
    for k in range(len(hk)):
        h = 0.5 * (hk[k] + hk[k].conj().T)
        if sk is None:
            out.append(scipy.linalg.eigvalsh(h))
        else:
            s = 0.5 * (sk[k] + sk[k].conj().T)
            out.append(scipy.linalg.eigh(h, s, eigvals_only=True))
    return np.asarray(out)


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
    "bloch_matrix",
    "compress_directory",
    "format_key",
    "truncate",
    "write_bands",
]
