"""A documented spinful (SOC) variant of spinless DFT data, for the BB, BT and BS families.

The DFT runs here are spinless. For the model's SOC path we build spinful blocks

    H_soc_ij(R) = I2 (x) H_ij(R)  +  delta_ij delta_R0 * sum_shells lambda_l (L . S)

written spin-major ``[[uu, ud], [du, dd]]`` (complex, shape (2 n_i, 2 n_j)), the DeepH SOC
layout. ``L . S = 1/2 sum_a sigma_a (x) L_a`` acts inside each p (and d) shell of an atom,
with L on the real harmonics (:func:`tgkit.irreps.angular_momentum`) and spin quantized along
cartesian z. This is the on-site atomic spin-orbit term of a real-orbital tight-binding model;
it is not a relativistic DFT result, but it is exactly SU(2)-covariant: under a rotation R,
blocks map as (U (x) D) H (U (x) D)^dagger with U the spin-1/2 matrix of R (tested).

Default lambda (eV) are approximate atomic spin-orbit constants of the valence shells
(``DEFAULT_LAMBDA``); pass your own for other strengths. Overlaps stay real and spinless.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from tgkit.data.deeph import Structure
from tgkit.irreps import (
    PAULI,
    angular_momentum,
    e3nn_to_openmx_block,
    num_orbitals,
    shell_dim,
    shell_slices,
)

# Z -> {l: lambda in eV}: approximate atomic valence-shell SOC constants.
DEFAULT_LAMBDA: dict[int, dict[int, float]] = {
    6: {1: 0.006},  # C 2p
    16: {1: 0.05},  # S 3p
    34: {1: 0.22},  # Se 4p
    42: {2: 0.09},  # Mo 4d
    52: {1: 0.49},  # Te 5p
    83: {1: 1.50},  # Bi 6p
}


def lds_matrix(l: int) -> np.ndarray:
    """(2(2l+1), 2(2l+1)) complex L.S in the spin-major, OpenMX-ordered shell basis."""
    L = angular_momentum(l)  # e3nn order
    m = shell_dim(l)
    Lo = np.stack([e3nn_to_openmx_block(L[a], [l], [l]) for a in range(3)])
    out = 0.5 * sum(np.kron(PAULI[a], Lo[a]) for a in range(3))
    assert out.shape == (2 * m, 2 * m)
    return out


def onsite_soc(orbital_types: list[int], strengths: Mapping[int, float]) -> np.ndarray:
    """(2n, 2n) spin-major on-site SOC of one atom: lambda_l L.S inside each shell of degree l."""
    n = num_orbitals(orbital_types)
    out = np.zeros((2 * n, 2 * n), dtype=np.complex128)
    for l, sl in zip(orbital_types, shell_slices(orbital_types), strict=True):
        lam = float(strengths.get(l, 0.0))
        if lam and l > 0:
            rows = np.arange(sl.start, sl.stop)
            idx = np.concatenate([rows, n + rows])
            out[np.ix_(idx, idx)] += lam * lds_matrix(l)
    return out


def to_spinful(
    structure: Structure, strengths: Mapping[int, Mapping[int, float]] | None = None
) -> Structure:
    """Spinful copy of a spinless structure: I2 (x) H plus on-site lambda L.S (see module doc).

    Args:
        structure: spinless (real blocks).
        strengths: ``{Z: {l: lambda_eV}}``; default :data:`DEFAULT_LAMBDA` (missing Z: none).
    """
    if structure.spinful:
        raise ValueError(f"{structure.name}: already spinful")
    strengths = DEFAULT_LAMBDA if strengths is None else strengths
    ham: dict = {}
    for key, b in structure.hamiltonians.items():
        blk = np.kron(np.eye(2), b).astype(np.complex128)
        rx, ry, rz, i, j = key
        if i == j and rx == ry == rz == 0:
            z = int(structure.numbers[i])
            blk = blk + onsite_soc(structure.orbital_types[i], strengths.get(z, {}))
        ham[key] = blk
    info = dict(structure.info)
    info["soc_model"] = {
        "form": "I2 (x) H + onsite lambda L.S",
        "lambda_eV": {
            str(z): {str(l): v for l, v in d.items()}
            for z, d in strengths.items()
            if z in set(structure.numbers.tolist())
        },
    }
    return Structure(
        numbers=structure.numbers,
        lattice=structure.lattice,
        positions=structure.positions,
        orbital_types=structure.orbital_types,
        hamiltonians=ham,
        overlaps=structure.overlaps,
        spinful=True,
        fermi_level=structure.fermi_level,
        name=structure.name,
        info=info,
    )
