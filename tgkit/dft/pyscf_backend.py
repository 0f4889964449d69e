"""PySCF backend (pip only): H(R) by a k-mesh Fourier transform, exact S(R), and molecules.

Periodic structures (any ``atoms.pbc`` true) run a k-point PBE SCF (``pyscf.pbc``, GTH
pseudopotentials, Fermi-Dirac smearing) on a Gamma-centred mesh; the Fock matrix of the
converged density is then evaluated (non-self-consistently, as PySCF's ``get_bands`` does) on
a denser Gamma-centred mesh N1 x N2 x N3 (``fourier_factor`` times the SCF mesh), which
contains the SCF mesh, and on a path off it. PySCF's Bloch
sums carry no atomic positions in the phase, H_ij(k) = sum_T e^{i k.T} <phi_i|H|phi_j(. - T)>,
which is DeepH's H(k) = sum_R H_ij(R) e^{i 2 pi k.R}. So

* **H(R)** = (1/Nk) sum_k e^{-i 2 pi k.R} H(k) is exact *modulo the Born-von Karman supercell*:
  it is the sum of the true blocks over R + (N1 m1, N2 m2, N3 m3). Each pair keeps the
  representative R closest to it (tau_j + R.L - tau_i shortest); equidistant representatives
  share the block equally, which keeps H(k) on the mesh exact and H hermitian. Off the mesh
  the folded images give an *aliasing error* that :class:`PySCFBackend` measures against
  PySCF's own bands (``get_bands``) along a path; it is stored in ``dft_bands.json``.
* **S(R)** is computed directly in real space (overlap integrals of the cell with its images
  out to PySCF's ``cell.rcut``): exact, no aliasing, and it is what ``tgkit data check``'s
  geometry test recomputes. ``meta["overlap_alias_error"]`` records how far the Fourier
  transformed S would have been off: a cheap measure of the mesh's aliasing.

Molecules (``atoms.pbc`` all false) run an all-electron ``pyscf.dft.RKS``; the single image
R = 0 holds H and S, and the reference "mesh" is the Gamma point with PySCF's MO energies.
The Fermi level of a molecule is mid-gap (HOMO + LUMO) / 2.

Orbital order: PySCF spherical AOs, converted with :func:`tgkit.irreps.pyscf_to_openmx_index`.
``info.json`` gets each element's basis as CP2K-format text, so the geometry check runs.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from tgkit.data.deeph import Key, Structure
from tgkit.dft.base import HARTREE_EV, Backend, DFTResult, ReferenceBands
from tgkit.dft.cp2k import path_special_points
from tgkit.errors import TgkitError
from tgkit.irreps import num_orbitals, pyscf_to_openmx_index

BOHR = 0.52917721092  # Angstrom, PySCF's value (pyscf.lib.param.BOHR)
KELVIN_HARTREE = 3.166811563e-6
TIE_TOL = 1e-4  # Angstrom: representatives this close in length share a block


class PySCFError(TgkitError):
    """PySCF is missing, its SCF failed, or a conversion check broke."""


def require_pyscf():
    try:
        import pyscf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise PySCFError("the PySCF backend needs PySCF: pip install pyscf") from exc
    return pyscf


@dataclass
class PySCFSettings:
    """PySCF settings (defaults: 13-orbital 2s2p1d carbon, as the CP2K backend's MOLOPT).

    Attributes:
        basis: periodic basis (PySCF name) for every element, or ``{symbol: name}``;
            ``gth-dzvp-molopt-sr`` is CP2K's DZVP-MOLOPT-SR-GTH.
        pseudo: GTH pseudopotential (periodic runs).
        xc: exchange-correlation functional.
        kmesh: Gamma-centred mesh; None picks ceil(kspacing_length / |a_i|) per periodic axis.
        kspacing_length: Angstrom; |a| * n >= this for the automatic mesh (the Born-von Karman
            supercell length: larger means less aliasing off the mesh).
        vacuum_axes: axes with mesh 1 (vacuum), e.g. (2,) for a slab along z.
        ke_cutoff: plane-wave kinetic-energy cutoff, Hartree (None: PySCF's estimate).
        precision: PySCF ``cell.precision`` (integral screening; sets ``cell.rcut``).
        smearing_kelvin: Fermi-Dirac temperature (periodic; 0 switches smearing off).
        conv_tol: SCF energy convergence, Hartree.
        max_cycle: SCF iterations.
        multigrid: use PySCF's multigrid XC/Coulomb integration (periodic).
        fourier_factor: the Fock matrix of the converged density is re-evaluated (one
            non-self-consistent build, like ``get_bands``) on a Gamma-centred mesh this many
            times denser than the SCF mesh on each non-vacuum axis, and H(R) is Fourier
            transformed from it: the Born-von Karman supercell, hence the aliasing range,
            grows by this factor at a small fraction of the SCF cost. 1 uses the SCF mesh.
        path_points: points per segment of the reference path (0: no path reference).
        molecule_basis: all-electron basis for non-periodic structures.
        molecule_vacuum: Angstrom of box around a molecule for ``lat.dat`` (only R = 0 is
            stored, the box just has to exclude spurious periodic neighbours in graphs).
        threads: PySCF threads (None leaves ``OMP_NUM_THREADS``).
        verbose: PySCF verbosity.
    """

    basis: str | dict[str, str] = "gth-dzvp-molopt-sr"
    pseudo: str = "gth-pbe"
    xc: str = "pbe"
    kmesh: tuple[int, int, int] | None = None
    kspacing_length: float = 13.0
    vacuum_axes: tuple[int, ...] = (2,)
    ke_cutoff: float | None = 60.0
    precision: float = 1e-8
    smearing_kelvin: float = 300.0
    conv_tol: float = 1e-10
    max_cycle: int = 100
    multigrid: bool = True
    fourier_factor: int = 3
    path_points: int = 4
    molecule_basis: str | dict[str, str] = "def2-svp"
    molecule_vacuum: float = 15.0
    threads: int | None = None
    verbose: int = 0

    def basis_for(self, symbol: str, molecule: bool = False) -> str:
        b = self.molecule_basis if molecule else self.basis
        return b if isinstance(b, str) else b[symbol]

    def mesh_for(self, lattice: np.ndarray) -> tuple[int, int, int]:
        if self.kmesh is not None:
            return tuple(int(k) for k in self.kmesh)  # type: ignore[return-value]
        lengths = np.linalg.norm(lattice, axis=1)
        mesh = [max(1, int(np.ceil(self.kspacing_length / x))) for x in lengths]
        for ax in self.vacuum_axes:
            mesh[ax] = 1
        return tuple(mesh)  # type: ignore[return-value]


# --------------------------------------------------------------------------- basis helpers


def atom_orbital_types(mol) -> list[list[int]]:
    """Per atom, l of each shell in PySCF AO order (a shell's contractions one by one)."""
    out = []
    for a in range(mol.natm):
        types: list[int] = []
        for b in mol.atom_shell_ids(a):
            types.extend([int(mol.bas_angular(b))] * int(mol.bas_nctr(b)))
        out.append(types)
    return out


def openmx_permutation(orbital_types: list[list[int]]) -> np.ndarray:
    """Global AO permutation: OpenMX-ordered row n is PySCF row ``perm[n]``."""
    perm, start = [], 0
    for types in orbital_types:
        perm.append(start + pyscf_to_openmx_index(types))
        start += num_orbitals(types)
    return np.concatenate(perm)


def cp2k_basis_text(symbol: str, shells: list, name: str = "PYSCF") -> str:
    """CP2K-format text of a PySCF basis (``mol._basis[symbol]``), one set per shell.

    :func:`tgkit.dft.check.parse_cp2k_basis` reads it back in the same shell order, so the
    geometry check rebuilds exactly the basis the SCF used.
    """
    lines = [f"{symbol} {name}", str(len(shells))]
    for shell in shells:
        l, prims = int(shell[0]), shell[1:]
        if prims and not isinstance(prims[0], list | tuple | np.ndarray):
            prims = prims[1:]  # [l, kappa, prims...]
        ncon = len(prims[0]) - 1
        lines.append(f"1 {l} {l} {len(prims)} {ncon}")
        lines.extend(" ".join(f"{float(v):.12e}" for v in p) for p in prims)
    return "\n".join(lines) + "\n"


def _mole(symbols, positions_ang, basis):
    from pyscf import gto

    mol = gto.Mole()
    mol.atom = [(s, tuple(p)) for s, p in zip(symbols, positions_ang, strict=True)]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.spin = int(sum(gto.charge(s) for s in symbols)) % 2
    mol.build(verbose=0)
    return mol


# --------------------------------------------------------------------------- Fourier transform


def fermi_level(eigs: np.ndarray, nelectron: float, sigma: float) -> float:
    """Chemical potential (eigenvalue units) with sum_k w_k 2 f(e) = nelectron, Fermi-Dirac.

    ``sigma`` 0 gives mid-gap between the highest occupied and lowest empty level.
    """
    e = np.sort(np.asarray(eigs).ravel())
    nk = np.asarray(eigs).shape[0]
    if sigma <= 0:
        nocc = int(round(nelectron / 2 * nk))
        return float(0.5 * (e[nocc - 1] + e[min(nocc, len(e) - 1)]))

    def excess(mu: float) -> float:
        x = np.clip((e - mu) / sigma, -700, 700)
        return 2.0 * float(np.sum(1.0 / (1.0 + np.exp(x)))) / nk - nelectron

    return float(scipy.optimize.brentq(excess, e.min() - 1.0, e.max() + 1.0, xtol=1e-14))


def min_image_blocks(
    hr0: np.ndarray,
    cells: np.ndarray,
    mesh: tuple[int, int, int],
    lattice: np.ndarray,
    positions: np.ndarray,
    offsets: np.ndarray,
    search: int = 2,
) -> dict[Key, np.ndarray]:
    """Assign Fourier-transformed blocks to the shortest representative image of each pair.

    Args:
        hr0: (Nk, n, n) real matrices, hr0[c] = (1/Nk) sum_k e^{-i 2 pi k.R_c} M(k).
        cells: (Nk, 3) the R_c, one per Born-von Karman class (0 <= R_c[a] < N_a).
        mesh: (N1, N2, N3).
        lattice, positions: Angstrom, rows.
        offsets: (natoms + 1,) orbital offsets of the (already OpenMX-ordered) matrices.
        search: |m_a| <= search supercell shifts are tried per axis.

    Returns:
        ``{(Rx, Ry, Rz, i, j): block}``; equidistant representatives get block / count.
    """
    shifts = np.array(list(itertools.product(range(-search, search + 1), repeat=3)))
    shifts = shifts * np.asarray(mesh)
    blocks: dict[Key, np.ndarray] = {}
    nat = len(positions)
    for c, r0 in enumerate(cells):
        cand = r0[None, :] + shifts  # (M, 3) all R congruent to r0
        dcart = cand @ lattice  # (M, 3)
        for i in range(nat):
            for j in range(nat):
                d = np.linalg.norm(positions[j] + dcart - positions[i], axis=1)
                best = np.flatnonzero(d <= d.min() + TIE_TOL)
                blk = hr0[c, offsets[i] : offsets[i + 1], offsets[j] : offsets[j + 1]]
                for b in best:
                    key = (int(cand[b, 0]), int(cand[b, 1]), int(cand[b, 2]), i, j)
                    blocks[key] = blk / len(best)
    return blocks


def fourier_to_real_space(
    mk: np.ndarray, kfrac: np.ndarray, mesh: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray, float]:
    """(Nk, n, n) real M(R_c), the (Nk, 3) BvK cells R_c, and max |Im M(R_c)| (should be ~0)."""
    cells = np.array(list(itertools.product(*[range(n) for n in mesh])))
    phase = np.exp(-2j * np.pi * (cells @ kfrac.T)) / len(kfrac)  # (Nc, Nk)
    mr = np.einsum("ck,kab->cab", phase, mk)
    return mr.real.copy(), cells, float(np.abs(mr.imag).max())


def real_space_overlaps(
    cell, symbols, lattice: np.ndarray, positions: np.ndarray, radius: float, perm_of_atom
) -> dict[Key, np.ndarray]:
    """Exact S_ij(R) (OpenMX order) for every pair with |tau_j + R.L - tau_i| < ``radius``."""
    from pyscf import gto

    inv = np.linalg.inv(lattice)
    span = positions.max(0) - positions.min(0)
    nmax = np.ceil((radius + np.linalg.norm(span)) * np.linalg.norm(inv, axis=0)).astype(int)
    cells = np.array(list(itertools.product(*[range(-n, n + 1) for n in nmax])))
    images = []
    for r in cells:
        shift = r @ lattice
        for j in range(len(positions)):
            d = np.linalg.norm(positions[j] + shift - positions, axis=1)
            if d.min() < radius:
                images.append((j, tuple(int(x) for x in r)))
    home = _mole(symbols, positions, cell._basis)
    far = _mole(
        [symbols[j] for j, _ in images],
        [positions[j] + np.asarray(r) @ lattice for j, r in images],
        cell._basis,
    )
    cross = gto.intor_cross("int1e_ovlp", home, far)
    off_a, off_b = home.aoslice_by_atom()[:, 2:4], far.aoslice_by_atom()[:, 2:4]
    out: dict[Key, np.ndarray] = {}
    for b, (j, r) in enumerate(images):
        d = np.linalg.norm(positions[j] + np.asarray(r) @ lattice - positions, axis=1)
        for i in np.flatnonzero(d < radius):
            blk = cross[off_a[i, 0] : off_a[i, 1], off_b[b, 0] : off_b[b, 1]]
            out[(*r, int(i), j)] = blk[np.ix_(perm_of_atom[i], perm_of_atom[j])]
    return out


def path_kpoints(points: np.ndarray, per_segment: int) -> np.ndarray:
    """Straight segments between ``points``, ``per_segment`` points each, end point included."""
    segs = [
        a + (b - a) * t
        for a, b in zip(points[:-1], points[1:], strict=True)
        for t in np.arange(per_segment) / per_segment
    ]
    return np.vstack([*segs, points[-1]])


# --------------------------------------------------------------------------- backend


class PySCFBackend(Backend):
    """Periodic PBE with PySCF (k mesh -> H(R) by Fourier transform) or a molecule (R = 0)."""

    name = "pyscf"

    def __init__(self, settings: PySCFSettings | None = None) -> None:
        self.settings = settings or PySCFSettings()

    def check_available(self) -> None:
        require_pyscf()

    def compute(self, atoms, workdir: str | os.PathLike) -> DFTResult:
        pyscf = require_pyscf()
        if self.settings.threads is not None:
            pyscf.lib.num_threads(self.settings.threads)
        t0 = time.perf_counter()
        if any(atoms.pbc):
            result = self._periodic(atoms)
        else:
            result = self._molecule(atoms)
        settings = asdict(self.settings)
        result.meta.update(
            {
                "code": f"PySCF {pyscf.__version__}",
                "backend": "pyscf",
                "settings": settings,
                "wall_s": round(time.perf_counter() - t0, 2),
            }
        )
        return result

    # ------------------------------------------------------------------ periodic

    def _periodic(self, atoms) -> DFTResult:
        from pyscf.pbc import dft, gto
        from pyscf.pbc.scf.hf import eigh_with_canonical_orth

        s = self.settings
        symbols = atoms.get_chemical_symbols()
        lat = np.asarray(atoms.cell[:], dtype=float)
        pos = np.asarray(atoms.positions, dtype=float)
        cell = gto.Cell()
        cell.atom = [(sym, tuple(p)) for sym, p in zip(symbols, pos, strict=True)]
        cell.a = lat
        cell.unit = "Angstrom"
        cell.basis = {sym: s.basis_for(sym) for sym in set(symbols)}
        cell.pseudo = s.pseudo
        if s.ke_cutoff is not None:
            cell.ke_cutoff = s.ke_cutoff
        cell.precision = s.precision
        cell.verbose = s.verbose
        cell.spin = 0
        cell.build()
        mesh = s.mesh_for(lat)
        kfrac = _gamma_mesh(mesh)
        kabs = cell.get_abs_kpts(kfrac)
        mf = dft.KRKS(cell, kabs)
        mf.xc = s.xc
        if s.multigrid:
            mf = mf.multigrid_numint()
        sigma = s.smearing_kelvin * KELVIN_HARTREE
        if sigma > 0:
            from pyscf.scf.addons import smearing_

            mf = smearing_(mf, sigma=sigma, method="fermi")
        t_scf = _run_scf(mf, s)
        # Fock of the converged density on the dense mesh + the path, in one build; the
        # reference bands are PySCF's own (get_bands' solver) on the SCF mesh and the path
        fmesh = tuple(
            n if ax in s.vacuum_axes else n * max(1, s.fourier_factor) for ax, n in enumerate(mesh)
        )
        kdense = _gamma_mesh(fmesh)
        path = (
            path_kpoints(path_special_points(lat), s.path_points)
            if s.path_points > 0
            else np.zeros((0, 3))
        )
        t_bands = time.perf_counter()
        kall = cell.get_abs_kpts(np.vstack([kdense, path]))
        dm = mf.make_rdm1()
        fock = np.asarray(mf.get_hcore(cell, kall)) + np.asarray(
            mf.get_veff(cell, dm, kpts=mf.kpts, kpts_band=kall)
        )
        ovlp = np.asarray(mf.get_ovlp(cell, kall))
        fock = 0.5 * (fock + fock.conj().transpose(0, 2, 1))
        ovlp = 0.5 * (ovlp + ovlp.conj().transpose(0, 2, 1))
        eb = np.asarray(eigh_with_canonical_orth(fock, ovlp)[0])  # removed directions: 1e5 Ha
        t_bands = time.perf_counter() - t_bands
        nd = len(kdense)
        on_scf = [_find_kpoint(kdense, k) for k in kfrac]
        ref_k = [*on_scf, *range(nd, nd + len(path))]
        nb = int(min(np.sum(eb[i] < 1e3) for i in ref_k))
        eb = eb[:, :nb] * HARTREE_EV
        mo = np.array([np.asarray(e)[:nb] for e in mf.mo_energy]) * HARTREE_EV
        refs = [ReferenceBands(kfrac, eb[on_scf], "mesh")]
        if len(path):
            refs.append(ReferenceBands(path, eb[nd:], "path"))

        types = atom_orbital_types(cell)
        perm = openmx_permutation(types)
        sizes = [num_orbitals(t) for t in types]
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        perm_of_atom = [pyscf_to_openmx_index(t) for t in types]
        hk = fock[:nd][:, perm][:, :, perm] * HARTREE_EV
        sk = ovlp[:nd][:, perm][:, :, perm]
        hr0, cells, imag_h = fourier_to_real_space(hk, kdense, fmesh)
        sr0, _, imag_s = fourier_to_real_space(sk, kdense, fmesh)
        ham = min_image_blocks(hr0, cells, fmesh, lat, pos, offsets)
        radius = float(cell.rcut) * BOHR
        ovl = real_space_overlaps(cell, symbols, lat, pos, radius, perm_of_atom)
        ovl_ft = min_image_blocks(sr0, cells, fmesh, lat, pos, offsets)
        alias = max(float(np.abs(b - ovl.get(k, 0.0)).max()) for k, b in ovl_ft.items())
        for key in ham:
            if key not in ovl:
                ovl[key] = np.zeros_like(ham[key])
        for key in ovl:
            ham.setdefault(key, np.zeros_like(ovl[key]))
        fermi = fermi_level(eb[on_scf] / HARTREE_EV, cell.nelectron, sigma) * HARTREE_EV
        meta = {
            "kmesh": list(mesh),
            "kmesh_kind": "gamma-centred",
            "fourier_kmesh": list(fmesh),
            "num_images": len({k[:3] for k in ham}),
            "scf_wall_s": round(t_scf, 2),
            "bands_wall_s": round(t_bands, 2),
            "energy_hartree": float(mf.e_tot),
            "fourier_imag_max": max(imag_h, imag_s),
            "overlap_alias_error": alias,
            "scf_residual_ev": float(np.abs(mo - eb[on_scf]).max()),
            "overlap_radius": radius,
            "basis": {sym: s.basis_for(sym) for sym in sorted(set(symbols))},
        }
        return _result(atoms, lat, pos, types, ham, ovl, fermi, refs, meta, cell._basis)

    # ------------------------------------------------------------------ molecule

    def _molecule(self, atoms) -> DFTResult:
        from pyscf import dft

        s = self.settings
        symbols = atoms.get_chemical_symbols()
        pos = np.asarray(atoms.positions, dtype=float)
        mol = _mole(symbols, pos, {sym: s.basis_for(sym, True) for sym in set(symbols)})
        mol.verbose = s.verbose
        mf = dft.RKS(mol)
        mf.xc = s.xc
        t_scf = _run_scf(mf, s)
        types = atom_orbital_types(mol)
        perm = openmx_permutation(types)
        sizes = [num_orbitals(t) for t in types]
        off = np.concatenate([[0], np.cumsum(sizes)])
        fock = np.asarray(mf.get_fock())[np.ix_(perm, perm)] * HARTREE_EV
        ovlp = np.asarray(mf.get_ovlp())[np.ix_(perm, perm)]
        fock = 0.5 * (fock + fock.T)
        ovlp = 0.5 * (ovlp + ovlp.T)
        ham, ovl = {}, {}
        for i in range(len(symbols)):
            for j in range(len(symbols)):
                ham[(0, 0, 0, i, j)] = fock[off[i] : off[i + 1], off[j] : off[j + 1]].copy()
                ovl[(0, 0, 0, i, j)] = ovlp[off[i] : off[i + 1], off[j] : off[j + 1]].copy()
        mo = np.asarray(mf.mo_energy) * HARTREE_EV
        nocc = mol.nelectron // 2
        fermi = float(0.5 * (mo[nocc - 1] + mo[nocc])) if nocc < len(mo) else float(mo[-1])
        lat = _molecule_box(atoms, pos, s.molecule_vacuum)
        refs = [ReferenceBands(np.zeros((1, 3)), mo[None, :], "mesh")]
        eig = scipy.linalg.eigh(fock, ovlp, eigvals_only=True)
        meta = {
            "molecule": True,
            "kmesh": [1, 1, 1],
            "num_images": 1,
            "scf_wall_s": round(t_scf, 2),
            "energy_hartree": float(mf.e_tot),
            "fermi_level_kind": "mid-gap (HOMO + LUMO) / 2",
            "scf_residual_ev": float(np.abs(eig[: len(mo)] - mo).max()),
            "basis": {sym: s.basis_for(sym, True) for sym in sorted(set(symbols))},
        }
        return _result(atoms, lat, pos, types, ham, ovl, fermi, refs, meta, mol._basis)


def _result(atoms, lat, pos, types, ham, ovl, fermi, refs, meta: dict, basis: dict) -> DFTResult:
    """The DFT result of either path; the basis goes along as CP2K-format text, so that
    ``tgkit data check`` can recompute overlaps independently."""
    structure = Structure(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        lattice=lat,
        positions=pos,
        orbital_types=types,
        hamiltonians=ham,
        overlaps=ovl,
        fermi_level=fermi,
    )
    meta["basis_sets"] = {sym: cp2k_basis_text(sym, basis[sym]) for sym in sorted(basis)}
    return DFTResult(structure, refs, meta)


def _run_scf(mf, s: PySCFSettings) -> float:
    """Converge ``mf`` with the settings' tolerance and cycle limit; returns wall seconds."""
    mf.conv_tol = s.conv_tol
    mf.max_cycle = s.max_cycle
    t0 = time.perf_counter()
    mf.kernel()
    if not mf.converged:
        raise PySCFError(f"PySCF SCF did not converge in {s.max_cycle} cycles")
    return time.perf_counter() - t0


def _find_kpoint(kpts: np.ndarray, k: np.ndarray) -> int:
    """Index of the row of ``kpts`` equal to ``k`` modulo reciprocal lattice vectors."""
    d = kpts - k[None, :]
    hit = np.flatnonzero(np.all(np.abs(d - np.rint(d)) < 1e-9, axis=1))
    if len(hit) != 1:
        raise PySCFError(f"k point {k} not found once in the Fourier mesh")
    return int(hit[0])


def _gamma_mesh(mesh: tuple[int, int, int]) -> np.ndarray:
    """(prod(mesh), 3) fractional k = n_a / N_a, n_a = 0..N_a-1 (PySCF's ``make_kpts``)."""
    axes = [np.arange(n) / n for n in mesh]
    return np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T


def _molecule_box(atoms, pos: np.ndarray, vacuum: float) -> np.ndarray:
    """The atoms' cell if it has volume and holds the molecule with ``vacuum``, else a box."""
    cell = np.asarray(atoms.cell[:], dtype=float)
    span = pos.max(0) - pos.min(0) + vacuum
    if abs(np.linalg.det(cell)) > 1e-6 and np.all(np.linalg.norm(cell, axis=1) >= span):
        return cell
    return np.diag(np.maximum(span, vacuum))


__all__ = [
    "PySCFBackend",
    "PySCFError",
    "PySCFSettings",
    "cp2k_basis_text",
    "fermi_level",
    "fourier_to_real_space",
    "min_image_blocks",
]
