"""Read and write DeepH processed directories (one structure per directory).

Format (see ``shared/docs/deeph-format.md``): ``element.dat``, ``lat.dat`` (columns are lattice
vectors), ``site_positions.dat`` (columns are atoms), ``orbital_types.dat``, ``info.json``,
``hamiltonians.h5`` and optional ``overlaps.h5`` with keys ``"[Rx, Ry, Rz, i, j]"`` (1-based).
In memory, :class:`Structure` keeps rows-are-vectors arrays, 0-based keys and blocks in the
file's (OpenMX) order, so a read/write round trip is exact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from tgkit.data import validate
from tgkit.errors import DeepHFormatError
from tgkit.irreps import basis_conflict, num_orbitals

Key = tuple[int, int, int, int, int]  # (Rx, Ry, Rz, i, j), atoms 0-based

REQUIRED_FILES = ("element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat")
H_FILE, S_FILE, INFO_FILE = "hamiltonians.h5", "overlaps.h5", "info.json"
HERMITIAN_ATOL = 1e-6  # eV; DFT codes give ~1e-12, OpenMX's Julia writer copies exactly


@dataclass
class Structure:
    """One crystal with its Hamiltonian blocks, as stored in a DeepH directory.

    Attributes:
        numbers: (N,) atomic numbers.
        lattice: (3, 3) lattice vectors as rows, Angstrom.
        positions: (N, 3) cartesian positions, Angstrom.
        orbital_types: per atom, the l of each shell in file order.
        hamiltonians: ``{(Rx, Ry, Rz, i, j): block}``; (n_i, n_j) float, or (2n_i, 2n_j)
            complex spin-major when ``spinful``. OpenMX orbital order, eV.
        overlaps: same keys, (n_i, n_j) float, or None.
        spinful: SOC data (complex blocks).
        fermi_level: eV, or None when info.json does not give it.
        name: a label (the directory name when read).
        path: the directory it was read from ("" when built in memory), for error messages.
    """

    numbers: np.ndarray
    lattice: np.ndarray
    positions: np.ndarray
    orbital_types: list[list[int]]
    hamiltonians: dict[Key, np.ndarray]
    overlaps: dict[Key, np.ndarray] | None = None
    spinful: bool = False
    fermi_level: float | None = None
    name: str = ""
    info: dict = field(default_factory=dict)
    path: str = ""

    @property
    def num_atoms(self) -> int:
        return len(self.numbers)

    def num_orbitals(self, atom: int) -> int:
        return num_orbitals(self.orbital_types[atom])

    def species_basis(self) -> dict[int, tuple[int, ...]]:
        """``{Z: orbital_types}``; raises if one element carries two different bases."""
        out: dict[int, tuple[int, ...]] = {}
        for z, ls in zip(self.numbers.tolist(), self.orbital_types, strict=True):
            if (have := basis_conflict(out, z, ls)) is not None:
                raise DeepHFormatError(
                    self.name, f"element Z={z} has two orbital bases {have} and {tuple(ls)}"
                )
            out.setdefault(z, tuple(ls))
        return out

    def edge_vectors(self, keys: list[Key] | np.ndarray | None = None) -> np.ndarray:
        """(E, 3) tau_j + R.L - tau_i for the given keys (default: all H keys, sorted)."""
        keys = sorted(self.hamiltonians) if keys is None else keys
        k = np.asarray(keys, dtype=np.int64).reshape(-1, 5)
        return self.positions[k[:, 4]] + k[:, :3] @ self.lattice - self.positions[k[:, 3]]


# --------------------------------------------------------------------------- reading


def find_structures(root: str | os.PathLike) -> list[Path]:
    """All directories under ``root`` (itself included) that hold a DeepH structure, sorted."""
    root = Path(root)
    if not root.exists():
        raise DeepHFormatError(root, "no such directory")
    if not root.is_dir():
        raise DeepHFormatError(root, "is not a directory")
    # any directory holding a DeepH file is a structure, so a broken one (say, without its
    # hamiltonians.h5) fails when read instead of being skipped without a word
    found = sorted({p.parent for name in (*REQUIRED_FILES, H_FILE, S_FILE)
                    for p in root.rglob(name)})
    if not found:
        raise DeepHFormatError(root, f"empty: no DeepH structure ({H_FILE} or {S_FILE}) found")
    return found


def read_tree(root: str | os.PathLike, require_hamiltonian: bool = True) -> Iterator[Structure]:
    """Read every structure directory under ``root``, in sorted order."""
    for d in find_structures(root):
        yield read_structure(d, require_hamiltonian=require_hamiltonian)


def _loadtxt(path: Path, ndmin: int = 1) -> np.ndarray:
    text = validate.read_text(path)
    try:
        arr = np.loadtxt(text.splitlines(), ndmin=ndmin)
    except ValueError as exc:
        raise DeepHFormatError(path, f"not a table of numbers ({exc})") from None
    if not np.all(np.isfinite(arr)):
        raise DeepHFormatError(path, "contains NaN or inf")
    return arr


def _read_orbital_types(path: Path, num_atoms: int) -> list[list[int]]:
    lines = validate.read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) != num_atoms:
        raise DeepHFormatError(path, f"{len(lines)} lines but element.dat has {num_atoms} atoms")
    types: list[list[int]] = []
    for n, line in enumerate(lines, start=1):
        try:
            ls = [int(t) for t in line.split()]
        except ValueError:
            raise DeepHFormatError(path, f"line {n}: not a list of integers: {line!r}") from None
        if not ls:
            raise DeepHFormatError(path, f"line {n}: atom {n} has no orbitals")
        if any(l < 0 or l > 3 for l in ls):
            raise DeepHFormatError(path, f"line {n}: l values must be 0..3, got {ls}")
        types.append(ls)
    return types


def parse_key(path: Path | str, text: str) -> Key:
    """``"[Rx, Ry, Rz, i, j]"`` (1-based atoms) -> (Rx, Ry, Rz, i-1, j-1)."""
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        v = None
    if not (isinstance(v, list) and len(v) == 5 and all(type(x) is int for x in v)):
        raise DeepHFormatError(path, "malformed key: expected '[Rx, Ry, Rz, i, j]'", key=text)
    if v[3] < 1 or v[4] < 1:
        raise DeepHFormatError(path, "atom indices are 1-based and must be >= 1", key=text)
    return (v[0], v[1], v[2], v[3] - 1, v[4] - 1)


def format_key(key: Key) -> str:
    """(Rx, Ry, Rz, i, j) 0-based -> the file's ``"[Rx, Ry, Rz, i+1, j+1]"``."""
    rx, ry, rz, i, j = (int(k) for k in key)
    return f"[{rx}, {ry}, {rz}, {i + 1}, {j + 1}]"


def _read_blocks(
    path: Path, num_orb: list[int], spinful: bool, spin_factor: int,
    max_value: float | None = None,
) -> dict[Key, np.ndarray]:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DeepHFormatError(path, f"not a readable HDF5 file ({exc})") from None
    bound = validate.max_block_value(max_value)
    try:
        with f:
            return _read_open_blocks(f, path, num_orb, spinful, spin_factor, bound)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        # h5py raises these for damaged files (truncated, bytes flipped in its B-trees)
        raise DeepHFormatError(path, f"corrupt HDF5 file ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None


def _read_open_blocks(
    f: h5py.File, path: Path, num_orb: list[int], spinful: bool, spin_factor: int, bound: float
) -> dict[Key, np.ndarray]:
    blocks: dict[Key, np.ndarray] = {}
    for text in f.keys():
        key = parse_key(path, text)
        i, j = key[3], key[4]
        if i >= len(num_orb) or j >= len(num_orb):
            raise DeepHFormatError(
                path, f"atom index beyond the {len(num_orb)} atoms of element.dat", key=text
            )
        try:
            ds = f[text]
            if not isinstance(ds, h5py.Dataset):
                raise DeepHFormatError(path, "is a group, expected a dataset", key=text)
            arr = ds[()]
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
            raise DeepHFormatError(path, f"cannot read block ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                   key=text) from None
        expected = (spin_factor * num_orb[i], spin_factor * num_orb[j])
        if arr.shape != expected:
            raise DeepHFormatError(
                path,
                f"block of shape {arr.shape}, but orbital_types.dat gives {expected}"
                + (" (spinful)" if spin_factor == 2 else ""),
                key=text,
            )
        if np.iscomplexobj(arr) and not spinful:
            raise DeepHFormatError(
                path,
                "complex block in a spinless directory (info.json isspinful false)",
                key=text,
            )
        if spinful and not np.iscomplexobj(arr):
            raise DeepHFormatError(
                path, "real block in a spinful directory (info.json isspinful true)", key=text
            )
        if not np.issubdtype(arr.dtype, np.number):
            raise DeepHFormatError(path, f"non-numeric dtype {arr.dtype}", key=text)
        validate.block_values(path, text, arr, bound)
        blocks[key] = arr.astype(np.complex128 if spinful else np.float64, copy=False)
    return blocks


def read_blocks(path: str | os.PathLike, structure: Structure) -> dict[Key, np.ndarray]:
    """Blocks of a standalone h5 (e.g. ``hamiltonians_pred.h5``), checked against ``structure``.

    Shapes, dtype (complex iff ``structure.spinful``) and atom indices are validated as for
    ``hamiltonians.h5``; hermiticity is not (predictions need not be hermitian).
    """
    p = Path(path)
    if not p.exists():
        raise DeepHFormatError(p, "missing file")
    num_orb = [structure.num_orbitals(a) for a in range(structure.num_atoms)]
    blocks = _read_blocks(p, num_orb, structure.spinful, 2 if structure.spinful else 1)
    if not blocks:
        raise DeepHFormatError(p, "holds no blocks")
    return blocks


def check_hermitian(path: Path | str, blocks: dict[Key, np.ndarray], atol: float = HERMITIAN_ATOL):
    """Every H_ij(R) has its partner H_ji(-R), and the partner is its conjugate transpose."""
    for key, b in blocks.items():
        rx, ry, rz, i, j = key
        partner = (-rx, -ry, -rz, j, i)
        other = blocks.get(partner)
        if other is None:
            raise DeepHFormatError(
                path, f"has no partner {format_key(partner)} (H_ji(-R))", key=format_key(key)
            )
        err = float(np.max(np.abs(b - other.conj().T), initial=0.0))
        if err > atol:
            raise DeepHFormatError(
                path,
                f"is not the conjugate transpose of its partner {format_key(partner)} "
                f"(max difference {err:.3g} > {atol:g})",
                key=format_key(key),
            )


def read_structure(
    path: str | os.PathLike,
    require_hamiltonian: bool = True,
    hermitian_atol: float = HERMITIAN_ATOL,
    max_block_value: float | None = None,
) -> Structure:
    """Read and validate one DeepH directory.

    Besides the format, the physics is checked (:mod:`tgkit.data.validate`): atomic numbers
    are integers in 1..118 with one basis per element, the lattice is finite and
    non-singular, no two atoms (periodic images included) are closer than
    ``validate.MIN_ATOM_DISTANCE``, ``info.json`` values have the right types, and block
    entries are finite and at most ``max_block_value`` eV in magnitude (default
    ``$TGKIT_MAX_BLOCK_EV`` or 1e4). Every ``overlaps.h5`` key must have its
    ``hamiltonians.h5`` key and vice versa.

    Raises:
        DeepHFormatError: naming the file (and key) of the first problem found.
    """
    d = Path(path)
    if not d.is_dir():
        raise DeepHFormatError(d, "no such structure directory")
    if not any(d.iterdir()):
        raise DeepHFormatError(d, "empty directory")
    for name in REQUIRED_FILES:
        if not (d / name).exists():
            raise DeepHFormatError(d / name, "missing file")
    numbers = validate.atomic_numbers(d / "element.dat", _loadtxt(d / "element.dat"))
    if numbers.size == 0:
        raise DeepHFormatError(d / "element.dat", "no atoms")
    n = numbers.size
    lat = _loadtxt(d / "lat.dat", ndmin=2)
    if lat.shape != (3, 3):
        raise DeepHFormatError(d / "lat.dat", f"shape {lat.shape}, expected (3, 3)")
    validate.lattice(d / "lat.dat", lat.T)
    pos = _loadtxt(d / "site_positions.dat", ndmin=2)
    if n == 1 and pos.shape == (1, 3):
        pos = pos.T
    if pos.shape != (3, n):
        raise DeepHFormatError(
            d / "site_positions.dat", f"shape {pos.shape}, expected (3, {n}) (columns are atoms; "
            f"element.dat lists {n})"
        )
    validate.positions(d / "site_positions.dat", pos.T, lat.T)
    types = _read_orbital_types(d / "orbital_types.dat", n)
    validate.species_basis(d / "orbital_types.dat", numbers, types)
    info: dict = validate.info(d / INFO_FILE) if (d / INFO_FILE).exists() else {}
    spinful = bool(info.get("isspinful", False))
    fermi = info.get("fermi_level")
    num_orb = [num_orbitals(ls) for ls in types]
    ham = None
    if (d / H_FILE).exists():
        ham = _read_blocks(d / H_FILE, num_orb, spinful, 2 if spinful else 1, max_block_value)
    elif require_hamiltonian:
        raise DeepHFormatError(d / H_FILE, "missing file")
    ovl = None
    if (d / S_FILE).exists():
        ovl = _read_blocks(d / S_FILE, num_orb, False, 1, max_block_value)
    if ham is not None:
        if not ham:
            raise DeepHFormatError(d / H_FILE, "holds no blocks")
        check_hermitian(d / H_FILE, ham, hermitian_atol)
    if ovl is not None:
        check_hermitian(d / S_FILE, ovl, hermitian_atol)
    if ham and ovl is not None:
        _check_same_keys(d, ham, ovl)
    return Structure(
        numbers=numbers,
        lattice=lat.T.copy(),
        positions=pos.T.copy(),
        orbital_types=types,
        hamiltonians=ham if ham is not None else {},
        overlaps=ovl,
        spinful=spinful,
        fermi_level=None if fermi is None else float(fermi),
        name=d.name,
        info=info,
        path=str(d),
    )


def _check_same_keys(d: Path, ham: dict[Key, np.ndarray], ovl: dict[Key, np.ndarray]) -> None:
    """overlaps.h5 and hamiltonians.h5 hold the same edges (DeepH writes both from one list)."""
    if ham.keys() == ovl.keys():
        return
    missing = sorted(set(ham) - set(ovl))
    if missing:
        raise DeepHFormatError(d / S_FILE, f"no block for this {H_FILE} key "
                               f"({len(missing)} missing)", key=format_key(missing[0]))
    extra = sorted(set(ovl) - set(ham))
    raise DeepHFormatError(d / S_FILE, f"key absent from {H_FILE} ({len(extra)} such keys)",
                           key=format_key(extra[0]))


# --------------------------------------------------------------------------- writing


def _write_blocks(path: Path, blocks: dict[Key, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        for key in sorted(blocks):
            f[format_key(key)] = blocks[key]


def write_structure(
    structure: Structure,
    path: str | os.PathLike,
    hamiltonian_file: str = H_FILE,
    overwrite: bool = False,
) -> Path:
    """Write ``structure`` as a DeepH directory, atomically.

    Files go to a temporary sibling directory that is renamed into place only when complete,
    so an interrupted write never leaves a half-written structure. ``hamiltonian_file`` lets
    predictions go to ``hamiltonians_pred.h5``; if ``path`` already holds a structure and
    ``overwrite`` is False, only that file is added (the DFT files are left as they are).
    """
    d = Path(path)
    if d.exists() and any(d.iterdir()) and not overwrite:
        if hamiltonian_file == H_FILE:
            raise DeepHFormatError(d, "already exists (pass overwrite=True to replace it)")
        tmp = d / f".{hamiltonian_file}.tmp"
        _write_blocks(tmp, structure.hamiltonians)
        os.replace(tmp, d / hamiltonian_file)
        return d
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{d.name}.", dir=d.parent))
    try:
        np.savetxt(tmp / "element.dat", structure.numbers.reshape(-1), fmt="%d")
        np.savetxt(tmp / "lat.dat", np.asarray(structure.lattice).T, fmt="%.17g")
        rlat = 2 * np.pi * np.linalg.inv(np.asarray(structure.lattice)).T  # rows b_i
        np.savetxt(tmp / "rlat.dat", rlat.T, fmt="%.17g")
        np.savetxt(tmp / "site_positions.dat", np.asarray(structure.positions).T, fmt="%.17g")
        (tmp / "orbital_types.dat").write_text(
            "".join(" ".join(str(l) for l in ls) + "\n" for ls in structure.orbital_types)
        )
        info = dict(structure.info)
        info["isspinful"] = bool(structure.spinful)
        if structure.fermi_level is not None:
            info["fermi_level"] = float(structure.fermi_level)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        _write_blocks(tmp / hamiltonian_file, structure.hamiltonians)
        if structure.overlaps is not None:
            _write_blocks(tmp / S_FILE, structure.overlaps)
        if d.exists():
            shutil.rmtree(d)
        os.replace(tmp, d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return d


def read_species_basis(path: str | os.PathLike) -> dict[int, tuple[int, ...]]:
    """``{Z: orbital_types}`` of one directory, reading only element.dat and orbital_types.dat.

    Used for a cheap first pass over a dataset, to build its universal basis.
    """
    d = Path(path)
    numbers = validate.atomic_numbers(d / "element.dat", _loadtxt(d / "element.dat"))
    types = _read_orbital_types(d / "orbital_types.dat", numbers.size)
    return validate.species_basis(d / "orbital_types.dat", numbers, types)
