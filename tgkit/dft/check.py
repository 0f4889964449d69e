"""``tgkit data check DIR``: prove a DeepH directory right (hermiticity, bands, geometry).

Checks, per structure directory:

* **format + hermiticity**: the reader's validation, and max |H_ij(R) - H_ji(-R)^dagger|
  (also for S) must be <= ``hermitian_tol``.
* **bands** (when ``dft_bands.json`` is present): eigenvalues of H(k) c = e S(k) c from the
  stored blocks against the DFT code's own eigenvalues on its SCF mesh (all stored bands,
  ``mesh_tol`` = 1e-4 eV) and along a path off the mesh (within E_F +- 2 eV,
  ``path_tol`` = 10 meV). A directory truncated to a pair cutoff records, at build time, the
  band error of its *full* blocks (which must pass these tolerances: the conversion is exact)
  and of the truncated ones; the stored blocks must then reproduce the recorded truncated
  error (to 1e-6 eV), and their errors within E_F +- 2 eV, on the mesh and on the path, must
  stay within ``path_tol`` (the truncation curve is in ``datasets/README.md``).
* **geometry** (when ``overlaps.h5`` exists and ``info.json`` carries the basis text): every
  S block equals the overlap computed independently by PySCF, with the same basis, at
  d = tau_j + R.L - tau_i, to ``overlap_tol`` = 1e-6. This catches wrong R labels and a wrong
  orbital order, which bands cannot.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tgkit.data import validate
from tgkit.data.deeph import Structure, find_structures, read_structure
from tgkit.dft.base import BANDS_FILE, ReferenceBands, band_energies, band_error
from tgkit.errors import DeepHFormatError, TgkitError
from tgkit.irreps import pyscf_to_openmx_index

MESH_TOL = 1e-4
PATH_TOL = 1e-2
OVERLAP_TOL = 1e-6
HERMITIAN_TOL = 1e-8
REPRODUCE_TOL = 1e-6


@dataclass
class StructureReport:
    """Measured errors of one directory; ``failures`` lists what broke a tolerance."""

    path: str
    num_atoms: int
    num_blocks: int
    errors: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class CheckReport:
    structures: list[StructureReport]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.structures)

    def summary(self) -> str:
        lines = []
        for s in self.structures:
            errs = ", ".join(f"{k} {v:.1e}" for k, v in s.errors.items())
            status = "ok" if s.ok else "FAIL: " + "; ".join(s.failures)
            skip = f" (skipped: {', '.join(s.skipped)})" if s.skipped else ""
            lines.append(
                f"{s.path}: {s.num_atoms} atoms, {s.num_blocks} blocks, {errs} -> {status}{skip}"
            )
        n_bad = sum(not s.ok for s in self.structures)
        lines.append(f"{len(self.structures) - n_bad}/{len(self.structures)} structures pass")
        return "\n".join(lines)


def hermiticity_error(blocks: dict) -> float:
    """max |M_ij(R) - M_ji(-R)^dagger| over all keys (missing partners count as the block)."""
    err = 0.0
    for (rx, ry, rz, i, j), b in blocks.items():
        other = blocks.get((-rx, -ry, -rz, j, i))
        diff = b if other is None else b - other.conj().T
        err = max(err, float(np.abs(diff).max(initial=0.0)))
    return err


# --------------------------------------------------------------------------- geometry


def parse_cp2k_basis(text: str) -> list:
    """PySCF basis (``[[l, [exp, c1, ...], ...], ...]``) from CP2K-format text, in CP2K's
    shell order (set by set, l ascending inside a set), unlike PySCF's own parser (sorted by l)."""
    lines = [x.split("#")[0].strip() for x in text.splitlines()]
    lines = [x for x in lines if x]
    nsets, pos, shells = int(lines[1].split()[0]), 2, []
    for _ in range(nsets):
        head = [int(x) for x in lines[pos].split()]
        lmin, lmax, nexp, ncon = head[1], head[2], head[3], head[4:]
        rows = np.array([[float(v) for v in lines[pos + 1 + e].split()] for e in range(nexp)])
        col = 1
        for l, count in zip(range(lmin, lmax + 1), ncon, strict=False):
            shells.append([l, *[[r[0], *r[col : col + count]] for r in rows]])
            col += count
        pos += 1 + nexp
    return shells


def pyscf_missing() -> str | None:
    """Why the geometry check cannot run here (``"pyscf not installed"``), or None."""
    try:
        from pyscf import gto  # noqa: F401
    except ImportError:
        return "pyscf not installed"
    return None


def pyscf_overlaps(structure: Structure, basis_sets: dict[str, str]) -> dict:
    """Overlap blocks (OpenMX order) for every key of ``structure.overlaps``, from PySCF."""
    try:
        from pyscf import gto
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise TgkitError("the geometry check needs PySCF: pip install pyscf") from exc
    from ase.data import chemical_symbols

    keys = sorted(structure.overlaps)
    k = np.asarray(keys).reshape(-1, 5)
    images = sorted({(int(r[4]), int(r[0]), int(r[1]), int(r[2])) for r in k})
    img_index = {im: n for n, im in enumerate(images)}
    syms = [chemical_symbols[z] for z in structure.numbers]
    basis = {s: parse_cp2k_basis(basis_sets[s]) for s in set(syms)}

    def mole(atoms_xyz: list[tuple[str, np.ndarray]]):
        mol = gto.Mole()
        mol.atom = [(s, tuple(p)) for s, p in atoms_xyz]
        mol.unit = "Angstrom"
        mol.basis = basis
        mol.spin = sum(structure.numbers[0:0]) + sum(gto.charge(s) for s, _ in atoms_xyz) % 2
        mol.build(verbose=0)
        return mol

    home = mole([(s, p) for s, p in zip(syms, structure.positions, strict=False)])
    far = mole(
        [(syms[j], structure.positions[j] + np.array(r) @ structure.lattice) for j, *r in images]
    )
    s_cross = gto.intor_cross("int1e_ovlp", home, far)
    off_a = home.aoslice_by_atom()[:, 2:4]
    off_b = far.aoslice_by_atom()[:, 2:4]
    out = {}
    for key in keys:
        rx, ry, rz, i, j = key
        b = img_index[(j, rx, ry, rz)]
        blk = s_cross[off_a[i, 0] : off_a[i, 1], off_b[b, 0] : off_b[b, 1]]
        ii = pyscf_to_openmx_index(structure.orbital_types[i])
        jj = pyscf_to_openmx_index(structure.orbital_types[j])
        out[key] = blk[np.ix_(ii, jj)]
    return out


def overlap_error(structure: Structure, basis_sets: dict[str, str]) -> float:
    """max |S_stored - S_pyscf| over all stored overlap blocks."""
    ref = pyscf_overlaps(structure, basis_sets)
    return max(float(np.abs(structure.overlaps[k] - ref[k]).max()) for k in ref)


# --------------------------------------------------------------------------- driver


def _check_bands(s: Structure, d: Path, rep: StructureReport, mesh_tol: float, path_tol: float):
    path = d / BANDS_FILE
    try:
        doc = json.loads(validate.read_text(path))
    except json.JSONDecodeError as exc:
        raise DeepHFormatError(path, f"invalid JSON ({exc})") from None
    try:
        recorded = doc.get("errors", {})
        window = float(doc.get("band_window", 2.0))
        fermi = s.fermi_level if s.fermi_level is not None else doc.get("fermi_level")
        refs = [ReferenceBands.from_dict(r) for r in doc["references"]]
        if not isinstance(recorded, dict) or not (fermi is None or np.isfinite(float(fermi))):
            raise TypeError("'errors' must be an object and 'fermi_level' a finite number")
    except KeyError as exc:
        raise DeepHFormatError(path, "missing key", key=str(exc.args[0])) from None
    except (AttributeError, TypeError, ValueError, IndexError) as exc:
        raise DeepHFormatError(path, f"malformed reference bands ({exc})") from None
    for ref in refs:
        tol = mesh_tol if ref.kind == "mesh" else path_tol
        use_window = ref.kind != "mesh"
        ev = band_energies(s, ref.kpoints)
        now = band_error(s, ref, window if use_window else None, fermi, ev)
        label = f"{ref.kind}_bands" + ("_window" if use_window else "")
        rep.errors[label] = now
        full_key = f"{ref.kind}_full_{'window' if use_window else 'all'}"
        trunc_key = f"{ref.kind}_truncated_{'window' if use_window else 'all'}"
        if trunc_key in recorded and recorded.get("num_blocks") != recorded.get("num_blocks_full"):
            rep.errors[f"{ref.kind}_full_recorded"] = recorded[full_key]
            if recorded[full_key] > tol:
                rep.failures.append(
                    f"{ref.kind} bands of the full blocks off by "
                    f"{recorded[full_key]:.2e} eV > {tol:g} at build time"
                )
            if abs(now - recorded[trunc_key]) > REPRODUCE_TOL:
                rep.failures.append(
                    f"{ref.kind} band error {now:.3e} eV does not reproduce the "
                    f"recorded {recorded[trunc_key]:.3e} (blocks changed?)"
                )
            # truncated blocks: the window criterion of the path (10 meV) applies on both sets
            win = band_error(s, ref, window, fermi, ev)
            rep.errors[f"{ref.kind}_bands_window"] = win
            if win > path_tol:
                rep.failures.append(
                    f"{ref.kind} bands within E_F +- {window} eV off by "
                    f"{win:.2e} eV > {path_tol:g} (pair cutoff "
                    f"{recorded.get('pair_cutoff')} A)"
                )
        elif now > tol:
            rep.failures.append(f"{ref.kind} bands off by {now:.2e} eV > {tol:g}")


def check_structure(
    path: str | os.PathLike,
    mesh_tol: float = MESH_TOL,
    path_tol: float = PATH_TOL,
    overlap_tol: float = OVERLAP_TOL,
    hermitian_tol: float = HERMITIAN_TOL,
    geometry: bool = True,
) -> StructureReport:
    """Run every applicable check on one structure directory (never raises on a failed check)."""
    d = Path(path)
    s = read_structure(d)
    rep = StructureReport(str(d), s.num_atoms, len(s.hamiltonians))
    rep.errors["hermiticity_H"] = hermiticity_error(s.hamiltonians)
    if s.overlaps is not None:
        rep.errors["hermiticity_S"] = hermiticity_error(s.overlaps)
    for name in ("hermiticity_H", "hermiticity_S"):
        if rep.errors.get(name, 0.0) > hermitian_tol:
            rep.failures.append(f"{name} {rep.errors[name]:.2e} > {hermitian_tol:g}")
    if (d / BANDS_FILE).exists():
        _check_bands(s, d, rep, mesh_tol, path_tol)
    else:
        rep.skipped.append(f"bands (no {BANDS_FILE})")
    basis_sets = s.info.get("basis_sets")
    if not geometry:
        rep.skipped.append("geometry (disabled)")
    elif s.overlaps is None:
        rep.skipped.append("geometry (no overlaps.h5)")
    elif not basis_sets:
        rep.skipped.append("geometry (info.json has no basis_sets)")
    elif (reason := pyscf_missing()) is not None:
        rep.skipped.append(f"geometry (skipped: {reason})")
    else:
        err = overlap_error(s, basis_sets)
        rep.errors["overlap_vs_pyscf"] = err
        if err > overlap_tol:
            rep.failures.append(
                f"S blocks differ from PySCF overlaps by {err:.2e} > {overlap_tol:g}"
                " (wrong R labels or orbital order?)"
            )
    return rep


def check_directory(
    path: str | os.PathLike, raise_on_failure: bool = True, **tolerances
) -> CheckReport:
    """Check every DeepH structure under ``path`` (itself or its subdirectories).

    Args:
        path: one structure directory or a dataset root.
        raise_on_failure: raise :class:`TgkitError` (with the summary) if any check fails.
        **tolerances: ``mesh_tol``, ``path_tol``, ``overlap_tol``, ``hermitian_tol``,
            ``geometry`` of :func:`check_structure`.

    Returns:
        The report; ``report.summary()`` is the human-readable table.
    """
    report = CheckReport([check_structure(d, **tolerances) for d in find_structures(path)])
    if raise_on_failure and not report.ok:
        raise TgkitError(f"data check failed for {path}:\n{report.summary()}")
    return report
