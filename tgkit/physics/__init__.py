"""Physics on predicted Hamiltonians: band structures, equivariance checks, sisl interop.

``to_sisl``, ``from_sisl`` and ``sisl_dos`` (:mod:`tgkit.physics.sisl_io`) load on first use;
they need the optional sisl package (``pip install tgkit[interop]``).
"""

from tgkit.physics.bands import (
    OVERLAP_THRESHOLD,
    BandComparison,
    Bands,
    BandSolver,
    BlochAssembler,
    KPath,
    band_energies,
    band_errors,
    bands_command,
    compare_bands,
    kpath,
    write_band_data,
)
from tgkit.physics.equivariance import (
    BlockType,
    atom_rotations,
    block_type_errors,
    check_equivariance,
    random_rotation,
    rotate,
    rotate_blocks,
)

__all__ = [
    "OVERLAP_THRESHOLD", "BandComparison", "Bands", "BandSolver", "BlochAssembler", "KPath",
    "band_energies", "band_errors", "bands_command", "compare_bands", "kpath",
    "write_band_data", "BlockType", "atom_rotations", "block_type_errors",
    "check_equivariance", "random_rotation", "rotate", "rotate_blocks",
    "to_sisl", "from_sisl", "sisl_dos",
]

_LAZY = {"to_sisl": "to_sisl", "from_sisl": "from_sisl", "sisl_dos": "dos"}


def __getattr__(name: str):
    if name in _LAZY:
        from tgkit.physics import sisl_io

        return getattr(sisl_io, _LAZY[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
