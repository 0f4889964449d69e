"""Band structures from real-space Hamiltonian blocks, and predicted-vs-reference comparison.

H(k) = sum_R H(R) exp(i 2 pi k.R) and S(k) likewise, with k in fractional reciprocal
coordinates (no atomic positions in the phase, as in DeepH). Global orbital layout: atoms in
order, each atom's orbitals in file (OpenMX) order; for spinful data each atom's block is
spin-major ``[up orbitals, down orbitals]`` exactly as stored, and the spinless overlap block
S_ij becomes ``block_diag(S_ij, S_ij)``. Eigenvalues do not depend on this layout.

Solvers:

* **dense** (small systems): H(k), S(k) are hermitian-symmetrised, S(k) is diagonalised and
  its eigen-directions with eigenvalue below ``overlap_threshold`` (default 5e-4, the value of
  DeepH-pack's ``dense_calc.py``) are projected out; the problem becomes an ordinary hermitian
  one in the remaining orthonormalised (Loewdin) basis. Bands are returned in ascending order,
  padded with NaN at the top for the removed directions so every k has the same band count.
* **sparse** (1000+ atoms): H(k) and S(k) are scipy CSR matrices and ``eigsh`` in shift-invert
  mode returns the ``num_bands`` eigenvalues nearest ``sigma`` (default E_F). Shift-invert
  needs no projection: near-null S directions map to |e - sigma| -> infinity, far from sigma.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from threadpoolctl import threadpool_limits

from tgkit.data.deeph import Key, Structure, read_blocks, read_structure
from tgkit.errors import TgkitError
from tgkit.io_utils import atomic_write, write_text

OVERLAP_THRESHOLD = 5e-4  # S(k) eigenvalues below this are projected out (DeepH-pack dense_calc)
DENSE_MAX_ORBITALS = 3000  # above this many orbitals "auto" picks the sparse solver
DENSE_THREADED_MIN = 1500  # below this many orbitals dense solves use one BLAS thread


class BlochAssembler:
    """Precomputed index arrays that turn real-space blocks into H(k) for any k, vectorised.

    All blocks are flattened once into COO triplets (row, col, value, R index); the sparsity
    pattern of H(k) does not depend on k, so duplicates are merged once and each k costs two
    ``bincount`` over the non-zeros.

    Args:
        structure: gives atoms and orbital types (and ``spinful``).
        blocks: ``{(Rx, Ry, Rz, i, j): block}`` in file order, (n_i, n_j) or spinful (2n_i, 2n_j).
        spin_expand: expand spinless blocks to ``block_diag(b, b)`` (overlaps of spinful data).
    """

    def __init__(
        self, structure: Structure, blocks: dict[Key, np.ndarray], spin_expand: bool = False
    ) -> None:
        if not blocks:
            raise TgkitError(f"{structure.name or 'structure'}: no blocks to build H(k) from")
        f = 2 if (structure.spinful or spin_expand) else 1
        norb = np.array([f * structure.num_orbitals(a) for a in range(structure.num_atoms)])
        offset = np.concatenate([[0], np.cumsum(norb)])
        self.dim = int(offset[-1])
        keys = sorted(blocks)
        rvec = np.array([k[:3] for k in keys], dtype=np.int64)
        self.rvecs, r_of_key = np.unique(rvec, axis=0, return_inverse=True)
        rows, cols, vals, rids = [], [], [], []
        # group keys by block shape so the flattening is one numpy call per shape
        by_shape: dict[tuple[int, int], list[int]] = {}
        for n, k in enumerate(keys):
            by_shape.setdefault((norb[k[3]], norb[k[4]]), []).append(n)
        for (ni, nj), idx in by_shape.items():
            idx_a = np.asarray(idx)
            stack = np.stack([_expand(blocks[keys[n]], spin_expand) for n in idx])
            if stack.shape[1:] != (ni, nj):
                raise TgkitError(
                    f"{structure.name}: block shape {stack.shape[1:]} but orbital types give "
                    f"{(ni, nj)}"
                )
            ka = np.asarray([keys[n] for n in idx])
            r0 = offset[ka[:, 3]][:, None, None] + np.arange(ni)[None, :, None]
            c0 = offset[ka[:, 4]][:, None, None] + np.arange(nj)[None, None, :]
            rows.append(np.broadcast_to(r0, stack.shape).ravel())
            cols.append(np.broadcast_to(c0, stack.shape).ravel())
            vals.append(stack.ravel())
            rids.append(np.broadcast_to(r_of_key.reshape(-1)[idx_a][:, None, None],
                                        stack.shape).ravel())
        rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
        self.values = np.concatenate(vals).astype(np.complex128)
        self.rid = np.concatenate(rids)
        lin = rows_a.astype(np.int64) * self.dim + cols_a
        self.lin, self.inverse = np.unique(lin, return_inverse=True)
        self.inverse = self.inverse.reshape(-1)
        # CSR structure of the merged (sorted, row-major) pattern
        self.indices = (self.lin % self.dim).astype(np.int32)
        counts = np.bincount(self.lin // self.dim, minlength=self.dim)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)

    def _data(self, k: np.ndarray) -> np.ndarray:
        phase = np.exp(2j * np.pi * (self.rvecs @ np.asarray(k, dtype=np.float64)))
        w = self.values * phase[self.rid]
        n = len(self.lin)
        return (np.bincount(self.inverse, w.real, minlength=n)
                + 1j * np.bincount(self.inverse, w.imag, minlength=n))

    def dense(self, k: np.ndarray) -> np.ndarray:
        """(dim, dim) complex128 H(k), not symmetrised."""
        out = np.zeros(self.dim * self.dim, dtype=np.complex128)
        out[self.lin] = self._data(k)
        return out.reshape(self.dim, self.dim)

    def sparse(self, k: np.ndarray) -> sp.csr_matrix:
        """(dim, dim) complex128 CSR H(k), not symmetrised."""
        return sp.csr_matrix((self._data(k), self.indices, self.indptr),
                             shape=(self.dim, self.dim))


def _expand(block: np.ndarray, spin_expand: bool) -> np.ndarray:
    return np.kron(np.eye(2), block) if spin_expand else block


def _identity_overlap(structure: Structure) -> dict[Key, np.ndarray]:
    f = 2 if structure.spinful else 1
    return {(0, 0, 0, a, a): np.eye(f * structure.num_orbitals(a))
            for a in range(structure.num_atoms)}


@dataclass
class Bands:
    """Eigenvalues along k points.

    Attributes:
        kpts: (nk, 3) fractional reciprocal coordinates.
        energies: (nk, nb) eV ascending; dense: all bands (NaN-padded), sparse: the ``nb``
            nearest ``sigma``.
        solver: "dense" or "sparse".
    """

    kpts: np.ndarray
    energies: np.ndarray
    solver: str


class BandSolver:
    """Solve H(k) c = e S(k) c at many k for one structure (index arrays built once).

    Args:
        structure: atoms, orbitals and (default) the Hamiltonian and overlaps.
        hamiltonians: blocks to use instead of ``structure.hamiltonians`` (a prediction).
        overlaps: blocks to use instead of ``structure.overlaps``; identity if both are None.
        overlap_threshold: S(k) eigenvalues below it are projected out (dense solver).
    """

    def __init__(
        self,
        structure: Structure,
        hamiltonians: dict[Key, np.ndarray] | None = None,
        overlaps: dict[Key, np.ndarray] | None = None,
        overlap_threshold: float = OVERLAP_THRESHOLD,
    ) -> None:
        self.structure = structure
        self.h = BlochAssembler(structure, structure.hamiltonians if hamiltonians is None
                                else hamiltonians)
        ovl = overlaps if overlaps is not None else structure.overlaps
        if ovl is None:
            self.s = BlochAssembler(structure, _identity_overlap(structure))
        else:
            self.s = BlochAssembler(structure, ovl, spin_expand=structure.spinful)
        self.overlap_threshold = overlap_threshold

    @property
    def dim(self) -> int:
        return self.h.dim

    def solve_dense(self, k: np.ndarray, project: bool | None = None) -> np.ndarray:
        """(dim,) ascending eigenvalues at one k, NaN for projected-out overlap directions.

        Where S(k) keeps every direction (no eigenvalue below ``overlap_threshold``),
        ``H c = e S c`` is solved by Cholesky of S (LAPACK ``zhegv``), ~3x faster than the
        projection, which diagonalises S with its eigenvectors first. ``project=None`` finds
        out from S's eigenvalues (values only, cheap); ``False`` skips that check, for a k
        where the caller knows (:meth:`BandReference.compare`, from the reference's solve on
        the same overlaps): on a numerically singular S the Cholesky can succeed and return
        spurious eigenvalues. ``True`` always projects.
        """
        h, s = self.h.dense(k), self.s.dense(k)
        h = 0.5 * (h + h.conj().T)
        s = 0.5 * (s + s.conj().T)
        if project is None:
            project = bool(sla.eigvalsh(s, driver="evd")[0] <= self.overlap_threshold)
        if not project:
            try:
                return sla.eigh(h, s, eigvals_only=True, driver="gv")
            except np.linalg.LinAlgError:  # S not positive definite after all
                pass
        sval, svec = np.linalg.eigh(s)
        keep = sval > self.overlap_threshold
        x = svec[:, keep] / np.sqrt(sval[keep])  # X^dagger S X = 1 on the kept subspace
        hp = x.conj().T @ h @ x
        e = sla.eigvalsh(0.5 * (hp + hp.conj().T), driver="evd")
        out = np.full(self.dim, np.nan)
        out[: len(e)] = e
        return out

    def solve_sparse(self, k: np.ndarray, num_bands: int, sigma: float) -> np.ndarray:
        """(num_bands,) ascending eigenvalues nearest ``sigma`` at one k, shift-invert."""
        h, s = self.h.sparse(k), self.s.sparse(k)
        h = ((h + h.conj().T) * 0.5).tocsc()
        s = ((s + s.conj().T) * 0.5).tocsc()
        if num_bands >= self.dim - 1:
            raise TgkitError(f"num_bands={num_bands} must be below the {self.dim} orbitals - 1")
        # ARPACK shift-invert, mode 3 with the S inner product: (H - sigma S) is LU-factorised
        # once per k. A hermitian A + iB is solved as the real symmetric [[A, -B], [B, A]]
        # (every eigenvalue twice): real LU and Lanczos are ~3x faster than complex Arnoldi.
        a, b, sa, sb = h.real, h.imag, s.real, s.imag
        if b.count_nonzero() == 0 and sb.count_nonzero() == 0:
            e = spla.eigsh(a.tocsc(), k=num_bands, M=sa.tocsc(), sigma=sigma,
                           return_eigenvectors=False)
            return np.sort(e)
        if 2 * num_bands + 2 < 2 * self.dim - 1:
            h2 = sp.bmat([[a, -b], [b, a]], format="csc")
            s2 = sp.bmat([[sa, -sb], [sb, sa]], format="csc")
            e2 = spla.eigsh(h2, k=2 * num_bands + 2, M=s2, sigma=sigma,
                            return_eigenvectors=False)
            e2 = e2[np.argsort(np.abs(e2 - sigma))]
            first, second = e2[0 : 2 * num_bands : 2], e2[1 : 2 * num_bands : 2]
            if np.allclose(first, second, rtol=0, atol=1e-8 * max(1.0, np.abs(e2).max())):
                return np.sort(0.5 * (first + second))
        # the doubled spectrum did not pair up cleanly: fall back to complex Arnoldi
        e = spla.eigsh(h, k=num_bands, M=s, sigma=sigma, which="LM", return_eigenvectors=False)
        return np.sort(e.real)

    def bands(
        self,
        kpts: np.ndarray,
        solver: str = "auto",
        num_bands: int | None = None,
        sigma: float | None = None,
        full_rank: np.ndarray | None = None,
    ) -> Bands:
        """Eigenvalues at every k point.

        Args:
            kpts: (nk, 3) fractional reciprocal coordinates.
            solver: "dense", "sparse", or "auto" (sparse above ``DENSE_MAX_ORBITALS``).
            num_bands: sparse solver: how many eigenvalues nearest ``sigma`` (default 20).
            sigma: sparse solver: the shift, eV (default: the structure's Fermi level).
            full_rank: dense solver: (nk,) bools, True where S(k) is known to have no
                eigenvalue below ``overlap_threshold``: the Cholesky solve without checking
                S first (:meth:`solve_dense`).
        """
        kpts = np.atleast_2d(np.asarray(kpts, dtype=np.float64))
        if solver == "auto":
            solver = "sparse" if self.dim > DENSE_MAX_ORBITALS else "dense"
        if solver == "dense":
            # Small eigenproblems on one BLAS thread: multi-threaded LAPACK on a 100-orbital
            # matrix is no faster, and on a busy node its spinning threads made it ~300x slower
            # (0.85 s vs 3 ms per 104x104 eigh, measured on a loaded 2-core machine).
            with threadpool_limits(1 if self.dim < DENSE_THREADED_MIN else None):
                fr = [None] * len(kpts) if full_rank is None else [
                    False if f else None for f in full_rank]
                e = np.stack([self.solve_dense(k, project=p)
                              for k, p in zip(kpts, fr, strict=True)])
        elif solver == "sparse":
            if sigma is None:
                sigma = self.structure.fermi_level
            if sigma is None:
                raise TgkitError(f"{self.structure.name}: sparse bands need sigma or a Fermi level")
            nb = 20 if num_bands is None else num_bands
            e = np.stack([self.solve_sparse(k, nb, float(sigma)) for k in kpts])
        else:
            raise TgkitError(f"unknown solver {solver!r}: use 'dense', 'sparse' or 'auto'")
        return Bands(kpts=kpts, energies=e, solver=solver)


def band_energies(structure: Structure, kpts: np.ndarray, **kwargs) -> np.ndarray:
    """(nk, nb) eigenvalues of ``structure``'s own blocks; kwargs go to :meth:`BandSolver.bands`."""
    return BandSolver(structure).bands(kpts, **kwargs).energies


# --------------------------------------------------------------------------- k paths


@dataclass
class KPath:
    """A band path: fractional k points, their linear axis (1/Angstrom) and special points."""

    kpts: np.ndarray
    x: np.ndarray
    special_x: np.ndarray
    labels: list[str]


def kpath(
    lattice: np.ndarray, path: str | None = None, npoints: int = 60, pbc=None
) -> KPath:
    """A k path from ase's ``Cell.bandpath`` (Bravais-lattice special points).

    Args:
        lattice: (3, 3) rows, Angstrom.
        path: e.g. ``"GMKG"``; default ase's standard path for the lattice.
        npoints: total number of k points.
        pbc: periodic axes; default: an axis whose lattice vector is >= 10 Angstrom longer than
            the shortest one and orthogonal to the others is treated as vacuum (2D layers).
    """
    from ase.cell import Cell

    lattice = np.asarray(lattice, dtype=np.float64)
    if pbc is None:
        pbc = _guess_pbc(lattice)
    bp = Cell(lattice).bandpath(path=path, npoints=npoints, pbc=pbc)
    x, sx, labels = bp.get_linear_kpoint_axis()
    return KPath(kpts=np.asarray(bp.kpts), x=np.asarray(x), special_x=np.asarray(sx),
                 labels=[("Γ" if s == "G" else s) for s in labels])


def _guess_pbc(lattice: np.ndarray) -> list[bool]:
    norms = np.linalg.norm(lattice, axis=1)
    pbc = [True, True, True]
    for a in range(3):
        others = [b for b in range(3) if b != a]
        ortho = all(abs(lattice[a] @ lattice[b]) < 1e-6 * norms[a] * norms[b] for b in others)
        if ortho and norms[a] >= norms[others].min() + 10.0:
            pbc[a] = False
    return pbc if any(pbc) else [True, True, True]


# --------------------------------------------------------------------------- comparison


@dataclass
class BandComparison:
    """Predicted against reference bands along a path, errors within E_F +- window.

    Attributes:
        path: the k path.
        e_ref, e_pred: (nk, nb) eV.
        fermi_level: eV; window: half-width, eV.
        matching: "index" (dense: band n against band n) or "nearest" (sparse: each
            eigenvalue in the window against the nearest of the other set, both ways, since
            the global band index of a few eigenvalues near E_F is unknown).
        max_error, mean_error: eV, over (k, band) pairs inside the window.
        num_in_window: how many reference (k, band) values lie in the window.
    """

    path: KPath
    e_ref: np.ndarray
    e_pred: np.ndarray
    fermi_level: float
    window: float
    solver: str
    matching: str
    max_error: float
    mean_error: float
    num_in_window: int
    name: str = ""
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready numbers (no arrays)."""
        return {
            "name": self.name, "fermi_level_eV": self.fermi_level, "window_eV": self.window,
            "solver": self.solver, "matching": self.matching,
            "max_error_meV": 1e3 * self.max_error, "mean_error_meV": 1e3 * self.mean_error,
            "num_in_window": self.num_in_window, "num_kpoints": len(self.path.kpts),
            "num_bands": int(self.e_ref.shape[1]), **self.extra,
        }


def band_errors(
    e_ref: np.ndarray, e_pred: np.ndarray, fermi_level: float, window: float, matching: str
) -> tuple[float, float, int]:
    """(max, mean, count) of |e_pred - e_ref| over reference values in E_F +- window."""
    lo, hi = fermi_level - window, fermi_level + window
    if matching == "index":
        inside = (e_ref >= lo) & (e_ref <= hi)
        d = np.abs(e_pred - e_ref)[inside]
        d = np.where(np.isnan(d), np.inf, d)
        n = int(inside.sum())
    elif matching == "nearest":
        ds = []
        for a, b in ((e_ref, e_pred), (e_pred, e_ref)):
            for ka, kb in zip(a, b, strict=True):
                va = ka[(ka >= lo) & (ka <= hi)]
                if len(va):
                    ds.append(np.min(np.abs(va[:, None] - kb[None, :]), axis=1))
        d = np.concatenate(ds) if ds else np.zeros(0)
        n = int(np.sum((e_ref >= lo) & (e_ref <= hi)))
    else:
        raise TgkitError(f"unknown matching {matching!r}")
    if d.size == 0:
        return 0.0, 0.0, 0
    return float(d.max()), float(d.mean()), n


class BandReference:
    """Reference bands of one DFT structure along a path, solved once and compared with any
    number of predictions (e.g. at every validation of a training run).

    Args:
        structure_ref: the DFT structure (blocks, overlaps, Fermi level from info.json).
        path: ase path string (e.g. ``"GMKG"``), a :class:`KPath`, or None for the default.
        fermi_level: overrides ``structure_ref.fermi_level``.
        solver: "dense", "sparse" (shift-invert around E_F) or "auto".
        num_bands: sparse solver: eigenvalues per k (default 20).
    """

    def __init__(
        self,
        structure_ref: Structure,
        path: str | KPath | None = None,
        npoints: int = 60,
        fermi_level: float | None = None,
        solver: str = "auto",
        num_bands: int | None = None,
    ) -> None:
        ef = structure_ref.fermi_level if fermi_level is None else fermi_level
        if ef is None:
            raise TgkitError(f"{structure_ref.name}: no fermi_level in info.json; pass fermi_level")
        self.structure, self.fermi_level, self.num_bands = structure_ref, float(ef), num_bands
        self.path = path if isinstance(path, KPath) else kpath(structure_ref.lattice, path, npoints)
        b = BandSolver(structure_ref).bands(self.path.kpts, solver=solver, num_bands=num_bands,
                                            sigma=self.fermi_level)
        self.energies, self.solver = b.energies, b.solver

    def compare(self, H_pred_blocks: dict[Key, np.ndarray], window: float = 2.0) -> BandComparison:
        """Bands of ``H_pred_blocks`` (``{(Rx, Ry, Rz, i, j): block}``, file order) on the
        reference overlaps, against the reference, errors within E_F +- ``window`` eV."""
        pred = BandSolver(self.structure, hamiltonians=H_pred_blocks)
        # the same overlaps: where the reference projected nothing out, neither would this
        full_rank = ~np.isnan(self.energies).any(1) if self.solver == "dense" else None
        e_pred = pred.bands(self.path.kpts, solver=self.solver, num_bands=self.num_bands,
                            sigma=self.fermi_level, full_rank=full_rank).energies
        matching = "index" if self.solver == "dense" else "nearest"
        mx, mean, n = band_errors(self.energies, e_pred, self.fermi_level, window, matching)
        return BandComparison(
            path=self.path, e_ref=self.energies, e_pred=e_pred, fermi_level=self.fermi_level,
            window=window, solver=self.solver, matching=matching, max_error=mx,
            mean_error=mean, num_in_window=n, name=self.structure.name,
        )


def compare_bands(
    structure_ref: Structure,
    H_pred_blocks: dict[Key, np.ndarray],
    path: str | KPath | None = None,
    npoints: int = 60,
    window: float = 2.0,
    fermi_level: float | None = None,
    solver: str = "auto",
    num_bands: int | None = None,
) -> BandComparison:
    """Bands of a predicted Hamiltonian against the reference, on the reference overlaps
    (arguments as :class:`BandReference` and :meth:`BandReference.compare`)."""
    ref = BandReference(structure_ref, path, npoints, fermi_level, solver, num_bands)
    return ref.compare(H_pred_blocks, window)


def write_band_data(result: BandComparison, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``bands.csv`` and ``bands.json`` (the numbers; the figure is drawn by
    :func:`tgkit.viz.band_png.write_bands_png` from the same :class:`BandComparison`).

    The CSV has one row per (k, band): k index, linear x (1/Angstrom), k fractional, band,
    reference and predicted energies minus E_F (eV). The JSON holds :meth:`summary` plus the
    path labels.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ef, kp = result.fermi_level, result.path
    csv_path = out / "bands.csv"
    with atomic_write(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["k_index", "x", "kx", "ky", "kz", "band", "e_ref_minus_ef", "e_pred_minus_ef"])
        for i, (x, k) in enumerate(zip(kp.x, kp.kpts, strict=True)):
            for n in range(result.e_ref.shape[1]):
                w.writerow([i, f"{x:.8g}", *(f"{v:.8g}" for v in k), n,
                            f"{result.e_ref[i, n] - ef:.8g}", f"{result.e_pred[i, n] - ef:.8g}"])
    js = out / "bands.json"
    summary = result.summary()
    summary["labels"] = kp.labels
    summary["special_x"] = kp.special_x.tolist()
    write_text(js, json.dumps(summary, indent=1) + "\n")
    return {"csv": csv_path, "json": js}


REPORT_FILES = ("bands.png", "bands.csv", "bands.json")


def bands_command(
    structure_dir: str | os.PathLike,
    pred: str | os.PathLike,
    out_dir: str | os.PathLike,
    path: str | None = None,
    npoints: int = 60,
    window: float = 2.0,
    solver: str = "auto",
    num_bands: int | None = None,
    force: bool = False,
) -> BandComparison:
    """``tgkit bands --dir DIR --pred FILE --out OUT``: compare, write the numbers, return them.

    ``pred`` may be a path, or a file name inside ``structure_dir`` (``hamiltonians_pred.h5``).
    Writes ``bands.csv`` and ``bands.json`` (:func:`write_band_data`); the CLI adds
    ``bands.png`` with :func:`tgkit.viz.band_png.write_bands_png`. Existing report files in
    ``out_dir`` (``REPORT_FILES``) are an error unless ``force``.
    """
    if not force:
        for name in REPORT_FILES:
            if (Path(out_dir) / name).exists():
                raise TgkitError(f"{Path(out_dir) / name}: already exists; pass --force to "
                                 "overwrite it")
    d = Path(structure_dir)
    ref = read_structure(d)
    p = Path(pred)
    if not p.exists() and (d / p).exists():
        p = d / p
    blocks = read_blocks(p, ref)
    res = compare_bands(ref, blocks, path=path, npoints=npoints, window=window, solver=solver,
                        num_bands=num_bands)
    write_band_data(res, out_dir)
    return res


__all__ = [
    "OVERLAP_THRESHOLD", "BlochAssembler", "BandSolver", "Bands", "band_energies", "KPath",
    "kpath", "BandComparison", "BandReference", "band_errors", "compare_bands",
    "write_band_data", "REPORT_FILES", "bands_command",
]
