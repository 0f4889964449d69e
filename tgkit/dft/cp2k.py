"""CP2K backend: exact real-space H(R), S(R) blocks from Quickstep with k points.

CP2K (Debian's ``cp2k`` package, 2023.1) writes each image's KS and overlap matrix with
``&KS_CSR_WRITE`` / ``&S_CSR_WRITE`` ``REAL_SPACE T``. Facts this module relies on (measured,
see ``shared/docs/dft-data.md`` and ``tests/dft/test_builders.py``):

* files ``<P>-KS_SPIN_1_R_<n>-1_0.csr`` / ``<P>-S_SPIN_1_R_<n>-1_0.csr``: 1-based
  ``row col value`` over all orbitals, atom by atom; KS in Hartree. The image-to-cell table is
  only in the main output after ``KS CSR write| <N> periodic images``.
* within an atom: shells in basis-file order (s s p p d for C DZVP), and inside a shell the
  real solid harmonics m = -l..l, i.e. p = (y, z, x) and d = (xy, yz, z2, xz, x2-y2): exactly
  e3nn's order, so :func:`tgkit.irreps.e3nn_to_openmx_block` converts to the file order
  (the d order is proven by the rotation test, the p order and R labels by PySCF overlaps).
* CP2K wraps atom i to its nearest image, w_i = rint(fractional coordinate) on all axes, and
  labels images relative to the wrapped positions: the DeepH key is R = R_cp2k + w_i - w_j
  with the block unchanged.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tgkit.data.deeph import Key, Structure
from tgkit.dft.base import HARTREE_EV, Backend, DFTResult, ReferenceBands
from tgkit.errors import TgkitError
from tgkit.irreps import e3nn_to_openmx_block, num_orbitals

CP2K_EXECUTABLES = ("cp2k.psmp", "cp2k.ssmp", "cp2k.popt", "cp2k.sopt", "cp2k")
DATA_DIRS = ("/usr/share/cp2k", "/usr/share/cp2k/data", "/opt/cp2k/data")
INSTALL_HINT = (
    "CP2K is not installed: on Debian/Ubuntu run `apt-get install -y cp2k` as root (CP2K 2023.1, "
    "~10 s), or set CP2K_EXE to a cp2k.psmp/cp2k.ssmp binary. Without CP2K, use the PySCF backend "
    "(`pip install pyscf`; tgkit.dft.PySCFBackend)."
)


class CP2KError(TgkitError):
    """CP2K is missing, failed, or wrote output this parser does not understand."""


def find_cp2k() -> str:
    """Path of the CP2K executable (``$CP2K_EXE`` first), or raise with install advice."""
    env = os.environ.get("CP2K_EXE")
    if env:
        if shutil.which(env):
            return shutil.which(env)  # type: ignore[return-value]
        raise CP2KError(f"CP2K_EXE={env!r} is not an executable. " + INSTALL_HINT)
    for name in CP2K_EXECUTABLES:
        path = shutil.which(name)
        if path:
            return path
    raise CP2KError(INSTALL_HINT)


def find_data_file(name: str) -> Path:
    """``BASIS_MOLOPT`` / ``GTH_POTENTIALS`` from CP2K's data directory."""
    dirs = [os.environ.get("CP2K_DATA_DIR", ""), *DATA_DIRS]
    for d in dirs:
        if d and (Path(d) / name).exists():
            return Path(d) / name
    raise CP2KError(
        f"CP2K data file {name} not found in {dirs} (set CP2K_DATA_DIR). " + INSTALL_HINT
    )


@functools.cache
def basis_orbital_types(
    symbol: str, basis: str, basis_file: str = "BASIS_MOLOPT"
) -> tuple[int, ...]:
    """l of each shell of ``symbol``'s ``basis`` in CP2K's order (set, then l, then contraction)."""
    lines = find_data_file(basis_file).read_text().splitlines()
    for n, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == symbol and basis in parts[1:]:
            nsets = int(lines[n + 1].split()[0])
            pos, types = n + 2, []
            for _ in range(nsets):
                head = [int(x) for x in lines[pos].split()]
                lmin, lmax, nexp, ncon = head[1], head[2], head[3], head[4:]
                for l, count in zip(range(lmin, lmax + 1), ncon, strict=False):
                    types.extend([l] * count)
                pos += 1 + nexp
            return tuple(types)
    raise CP2KError(f"{basis_file}: no basis {basis!r} for element {symbol}")


@functools.cache
def basis_block_text(symbol: str, basis: str, basis_file: str = "BASIS_MOLOPT") -> str:
    """The basis-file text of ``symbol``'s ``basis`` (header line + sets), for PySCF checks."""
    lines = find_data_file(basis_file).read_text().splitlines()
    for n, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == symbol and basis in parts[1:]:
            nsets = int(lines[n + 1].split()[0])
            pos = n + 2
            for _ in range(nsets):
                pos += 1 + int(lines[pos].split()[3])
            return "\n".join(x.strip() for x in lines[n:pos]) + "\n"
    raise CP2KError(f"{basis_file}: no basis {basis!r} for element {symbol}")


@dataclass
class CP2KSettings:
    """Quickstep settings (defaults: those measured to converge for graphene in dft-data.md).

    Attributes:
        basis: CP2K basis name for every element (BASIS_MOLOPT), or ``{symbol: name}``.
        potential: GTH pseudopotential alias (``GTH-PBE`` picks the standard q).
        functional: XC functional (``PBE``).
        kmesh: Monkhorst-Pack mesh; None picks ceil(kspacing_length / |a_i|) per periodic axis.
        kspacing_length: Angstrom; |a| * n >= this for the automatic mesh.
        vacuum_axes: axes with no k-points (mesh 1), e.g. (2,) for a slab along z.
        cutoff, rel_cutoff: plane-wave grid cutoffs, Ry.
        eps_default, eps_scf: Quickstep and SCF thresholds.
        smearing_kelvin: Fermi-Dirac temperature; ``added_mos`` empty bands.
        csr_threshold: elements below this are not written.
        path_points: points per segment of the reference band path.
        mpi_procs: MPI ranks (``mpirun``) when the executable is ``.psmp``/``.popt``; 1 runs
            it directly. ``omp_threads``: OMP_NUM_THREADS per rank.
        timeout: seconds before a run is killed.
    """

    basis: str | dict[str, str] = "DZVP-MOLOPT-SR-GTH"
    potential: str = "GTH-PBE"
    functional: str = "PBE"
    kmesh: tuple[int, int, int] | None = None
    kspacing_length: float = 13.0
    vacuum_axes: tuple[int, ...] = (2,)
    cutoff: float = 400.0
    rel_cutoff: float = 50.0
    eps_default: float = 1e-12
    eps_scf: float = 1e-7
    max_scf: int = 100
    smearing_kelvin: float = 300.0
    added_mos: int = 20
    csr_threshold: float = 1e-10
    path_points: int = 6
    mpi_procs: int = 2
    omp_threads: int = 1
    timeout: float = 3600.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def basis_for(self, symbol: str) -> str:
        return self.basis if isinstance(self.basis, str) else self.basis[symbol]

    def mesh_for(self, lattice: np.ndarray) -> tuple[int, int, int]:
        if self.kmesh is not None:
            return tuple(int(k) for k in self.kmesh)  # type: ignore[return-value]
        lengths = np.linalg.norm(lattice, axis=1)
        mesh = [max(1, int(np.ceil(self.kspacing_length / x))) for x in lengths]
        for ax in self.vacuum_axes:
            mesh[ax] = 1
        return tuple(mesh)  # type: ignore[return-value]


def monkhorst_pack(mesh: tuple[int, int, int]) -> np.ndarray:
    """(prod(mesh), 3) fractional points (2r - n - 1) / 2n, r = 1..n (CP2K's MONKHORST-PACK)."""
    axes = [(2 * np.arange(1, n + 1) - n - 1) / (2 * n) for n in mesh]
    return np.array(np.meshgrid(*axes, indexing="ij")).reshape(3, -1).T


def path_special_points(lattice: np.ndarray) -> np.ndarray:
    """A path off the mesh: Gamma - b1/2 - (b1+b2)/3 ... - Gamma, plus a generic point."""
    return np.array(
        [[0, 0, 0], [0.5, 0, 0], [1 / 3, 1 / 3, 0], [0, 0.5, 0], [0, 0, 0], [0.1372, 0.2913, 0]]
    )


def _kpoint_set(points: np.ndarray, npoints: int) -> str:
    pts = "\n".join(f"          SPECIAL_POINT {p[0]:.12f} {p[1]:.12f} {p[2]:.12f}" for p in points)
    return (
        "        &KPOINT_SET\n          UNITS B_VECTOR\n"
        f"{pts}\n          NPOINTS {npoints}\n        &END KPOINT_SET\n"
    )


def write_input(atoms, settings: CP2KSettings, project: str, mesh, path_pts) -> str:
    """The CP2K input text for a k-point energy run that prints real-space KS and S."""
    s = settings
    lat = np.asarray(atoms.cell[:], dtype=float)
    cell = "\n".join(
        f"      {ax} {v[0]:.12f} {v[1]:.12f} {v[2]:.12f}" for ax, v in zip("ABC", lat, strict=False)
    )
    coords = "\n".join(
        f"{sym} {p[0]:.12f} {p[1]:.12f} {p[2]:.12f}"
        for sym, p in zip(atoms.get_chemical_symbols(), atoms.positions, strict=False)
    )
    kinds = "".join(
        f"    &KIND {sym}\n      BASIS_SET {s.basis_for(sym)}\n      POTENTIAL {s.potential}\n"
        "    &END KIND\n"
        for sym in sorted(set(atoms.get_chemical_symbols()))
    )
    mesh_set = "".join(_kpoint_set(p[None], 0) for p in monkhorst_pack(mesh))
    return f"""&GLOBAL
  PROJECT {project}
  RUN_TYPE ENERGY
  PRINT_LEVEL MEDIUM
&END GLOBAL
&FORCE_EVAL
  METHOD Quickstep
  &DFT
    BASIS_SET_FILE_NAME BASIS_MOLOPT
    POTENTIAL_FILE_NAME GTH_POTENTIALS
    &MGRID
      CUTOFF {s.cutoff}
      REL_CUTOFF {s.rel_cutoff}
    &END MGRID
    &QS
      EPS_DEFAULT {s.eps_default:.1E}
    &END QS
    &KPOINTS
      SCHEME MONKHORST-PACK {mesh[0]} {mesh[1]} {mesh[2]}
      SYMMETRY OFF
      FULL_GRID ON
    &END KPOINTS
    &SCF
      EPS_SCF {s.eps_scf:.1E}
      MAX_SCF {s.max_scf}
      ADDED_MOS {s.added_mos}
      &SMEAR ON
        METHOD FERMI_DIRAC
        ELECTRONIC_TEMPERATURE [K] {s.smearing_kelvin}
      &END SMEAR
      &MIXING
        METHOD BROYDEN_MIXING
        ALPHA 0.4
      &END MIXING
      &PRINT
        &RESTART OFF
        &END RESTART
      &END PRINT
    &END SCF
    &XC
      &XC_FUNCTIONAL {s.functional}
      &END XC_FUNCTIONAL
    &END XC
    &PRINT
      &KS_CSR_WRITE
        REAL_SPACE T
        THRESHOLD {s.csr_threshold:.1E}
      &END KS_CSR_WRITE
      &S_CSR_WRITE
        REAL_SPACE T
        THRESHOLD {s.csr_threshold:.1E}
      &END S_CSR_WRITE
      &BAND_STRUCTURE
        FILE_NAME {project}.bs
        ADDED_MOS {s.added_mos}
{mesh_set}{_kpoint_set(path_pts, s.path_points)}      &END BAND_STRUCTURE
    &END PRINT
  &END DFT
  &SUBSYS
    &CELL
{cell}
      PERIODIC XYZ
    &END CELL
    &COORD
{coords}
    &END COORD
{kinds}  &END SUBSYS
&END FORCE_EVAL
"""


# --------------------------------------------------------------------------- parsing


def read_csr(path: Path, n: int) -> np.ndarray:
    """(n, n) dense matrix from a 1-based ``row col value`` file (empty files allowed)."""
    mat = np.zeros((n, n))
    text = path.read_text() if path.exists() else ""
    if text.strip():
        data = np.array(text.split(), dtype=float).reshape(-1, 3)
        mat[data[:, 0].astype(int) - 1, data[:, 1].astype(int) - 1] = data[:, 2]
    return mat


def parse_images(output: str, which: str = "KS") -> dict[int, tuple[int, int, int]]:
    """``{n: (X, Y, Z)}`` from the table after ``<which> CSR write| <N> periodic images``."""
    m = re.search(rf"{which} CSR write\|\s+(\d+) periodic images\s*\n\s*Number.*\n", output)
    if m is None:
        raise CP2KError(f"CP2K output has no '{which} CSR write| N periodic images' table")
    rows = output[m.end() :].splitlines()[: int(m.group(1))]
    table = {}
    for row in rows:
        v = [int(x) for x in row.split()]
        table[v[0]] = (v[1], v[2], v[3])
    return table


def parse_fermi(output: str) -> float:
    """Last ``Fermi energy:`` of the output, eV."""
    vals = re.findall(r"Fermi energy:\s+(-?[\d.]+(?:[EeDd][-+]?\d+)?)", output)
    if not vals:
        raise CP2KError("CP2K output has no 'Fermi energy:' line")
    return float(vals[-1].replace("D", "E")) * HARTREE_EV


def parse_band_file(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per k-point set: ((K, 3) fractional k, (K, nb) eigenvalues, eV) of ``&BAND_STRUCTURE``."""
    sets: list[tuple[list, list]] = []
    for line in path.read_text().splitlines():
        if line.startswith("# Set"):
            sets.append(([], []))
        elif line.startswith("#  Point"):
            parts = line.split(":")[1].split()
            sets[-1][0].append([float(x) for x in parts[:3]])
            sets[-1][1].append([])
        elif line.strip() and not line.startswith("#"):
            sets[-1][1][-1].append(float(line.split()[1]))
    return [(np.asarray(k), np.asarray(e)) for k, e in sets]


def blocks_from_csr(
    workdir: Path,
    project: str,
    images: dict[int, tuple[int, int, int]],
    kind: str,
    types: list[tuple[int, ...]],
    wrap: np.ndarray,
    scale: float,
) -> dict[Key, np.ndarray]:
    """DeepH blocks (OpenMX order) of every nonzero atom pair of every image."""
    sizes = [num_orbitals(t) for t in types]
    off = np.concatenate([[0], np.cumsum(sizes)])
    n = int(off[-1])
    blocks: dict[Key, np.ndarray] = {}
    for num, cell in images.items():
        mat = read_csr(workdir / f"{project}-{kind}_SPIN_1_R_{num}-1_0.csr", n) * scale
        for i in range(len(types)):
            for j in range(len(types)):
                b = mat[off[i] : off[i + 1], off[j] : off[j + 1]]
                if not b.any():
                    continue
                r = np.asarray(cell) + wrap[i] - wrap[j]
                key = (int(r[0]), int(r[1]), int(r[2]), i, j)
                if key in blocks:
                    raise CP2KError(f"image {num}: two CP2K images map to key {key}")
                blocks[key] = e3nn_to_openmx_block(b, types[i], types[j])
    return blocks


class CP2KBackend(Backend):
    """Run CP2K Quickstep (k points) and read its real-space H(R), S(R) into DeepH blocks."""

    name = "cp2k"

    def __init__(self, settings: CP2KSettings | None = None) -> None:
        self.settings = settings or CP2KSettings()

    def check_available(self) -> None:
        find_cp2k()
        find_data_file("BASIS_MOLOPT")
        find_data_file("GTH_POTENTIALS")

    def command(self, inp: str, out: str) -> list[str]:
        exe = find_cp2k()
        procs = self.settings.mpi_procs
        parallel = Path(os.path.realpath(exe)).name.split(".")[-1] in ("psmp", "popt")
        if procs > 1 and parallel and shutil.which("mpirun"):
            return ["mpirun", "--allow-run-as-root", "-np", str(procs), exe, "-i", inp, "-o", out]
        return [exe, "-i", inp, "-o", out]

    def version(self, output: str) -> str:
        m = re.search(r"CP2K\| version string:\s+(.*)", output)
        return m.group(1).strip() if m else "CP2K (unknown version)"

    def compute(self, atoms, workdir: str | os.PathLike) -> DFTResult:
        s = self.settings
        self.check_available()
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        project = "tg"
        lat = np.asarray(atoms.cell[:], dtype=float)
        mesh = s.mesh_for(lat)
        path_pts = path_special_points(lat)
        (work / "run.inp").write_text(write_input(atoms, s, project, mesh, path_pts))
        env = dict(os.environ, OMP_NUM_THREADS=str(s.omp_threads), **s.extra_env)
        t0 = time.perf_counter()
        proc = subprocess.run(
            self.command("run.inp", "run.out"),
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=s.timeout,
        )
        wall = time.perf_counter() - t0
        out_path = work / "run.out"
        output = out_path.read_text() if out_path.exists() else ""
        if proc.returncode != 0 or "SCF run converged" not in output:
            tail = "\n".join((output or proc.stderr or proc.stdout).splitlines()[-15:])
            raise CP2KError(
                f"CP2K failed in {work} (exit {proc.returncode}, SCF not converged?):\n{tail}"
            )
        symbols = atoms.get_chemical_symbols()
        types = [basis_orbital_types(sym, s.basis_for(sym)) for sym in symbols]
        frac = np.asarray(atoms.positions) @ np.linalg.inv(lat)
        wrap = np.rint(frac).astype(np.int64)  # CP2K's nearest-image wrap, vacuum axis included
        images = parse_images(output, "KS")
        if parse_images(output, "S") != images:
            raise CP2KError("CP2K's KS and S image tables differ")
        ham = blocks_from_csr(work, project, images, "KS", types, wrap, HARTREE_EV)
        ovl = blocks_from_csr(work, project, images, "S", types, wrap, 1.0)
        for key in ham:  # S and H share the key set (S pairs cover all H pairs)
            ovl.setdefault(key, np.zeros_like(ham[key]))
        for key in ovl:
            ham.setdefault(key, np.zeros_like(ovl[key]))
        fermi = parse_fermi(output)
        sets = parse_band_file(work / f"{project}.bs")
        nmesh = int(np.prod(mesh))
        mesh_k = np.concatenate([k for k, _ in sets[:nmesh]])
        mesh_e = np.concatenate([e for _, e in sets[:nmesh]])
        refs = [
            ReferenceBands(mesh_k, mesh_e, "mesh"),
            ReferenceBands(sets[nmesh][0], sets[nmesh][1], "path"),
        ]
        structure = Structure(
            numbers=np.asarray(atoms.numbers, dtype=np.int64),
            lattice=lat,
            positions=np.asarray(atoms.positions, dtype=float),
            orbital_types=[list(t) for t in types],
            hamiltonians=ham,
            overlaps=ovl,
            fermi_level=fermi,
        )
        settings = asdict(s)
        settings.pop("extra_env")
        meta = {
            "code": self.version(output),
            "backend": "cp2k",
            "kmesh": list(mesh),
            "num_images": len(images),
            "wall_s": round(wall, 2),
            "settings": settings,
            "basis": {sym: s.basis_for(sym) for sym in sorted(set(symbols))},
            "basis_sets": {
                sym: basis_block_text(sym, s.basis_for(sym)) for sym in sorted(set(symbols))
            },
        }
        return DFTResult(structure, refs, meta)
