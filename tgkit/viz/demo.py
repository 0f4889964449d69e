"""Data for the notebooks: the shipped dataset when present, tiny toy data otherwise.

Every notebook's first cell reads ``TGKIT_TINY`` (``1`` in CI: a few tiny toy structures and
a handful of training steps, seconds on 2 cores) and calls the functions here, so that the
notebooks stay thin and the data choice is tested with the package.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from tgkit.data.structures import bilayer_graphene, commensurate_angle, twisted_bilayer_graphene


def twisted_bilayers(tiny: bool = True, ms: tuple[int, ...] | None = None) -> dict[float, Atoms]:
    """``{twist angle (deg): atoms}``: AB bilayer (0 deg) and commensurate twisted bilayers.

    Args:
        tiny: small cells only (m = 1, 2: 28 and 76 atoms).
        ms: explicit list of m (n = m + 1) instead of the default.
    """
    ms = ms if ms is not None else ((1, 2) if tiny else (1, 2, 3, 5, 8))
    out: dict[float, Atoms] = {}
    ab = bilayer_graphene(size=(2, 2))
    ab.set_array("layer", (ab.positions[:, 2] > ab.positions[:, 2].mean()).astype(int))
    out[0.0] = ab
    for m in ms:
        atoms = twisted_bilayer_graphene(m)
        out[round(commensurate_angle(m, m + 1), 4)] = atoms
    return out


def layer_array(atoms: Atoms) -> np.ndarray:
    """(N,) layer index stored by the builders (``atoms.arrays['layer']``)."""
    return np.asarray(atoms.arrays["layer"], dtype=int)
