"""DeepH blocks <-> sisl Hamiltonians: bands, DOS and TBtrans input from any tgkit Hamiltonian.

sisl (https://zerothi.github.io/sisl) is optional: ``pip install tgkit[interop]``. It is only
imported inside these functions.

Conventions (all orbital tables live in :mod:`tgkit.irreps`):

* Geometry in Angstrom and energies in eV, as in DeepH directories (sisl's units too).
* Each atom gets one ``sisl.AtomicOrbital(n, l, m, zeta)`` per function, in sisl's order:
  within a shell m = -l..l, and sisl's orbital (l, m) is (-1)^m times the OpenMX function
  ``OPENMX_TO_E3NN[l][m + l]`` (p = -py, pz, -px; d = xy, -yz, z2, -xz, x2-y2), see
  :func:`tgkit.irreps.openmx_to_sisl_index`. ``zeta`` numbers the shells of equal l;
  ``n = l + 1`` is nominal (DeepH files do not record it).
* A block H_ij(R) (atom i in cell 0, atom j in cell R) is sisl's element
  ``H[i_orb, j_orb + isc(R) * no]``; the supercell ``nsc = 2 max|R| + 1`` per axis covers every
  R of the blocks. sisl's ``gauge="lattice"`` Bloch sum is then tgkit's
  H(k) = sum_R H(R) exp(i 2 pi k.R), with k fractional, term by term.
* Overlaps make the sisl Hamiltonian non-orthogonal; without them it is orthogonal.
* Spinful (SOC) data becomes ``sisl.Spin("spin-orbit")`` with complex components
  (M11, M22, M12, M21) = (uu, dd, ud, du) of the spin-major DeepH blocks, spin along z.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from tgkit.data.deeph import Key, Structure
from tgkit.errors import TgkitError
from tgkit.irreps import (
    num_orbitals,
    openmx_to_sisl_block,
    shell_dim,
    sisl_orbital_lm,
    sisl_to_openmx_block,
)

if TYPE_CHECKING:
    import sisl

SISL_SUFFIXES = (".nc", ".TSHS")  # what `export_sisl` writes (both read by sisl; TSHS by TBtrans)


def import_sisl():
    """The ``sisl`` module, or a :class:`TgkitError` saying how to install it."""
    try:
        import sisl
    except ImportError:
        raise TgkitError(
            "this needs the optional package sisl: pip install tgkit[interop]"
        ) from None
    return sisl


def sisl_geometry(structure: Structure, rvecs: np.ndarray | None = None) -> sisl.Geometry:
    """The structure as a ``sisl.Geometry`` (Angstrom) with sisl-ordered atomic orbitals.

    Args:
        rvecs: (nR, 3) integer cell offsets to cover; ``nsc = 2 max|R| + 1`` per axis
            (default: the R of ``structure.hamiltonians``).
    """
    sisl = import_sisl()
    if rvecs is None:
        rvecs = np.array([k[:3] for k in structure.hamiltonians] or [[0, 0, 0]])
    nsc = 2 * np.abs(np.asarray(rvecs, dtype=np.int64)).max(axis=0) + 1
    species: dict[tuple[int, tuple[int, ...]], sisl.Atom] = {}
    atoms = []
    for z, types in zip(structure.numbers.tolist(), structure.orbital_types, strict=True):
        key = (int(z), tuple(types))
        if key not in species:
            orbs = [sisl.AtomicOrbital(n=l + 1, l=l, m=m, zeta=zeta)
                    for l, m, zeta in sisl_orbital_lm(types)]
            species[key] = sisl.Atom(int(z), orbitals=orbs)
        atoms.append(species[key])
    lattice = sisl.Lattice(np.asarray(structure.lattice, dtype=np.float64), nsc=nsc)
    return sisl.Geometry(np.asarray(structure.positions, dtype=np.float64), atoms=atoms,
                         lattice=lattice)


def _sisl_csr(
    structure: Structure, blocks: dict[Key, np.ndarray], geometry: sisl.Geometry,
    part: Callable[[int, int], tuple[slice, slice]] | None = None,
) -> sp.csr_matrix:
    """(no, no * n_s) CSR of ``blocks`` in sisl's orbital order; ``part`` picks a spin quadrant."""
    norb = np.array([structure.num_orbitals(a) for a in range(structure.num_atoms)])
    offset = np.concatenate([[0], np.cumsum(norb)])
    no = int(offset[-1])
    rows, cols, vals = [], [], []
    for key, block in blocks.items():
        rx, ry, rz, i, j = key
        b = block if part is None else block[part(norb[i], norb[j])]
        b = openmx_to_sisl_block(np.asarray(b), structure.orbital_types[i],
                                 structure.orbital_types[j])
        isc = int(geometry.lattice.sc_index([rx, ry, rz]))
        r = offset[i] + np.arange(norb[i])
        c = isc * no + offset[j] + np.arange(norb[j])
        rows.append(np.repeat(r, norb[j]))
        cols.append(np.tile(c, norb[i]))
        vals.append(b.ravel())
    data = np.concatenate(vals)
    return sp.csr_matrix((data, (np.concatenate(rows), np.concatenate(cols))),
                         shape=(no, no * geometry.n_s))


# spin quadrants of a spin-major (2n_i, 2n_j) block, in sisl's component order M11, M22, M12, M21
_SPIN_PARTS = (
    lambda ni, nj: (slice(0, ni), slice(0, nj)),          # uu
    lambda ni, nj: (slice(ni, 2 * ni), slice(nj, 2 * nj)),  # dd
    lambda ni, nj: (slice(0, ni), slice(nj, 2 * nj)),      # ud
    lambda ni, nj: (slice(ni, 2 * ni), slice(0, nj)),      # du
)


def hermitize(blocks: dict[Key, np.ndarray]) -> dict[Key, np.ndarray]:
    """``{key: (H_ij(R) + H_ji(-R)^dagger) / 2}``, adding missing partners.

    The real-space form of the ``(H(k) + H(k)^dagger) / 2`` that tgkit's band solver applies, so
    that a (slightly non-hermitian) prediction gives the same bands in sisl as in tgkit.
    """
    out: dict[Key, np.ndarray] = {}
    for key, b in blocks.items():
        rx, ry, rz, i, j = key
        partner = blocks.get((-rx, -ry, -rz, j, i))
        pt = np.zeros_like(b) if partner is None else partner.conj().T
        out[key] = 0.5 * (b + pt)
        if partner is None:
            out[(-rx, -ry, -rz, j, i)] = 0.5 * b.conj().T
    return out


def to_sisl(
    structure: Structure,
    H_blocks: dict[Key, np.ndarray] | None = None,
    S_blocks: dict[Key, np.ndarray] | None = None,
) -> sisl.Hamiltonian:
    """A ``sisl.Hamiltonian`` of the structure's blocks (see the module doc for conventions).

    Args:
        structure: geometry, orbital types, spin; its blocks are the defaults.
        H_blocks: ``{(Rx, Ry, Rz, i, j): block}`` in file (OpenMX) order, eV; default
            ``structure.hamiltonians``. Taken as they are (use :func:`hermitize` first for a
            prediction that is not exactly hermitian).
        S_blocks: overlaps, same keys and layout but always spinless; default
            ``structure.overlaps``. None for both: an orthogonal Hamiltonian.

    Returns:
        A spin-unpolarized (real) or spin-orbit (complex) ``sisl.Hamiltonian``, non-orthogonal
        when there are overlaps.
    """
    sisl = import_sisl()
    H_blocks = structure.hamiltonians if H_blocks is None else H_blocks
    S_blocks = structure.overlaps if S_blocks is None else S_blocks
    if not H_blocks:
        raise TgkitError(f"{structure.name or 'structure'}: no Hamiltonian blocks to convert")
    keys = list(H_blocks) + (list(S_blocks) if S_blocks is not None else [])
    geom = sisl_geometry(structure, np.array([k[:3] for k in keys]))
    s_csr = None if S_blocks is None else _sisl_csr(structure, S_blocks, geom)
    if structure.spinful:
        parts = [_sisl_csr(structure, H_blocks, geom, p).astype(np.complex128)
                 for p in _SPIN_PARTS]
        return sisl.Hamiltonian.fromsp(geom, parts, S=s_csr, spin=sisl.Spin("spin-orbit"))
    h_csr = _sisl_csr(structure, H_blocks, geom)
    if np.iscomplexobj(h_csr.data):
        raise TgkitError(f"{structure.name}: complex blocks in a spinless structure")
    return sisl.Hamiltonian.fromsp(geom, h_csr, S=s_csr)


def from_sisl(H: sisl.Hamiltonian, name: str = "", fermi_level: float | None = None,
              orbital_types: list[list[int]] | None = None) -> Structure:
    """DeepH blocks of a ``sisl.Hamiltonian`` (e.g. read from SIESTA's output with sisl).

    Every atom pair (i, j, R) with a stored element becomes a block key; blocks come back in
    OpenMX order (the inverse of :func:`to_sisl`). Each atom's orbitals must form complete
    shells m = -l..l in sisl's order (as ``sisl.AtomicOrbital`` from SIESTA or :func:`to_sisl`
    have them). Unpolarized and spin-orbit Hamiltonians are supported.

    Args:
        H: the sisl Hamiltonian (energies in eV, as sisl reads them).
        name, fermi_level: for the returned structure.
        orbital_types: per atom, the shells' l in sisl's orbital order; needed when ``H``'s
            orbitals carry no (l, m) (a SIESTA ``.nc`` or ``.TSHS`` read without its basis).

    Returns:
        A :class:`Structure` with ``hamiltonians`` and, when ``H`` is non-orthogonal,
        ``overlaps``.
    """
    import_sisl()
    geom = H.geometry
    spin = H.spin
    if spin.is_spinorbit:
        spinful = True
        if not np.iscomplexobj(np.zeros(1, dtype=H.dtype)):
            H = H.astype(np.complex128)  # files hold SOC as 8 real components
    elif spin.is_unpolarized:
        spinful = False
    else:
        raise TgkitError(f"{name or 'sisl Hamiltonian'}: spin {spin!s} is not supported "
                         "(unpolarized or spin-orbit only)")
    if orbital_types is None:
        types = [_orbital_types(atom, a) for a, atom in enumerate(geom.atoms)]
    else:
        types = [[int(l) for l in ls] for ls in orbital_types]
        if len(types) != geom.na or any(
            num_orbitals(ls) != geom.atoms[a].no for a, ls in enumerate(types)
        ):
            raise TgkitError(f"{name or 'sisl Hamiltonian'}: orbital_types do not match the "
                             "atoms' orbital counts")
    no = geom.no
    norb = np.array([geom.atoms[a].no for a in range(geom.na)])
    offset = np.concatenate([[0], np.cumsum(norb)])
    orb_atom = np.repeat(np.arange(geom.na), norb)
    sc_off = np.asarray(geom.lattice.sc_off, dtype=np.int64)

    def blocks_of(csr: sp.csr_matrix) -> dict[Key, np.ndarray]:
        # every stored element (explicit zeros too, so that keys survive a round trip)
        coo = csr.tocoo()
        row, col, data = coo.row, coo.col, coo.data
        isc, jo = col // no, col % no
        ai, bj = orb_atom[row], orb_atom[jo]
        pair = (isc.astype(np.int64) * geom.na + ai) * geom.na + bj
        order = np.argsort(pair, kind="stable")
        uniq, start = np.unique(pair[order], return_index=True)
        stop = np.append(start[1:], len(order))
        out: dict[Key, np.ndarray] = {}
        for p, a0, a1 in zip(uniq.tolist(), start.tolist(), stop.tolist(), strict=True):
            sel = order[a0:a1]
            s, rem = divmod(p, geom.na * geom.na)
            a, b = divmod(rem, geom.na)
            blk = np.zeros((norb[a], norb[b]), dtype=data.dtype)
            blk[row[sel] - offset[a], jo[sel] - offset[b]] = data[sel]
            rx, ry, rz = (int(v) for v in sc_off[s])
            out[(rx, ry, rz, a, b)] = blk
        return out

    def openmx(blocks: dict[Key, np.ndarray]) -> dict[Key, np.ndarray]:
        return {k: sisl_to_openmx_block(b, types[k[3]], types[k[4]]) for k, b in blocks.items()}

    csr = H.tocsr
    if spinful:
        comps = [openmx(blocks_of(csr(d))) for d in (H.M11, H.M22, H.M12, H.M21)]
        ham: dict[Key, np.ndarray] = {}
        for key in set().union(*comps):
            ni, nj = norb[key[3]], norb[key[4]]
            b = np.zeros((2 * ni, 2 * nj), dtype=np.complex128)
            for part, comp in zip(_SPIN_PARTS, comps, strict=True):
                if key in comp:
                    b[part(ni, nj)] = comp[key]
            ham[key] = b
    else:
        if np.iscomplexobj(np.zeros(1, dtype=H.dtype)):
            raise TgkitError(f"{name or 'sisl Hamiltonian'}: complex unpolarized Hamiltonian")
        ham = {k: b.astype(np.float64) for k, b in openmx(blocks_of(csr(0))).items()}
    overlaps = None
    if not H.orthogonal:
        overlaps = {k: np.real(b).astype(np.float64)
                    for k, b in openmx(blocks_of(csr(H.S_idx))).items()}
    info = {"source": "sisl"}
    return Structure(
        numbers=np.asarray(geom.atoms.Z, dtype=np.int64),
        lattice=np.asarray(geom.cell, dtype=np.float64).copy(),
        positions=np.asarray(geom.xyz, dtype=np.float64).copy(),
        orbital_types=types, hamiltonians=ham, overlaps=overlaps, spinful=spinful,
        fermi_level=fermi_level, name=name, info=info,
    )


def _orbital_types(atom, index: int) -> list[int]:
    """Shell l values of a sisl atom whose orbitals run m = -l..l per shell."""
    orbs = list(atom.orbitals)
    if not all(hasattr(o, "l") and hasattr(o, "m") for o in orbs):
        raise TgkitError(f"atom {index + 1} ({atom.symbol}): sisl orbitals without (l, m) "
                         "(e.g. read from a .nc or .TSHS file); pass orbital_types")
    types, k = [], 0
    while k < len(orbs):
        l = int(orbs[k].l)
        shell = orbs[k: k + shell_dim(l)]
        ms = [getattr(o, "m", None) for o in shell]
        if len(shell) != shell_dim(l) or ms != list(range(-l, l + 1)):
            raise TgkitError(
                f"atom {index + 1} ({atom.symbol}): orbitals {k}.. are not a complete shell "
                f"m = -{l}..{l} in sisl's order (got m = {ms})"
            )
        types.append(l)
        k += shell_dim(l)
    return types


def dos(
    structure: Structure,
    H_blocks: dict[Key, np.ndarray] | None,
    energies: np.ndarray,
    kmesh: tuple[int, int, int] = (12, 12, 1),
    smearing: float = 0.05,
    S_blocks: dict[Key, np.ndarray] | None = None,
) -> np.ndarray:
    """Density of states per unit cell (states/eV), computed by sisl on a Monkhorst-Pack mesh.

    Each eigenvalue of H(k) c = e S(k) c counts once (a spinless Hamiltonian is one spin
    channel; a spinful one counts both spins), broadened by a normalised Gaussian.

    Args:
        structure: geometry and orbitals; its blocks are the defaults.
        H_blocks: Hamiltonian blocks (a prediction); None: ``structure.hamiltonians``.
            They are hermitized (:func:`hermitize`), as tgkit's band solver does.
        energies: (nE,) eV.
        kmesh: Monkhorst-Pack mesh (Gamma-centred), e.g. (n, n, 1) for a layer.
        smearing: Gaussian standard deviation, eV.
        S_blocks: overlaps; default ``structure.overlaps``.

    Returns:
        (nE,) float64 DOS, states/eV per cell, averaged over the mesh.
    """
    sisl = import_sisl()
    H_blocks = structure.hamiltonians if H_blocks is None else H_blocks
    H = to_sisl(structure, hermitize(H_blocks), S_blocks)
    e = np.asarray(energies, dtype=np.float64)
    mp = sisl.MonkhorstPack(H, list(kmesh), trs=not structure.spinful)
    dist = sisl.get_distribution("gaussian", smearing=smearing)
    total = np.zeros_like(e)
    for k, w in zip(mp.k, mp.weight, strict=True):
        total += w * H.eigenstate(k, gauge="lattice").DOS(e, distribution=dist)
    return total


def check_export_path(out: str | os.PathLike, force: bool = False) -> Path:
    """``out`` as a Path if :func:`export_sisl` may write it, else a :class:`TgkitError`."""
    out = Path(out)
    if out.suffix not in SISL_SUFFIXES:
        raise TgkitError(f"{out}: unknown sisl format; use a name ending in "
                         f"{' or '.join(SISL_SUFFIXES)}")
    if out.exists() and not force:
        raise TgkitError(f"{out}: already exists (pass --force to replace it)")
    return out


def export_sisl(
    structure: Structure,
    out: str | os.PathLike,
    H_blocks: dict[Key, np.ndarray] | None = None,
    force: bool = False,
) -> Path:
    """Write the structure's Hamiltonian (and overlaps) as a sisl file, atomically.

    ``.nc`` is SIESTA's NetCDF file (read with ``sisl.get_sile(path).read_hamiltonian()``; needs
    the netCDF4 package); ``.TSHS`` is SIESTA/TranSIESTA's binary file that TBtrans reads
    (it keeps no orbital (l, m) labels: pass ``geometry=`` when reading it with sisl). The
    blocks are hermitized first (see :func:`hermitize`). Either file reads back with energies
    relative to the structure's Fermi level (``.nc`` stores E_F and sisl subtracts it on
    reading; ``.TSHS`` is written already shifted, with E_F = 0), or absolute when the
    structure has none.

    Args:
        structure: geometry, orbitals, overlaps and the DFT blocks.
        out: the file to write; its suffix picks the format.
        H_blocks: blocks to write instead of ``structure.hamiltonians`` (a prediction).
        force: replace an existing file.
    """
    sisl = import_sisl()
    out = check_export_path(out, force)
    H = to_sisl(structure, hermitize(structure.hamiltonians if H_blocks is None else H_blocks))
    ef = structure.fermi_level
    kwargs = {}
    if ef is not None and out.suffix == ".nc":
        kwargs["Ef"] = float(ef)
    elif ef is not None:
        H.shift(-float(ef))  # sisl's TSHS writer stores E_F = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        H.write(sisl.get_sile(tmp, mode="w"), **kwargs)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what a plain open() would give
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


__all__ = ["SISL_SUFFIXES", "check_export_path", "dos", "export_sisl", "from_sisl", "hermitize",
           "import_sisl", "sisl_geometry", "to_sisl"]
