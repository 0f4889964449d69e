"""Physical and format sanity checks of DeepH data, applied when a directory is read.

Every check raises :class:`tgkit.errors.DeepHFormatError` naming the file (and the key, with
1-based atom indices as stored in the file) and the problem, so the CLI prints one line.
The thresholds are module constants; the block bound can be raised per call or with the
environment variable ``TGKIT_MAX_BLOCK_EV`` (e.g. for all-electron data with deep cores).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from tgkit.errors import DeepHFormatError
from tgkit.irreps import basis_conflict

MAX_Z = 118  # heaviest known element (Og)
MIN_ATOM_DISTANCE = 0.5  # Angstrom; closer atoms (periodic images included) are an error
MAX_COORDINATE = 1e5  # Angstrom; a lattice vector or position beyond this is an error
MIN_CELL_VOLUME = 1.0  # Angstrom^3; smaller cells (or singular lattices) are an error
MIN_CELL_SHAPE = 1e-6  # |det L| / (|a||b||c|): below this the lattice vectors are degenerate
MAX_BLOCK_VALUE = 1e4  # eV; |H_ij(R)| or |S_ij(R)| entries above this are an error
MAX_BLOCK_ENV = "TGKIT_MAX_BLOCK_EV"


def max_block_value(override: float | None = None) -> float:
    """The bound on |block entries|: ``override``, else ``$TGKIT_MAX_BLOCK_EV``, else 1e4 eV."""
    if override is not None:
        return float(override)
    raw = os.environ.get(MAX_BLOCK_ENV)
    if raw is None:
        return MAX_BLOCK_VALUE
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0:
        raise DeepHFormatError(f"${MAX_BLOCK_ENV}", f"must be a positive number, got {raw!r}")
    return value


def read_text(path: Path) -> str:
    """A text file's content; missing, unreadable or non-UTF-8 files are one-line errors."""
    if not path.exists():
        raise DeepHFormatError(path, "missing file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DeepHFormatError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise DeepHFormatError(path, f"cannot read ({exc.strerror})") from None


def atomic_numbers(path: Path, values: np.ndarray) -> np.ndarray:
    """(N,) int64 from element.dat's floats: integers in 1..118, else an error."""
    values = values.reshape(-1)
    for n, z in enumerate(values.tolist(), start=1):
        if z != int(z):
            raise DeepHFormatError(path, f"line {n}: atomic number {z:g} is not an integer")
        if not 1 <= z <= MAX_Z:
            raise DeepHFormatError(path, f"line {n}: atomic number {int(z)} is not in 1..{MAX_Z}")
    return values.astype(np.int64)


def species_basis(path: Path, numbers: np.ndarray, types: list[list[int]]
                  ) -> dict[int, tuple[int, ...]]:
    """``{Z: orbital_types}``; an element with two bases is an error naming both lines."""
    out: dict[int, tuple[int, ...]] = {}
    first: dict[int, int] = {}
    for n, (z, ls) in enumerate(zip(numbers.tolist(), types, strict=True), start=1):
        if (have := basis_conflict(out, z, ls)) is not None:
            raise DeepHFormatError(
                path, f"line {n}: element Z={z} has basis {tuple(ls)} but line {first[z]} "
                f"gives it {have} (one basis per element)")
        out.setdefault(z, tuple(ls))
        first.setdefault(z, n)
    return out


def lattice(path: Path, lat: np.ndarray) -> None:
    """(3, 3) rows: finite, not huge, non-singular and of a sane volume."""
    if np.abs(lat).max() > MAX_COORDINATE:
        raise DeepHFormatError(path, f"lattice entry {np.abs(lat).max():.3g} Angstrom exceeds "
                               f"{MAX_COORDINATE:g}")
    lengths = np.linalg.norm(lat, axis=1)
    if lengths.min() == 0:
        raise DeepHFormatError(path, f"lattice vector {int(np.argmin(lengths)) + 1} is zero")
    vol = abs(float(np.linalg.det(lat)))
    if vol < MIN_CELL_VOLUME or vol / float(np.prod(lengths)) < MIN_CELL_SHAPE:
        raise DeepHFormatError(path, f"singular or degenerate lattice (cell volume {vol:.3g} "
                               "Angstrom^3; are two lattice vectors collinear?)")


def positions(path: Path, pos: np.ndarray, lat: np.ndarray,
              min_distance: float = MIN_ATOM_DISTANCE) -> None:
    """(N, 3) positions: finite, not huge, no two atoms (or images) closer than min_distance."""
    if np.abs(pos).max() > MAX_COORDINATE:
        raise DeepHFormatError(path, f"position entry {np.abs(pos).max():.3g} Angstrom exceeds "
                               f"{MAX_COORDINATE:g}")
    frac = pos @ np.linalg.inv(lat)
    wrapped = (frac - np.floor(frac)) @ lat
    # images within enough cells that every pair closer than min_distance is seen
    heights = abs(np.linalg.det(lat)) / np.linalg.norm(np.cross(lat[[1, 2, 0]], lat[[2, 0, 1]]),
                                                       axis=1)
    reach = np.ceil(min_distance / heights).astype(int)
    shifts = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"),
                      -1).reshape(-1, 3)
    n = len(wrapped)
    images = (wrapped[None, :, :] + (shifts @ lat)[:, None, :]).reshape(-1, 3)
    pairs = cKDTree(wrapped).query_ball_tree(cKDTree(images), min_distance)
    zero = int(np.flatnonzero((shifts == 0).all(1))[0])
    for i, near in enumerate(pairs):
        for k in near:
            s, j = divmod(k, n)
            if s == zero and j == i:
                continue
            d = float(np.linalg.norm(images[k] - wrapped[i]))
            what = f"atoms {i + 1} and {j + 1}" if j != i else f"atom {i + 1} and its image"
            raise DeepHFormatError(path, f"{what} are {d:.3g} Angstrom apart (closer than "
                                   f"{min_distance:g}; duplicated atom?)")


def block_values(path: Path, key: str, arr: np.ndarray, bound: float) -> None:
    """Entries finite and at most ``bound`` in magnitude."""
    if not np.all(np.isfinite(arr)):
        raise DeepHFormatError(path, "block contains NaN or inf", key=key)
    big = float(np.abs(arr).max(initial=0.0))
    if big > bound:
        raise DeepHFormatError(path, f"block entry of magnitude {big:.3g} exceeds {bound:g} eV "
                               f"(implausible; raise it with ${MAX_BLOCK_ENV})", key=key)


def info(path: Path) -> dict[str, Any]:
    """info.json as a dict, with ``isspinful``/``twisted`` bools and a finite ``fermi_level``."""
    try:
        doc = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DeepHFormatError(path, f"invalid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DeepHFormatError(path, "expected a JSON object")
    for key in ("isspinful", "twisted"):
        if key in doc and not isinstance(doc[key], bool):
            raise DeepHFormatError(path, f"must be true or false, got {doc[key]!r}", key=key)
    fermi = doc.get("fermi_level")
    if fermi is not None:
        if isinstance(fermi, bool) or not isinstance(fermi, (int, float)):
            raise DeepHFormatError(path, f"must be a number (eV), got {fermi!r}",
                                   key="fermi_level")
        if not math.isfinite(fermi) or abs(fermi) > MAX_BLOCK_VALUE:
            raise DeepHFormatError(path, f"implausible value {fermi!r} eV", key="fermi_level")
    return doc
