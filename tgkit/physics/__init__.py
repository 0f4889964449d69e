"""Physics on predicted Hamiltonians: band structures and equivariance checks."""

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
    write_band_report,
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
    "write_band_report", "BlockType", "atom_rotations", "block_type_errors",
    "check_equivariance", "random_rotation", "rotate", "rotate_blocks",
]
