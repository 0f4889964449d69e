"""Crystal builders for the paper's six material families, thermal noise, twisted bilayers.

All builders return :class:`ase.Atoms` slabs with the layers normal to z, a vacuum axis c
along z, and the slab centred near z = 0 (CP2K wraps atoms to the nearest image; a layer near
fractional z = 0.5 would get spurious Rz = +-1 labels, see ``shared/docs/dft-data.md``).

Geometries are the experimental / PBE textbook values quoted on each builder; they are
starting points for thermally perturbed training data, not relaxed structures.

Thermal perturbation (:func:`thermal_perturb`): independent Gaussian displacements per atom
and axis. The default amplitude, sigma = (0.05, 0.05, 0.10) Angstrom in-plane / out-of-plane,
is the order of graphene's root-mean-square displacements at 300 K (out-of-plane flexural
modes are the softest). Pass ``sigma`` for other materials or temperatures; heavier atoms
(Bi, Te) at 300 K move less, ~0.04-0.08 Angstrom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

DEFAULT_VACUUM = 15.0  # Angstrom along c (slab thickness is added for multilayers)
DEFAULT_SIGMA = (0.05, 0.05, 0.10)  # Angstrom, x y z


# Angstrom: a jump in z between height-sorted atoms above this starts a new layer. It keeps a
# buckled Bi(111) bilayer (1.73 A) and MoS2's S-Mo-S (1.6 A steps) one layer and splits
# bilayer graphene (3.35 A); builders that know their layers store ``arrays['layer']``.
LAYER_GAP = 2.5


def layer_index(z: np.ndarray, gap: float = LAYER_GAP) -> np.ndarray:
    """(N,) layer index from heights ``z`` (N,): a new layer starts wherever sorted z jumps by
    more than ``gap``; layers are numbered from the bottom."""
    z = np.asarray(z, dtype=float)
    order = np.argsort(z)
    layer = np.zeros(len(z), dtype=int)
    layer[order[1:]] = np.cumsum(np.diff(z[order]) > gap)
    return layer


def atom_layers(atoms: Atoms, gap: float = LAYER_GAP) -> np.ndarray:
    """(N,) layer index: ``atoms.arrays['layer']`` if a builder set it, else :func:`layer_index`."""
    if "layer" in atoms.arrays:
        return np.asarray(atoms.arrays["layer"], dtype=int)
    return layer_index(atoms.positions[:, 2], gap)


def _hex_cell(a: float, c: float) -> np.ndarray:
    return np.array([[a, 0.0, 0.0], [-a / 2, a * math.sqrt(3) / 2, 0.0], [0.0, 0.0, c]])


def _hex_layers(a: float, layers: Sequence[tuple[str, str, float]], vacuum: float) -> Atoms:
    """Hexagonal slab from ``(symbol, site, z)`` with site A=(0,0), B=(1/3,2/3), C=(2/3,1/3)."""
    sites = {"A": (0.0, 0.0), "B": (1 / 3, 2 / 3), "C": (2 / 3, 1 / 3)}
    zs = np.array([z for _, _, z in layers])
    zs = zs - 0.5 * (zs.max() + zs.min())  # centred on z = 0
    cell = _hex_cell(a, vacuum + (zs.max() - zs.min()))
    frac = np.array([[*sites[s], 0.0] for _, s, _ in layers])
    pos = frac @ cell
    pos[:, 2] = zs
    return Atoms([sym for sym, _, _ in layers], positions=pos, cell=cell, pbc=True)


def _repeat(atoms: Atoms, size: tuple[int, int]) -> Atoms:
    return atoms.repeat((int(size[0]), int(size[1]), 1))


def graphene(
    size: tuple[int, int] = (2, 2), a: float = 2.46, vacuum: float = DEFAULT_VACUUM
) -> Atoms:
    """Monolayer graphene (MG), ``2 * size[0] * size[1]`` atoms; a = 2.46 Angstrom."""
    return _repeat(_hex_layers(a, [("C", "A", 0.0), ("C", "B", 0.0)], vacuum), size)


def mos2(size: tuple[int, int] = (2, 2), a: float = 3.16, vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Monolayer 2H-MoS2 (MM), trigonal prismatic; a = 3.16, S-S height 3.17 Angstrom."""
    h = 3.17 / 2
    return _repeat(_hex_layers(a, [("S", "B", -h), ("Mo", "A", 0.0), ("S", "B", h)], vacuum), size)


STACKINGS = {"AA": (0.0, 0.0), "AB": (1 / 3, 2 / 3)}  # top-layer shift, fractions of a1, a2


def bilayer_graphene(
    size: tuple[int, int] = (2, 2),
    a: float = 2.46,
    d: float = 3.35,
    vacuum: float = DEFAULT_VACUUM,
    stacking: str | Sequence[float] = "AB",
) -> Atoms:
    """Bilayer graphene (BG); interlayer distance d = 3.35 Angstrom.

    ``stacking``: "AB" (Bernal, the default), "AA", or a fractional in-plane shift (s1, s2) of
    the top layer relative to AA (AB is (1/3, 2/3)); shifted stackings sample the sliding
    energy landscape between AA and AB.
    """
    shift = STACKINGS[stacking] if isinstance(stacking, str) else tuple(stacking)
    if len(shift) != 2:
        raise ValueError(f"stacking shift must have 2 fractions, got {stacking!r}")
    atoms = _hex_layers(a, [("C", "A", 0.0), ("C", "B", 0.0), ("C", "A", d), ("C", "B", d)], vacuum)
    top = atoms.positions[:, 2] > 0
    frac = atoms.get_scaled_positions(wrap=False)
    frac[top, :2] = (frac[top, :2] + np.asarray(shift, float)) % 1.0  # in-plane only: keep z near 0
    atoms.set_scaled_positions(frac)
    return _repeat(atoms, size)


def bilayer_bismuthene(
    size: tuple[int, int] = (1, 1),
    a: float = 4.33,
    buckling: float = 1.73,
    d: float = 3.20,
    vacuum: float = DEFAULT_VACUUM,
) -> Atoms:
    """Two buckled-honeycomb Bi(111) bilayers (BB), stacked as in bulk Bi (AB-like).

    a = 4.33 and buckling 1.73 Angstrom (free-standing Bi(111) bilayer); ``d`` is the vertical
    gap between the two buckled layers (bulk rhombohedral Bi: ~1.6 Angstrom vdW-like bond
    gap measured between adjacent atoms; 3.2 between layer mid-planes is a round value).
    """
    lower = [("Bi", "A", 0.0), ("Bi", "B", buckling)]
    upper = [("Bi", "C", buckling + d), ("Bi", "A", 2 * buckling + d)]
    return _repeat(_hex_layers(a, lower + upper, vacuum), size)


def _quintuple(a: float, chalcogen: str, heights: Sequence[float], shift: int) -> list:
    """One X-Bi-X-Bi-X quintuple layer with ABC stacking starting at site ``shift``."""
    order = "ABC"
    syms = [chalcogen, "Bi", chalcogen, "Bi", chalcogen]
    return [
        (s, order[(shift + k) % 3], z) for k, (s, z) in enumerate(zip(syms, heights, strict=False))
    ]


def _bilayer_ql(a: float, chalcogen: str, ql: Sequence[float], gap: float, vacuum: float) -> Atoms:
    first = _quintuple(a, chalcogen, ql, 0)
    top = ql[-1] + gap
    second = _quintuple(a, chalcogen, [top + z for z in ql], 5)  # continues the ABC sequence
    return _hex_layers(a, first + second, vacuum)


def bi2te3(size: tuple[int, int] = (1, 1), vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Bilayer (two quintuple layers) Bi2Te3 (BT); a = 4.38, QL heights from bulk, vdW gap 2.61."""
    ql = [0.0, 1.74, 3.77, 5.80, 7.54]
    return _repeat(_bilayer_ql(4.38, "Te", ql, 2.61, vacuum), size)


def bi2se3(size: tuple[int, int] = (1, 1), vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """Bilayer (two quintuple layers) Bi2Se3 (BS); a = 4.14, QL heights from bulk, vdW gap 2.57."""
    ql = [0.0, 1.57, 3.52, 5.47, 7.04]
    return _repeat(_bilayer_ql(4.14, "Se", ql, 2.57, vacuum), size)


FAMILIES = {
    "MG": graphene,
    "MM": mos2,
    "BG": bilayer_graphene,
    "BB": bilayer_bismuthene,
    "BT": bi2te3,
    "BS": bi2se3,
}


def thermal_perturb(
    atoms: Atoms,
    sigma: float | Sequence[float] = DEFAULT_SIGMA,
    seed: int | np.random.Generator | None = None,
) -> Atoms:
    """A copy with independent Gaussian displacements (std ``sigma`` Angstrom per axis).

    The displacements' mean is removed (no net translation). See the module docstring for
    the default amplitude.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out = atoms.copy()
    disp = rng.normal(size=(len(atoms), 3)) * np.broadcast_to(np.asarray(sigma, float), (3,))
    out.positions = atoms.positions + disp - disp.mean(axis=0)
    return out


# --------------------------------------------------------------------------- twisted bilayers


def commensurate_angle(m: int, n: int) -> float:
    """Twist angle (degrees) of the commensurate (m, n) hexagonal bilayer cell.

    cos(theta) = (m^2 + 4mn + n^2) / (2 (m^2 + mn + n^2)); (1, 2) -> 21.787, (2, 3) -> 13.174.
    """
    c = (m * m + 4 * m * n + n * n) / (2 * (m * m + m * n + n * n))
    return math.degrees(math.acos(min(1.0, c)))


def _layer_in_supercell(prim: np.ndarray, basis: np.ndarray, sc: np.ndarray) -> np.ndarray:
    """Cartesian positions of a 2D lattice (``prim`` rows a1, a2; ``basis`` cart offsets) that
    fall inside the supercell spanned by ``sc`` rows L1, L2 (in-plane)."""
    inv = np.linalg.inv(sc)
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]]) @ sc
    coeffs = corners @ np.linalg.inv(prim)
    lo = np.floor(coeffs.min(axis=0)).astype(int) - 1
    hi = np.ceil(coeffs.max(axis=0)).astype(int) + 1
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    pts = np.stack([ii.ravel(), jj.ravel()], axis=1) @ prim
    out = []
    for b in basis:
        p = pts + b
        f = p @ inv
        f -= np.floor(f + 1e-9)  # wrap into [0, 1), robust to round-off at the edges
        f[f > 1 - 1e-9] = 0.0
        out.append(np.unique(np.round(f, 9), axis=0) @ sc)
    return np.concatenate(out)


def twisted_bilayer_graphene(
    m: int, n: int | None = None, a: float = 2.46, d: float = 3.35, vacuum: float = DEFAULT_VACUUM
) -> Atoms:
    """Commensurate twisted bilayer graphene; ``n`` defaults to m + 1.

    Superlattice L1 = m a1 + n a2, L2 = -n a1 + (m + n) a2 of layer 1; layer 2 is layer 1
    rotated by :func:`commensurate_angle` (m, n) about the z axis through an atom, which maps
    its lattice vector n a1 + m a2 onto L1. ``4 (m^2 + mn + n^2)`` atoms for gcd(m, n) = 1 and
    m - n not a multiple of 3 (e.g. m = 29 -> 10,444 atoms, 1.12 degrees). Vectorised: 10k
    atoms take well under a second. ``atoms.info['twist_angle']`` holds the angle in degrees.
    """
    n = m + 1 if n is None else n
    if math.gcd(m, n) != 1 or m < 1 or n < 1:
        raise ValueError(f"(m, n) = ({m}, {n}) must be coprime positive integers")
    a1 = np.array([a, 0.0])
    a2 = np.array([a / 2, a * math.sqrt(3) / 2])  # 60 degrees between a1 and a2 here
    prim = np.stack([a1, a2])
    sc = np.stack([m * a1 + n * a2, -n * a1 + (m + n) * a2])
    basis = np.array([[0.0, 0.0], (a1 + a2) / 3])  # A and B sites
    v = n * a1 + m * a2
    theta = math.atan2(sc[0, 1], sc[0, 0]) - math.atan2(v[1], v[0])
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    low = _layer_in_supercell(prim, basis, sc)
    up = _layer_in_supercell(prim @ rot.T, basis @ rot.T, sc)
    pos = np.concatenate(
        [
            np.column_stack([low, np.full(len(low), -d / 2)]),
            np.column_stack([up, np.full(len(up), d / 2)]),
        ]
    )
    cell = np.zeros((3, 3))
    cell[:2, :2] = sc
    cell[2, 2] = vacuum + d
    atoms = Atoms(["C"] * len(pos), positions=pos, cell=cell, pbc=True)
    atoms.info["twist_angle"] = math.degrees(abs(theta))
    atoms.set_array("layer", np.repeat([0, 1], [len(low), len(up)]))
    return atoms
