"""DFT -> DeepH directories: CP2K (default for crystals) and PySCF backends, one interface.

This package sits above :mod:`tgkit.data` and :mod:`tgkit.physics`: building measures the
truncation error with the band solver, and :mod:`tgkit.dft.check` compares stored blocks with
the DFT code's own eigenvalues, so neither may live in ``tgkit.data`` (which physics imports).

Typical use::

    from tgkit.dft import CP2KBackend, build_dataset
    from tgkit.data.structures import graphene, thermal_perturb
    atoms = [thermal_perturb(graphene((2, 2)), seed=s) for s in range(4)]
    build_dataset(atoms, "out/", CP2KBackend(), pair_cutoff=8.0)

Each structure directory gets H and S truncated to ``pair_cutoff`` plus ``dft_bands.json``
(the code's own eigenvalues and the measured truncation error), which
:func:`tgkit.dft.check.check_directory` verifies.
"""

from tgkit.dft.base import Backend, DFTResult, ReferenceBands, band_energies, truncate
from tgkit.dft.build import DEFAULT_PAIR_CUTOFF, build_dataset, build_structure
from tgkit.dft.cp2k import CP2KBackend, CP2KError, CP2KSettings, find_cp2k

__all__ = [
    "DEFAULT_PAIR_CUTOFF",
    "Backend",
    "CP2KBackend",
    "CP2KError",
    "CP2KSettings",
    "DFTResult",
    "ReferenceBands",
    "band_energies",
    "build_dataset",
    "build_structure",
    "find_cp2k",
    "get_backend",
    "truncate",
]


def get_backend(name: str = "cp2k", **settings) -> Backend:
    """``"cp2k"`` or ``"pyscf"`` backend with keyword settings (see each backend's settings)."""
    from tgkit.errors import ConfigError

    if name == "cp2k":
        return CP2KBackend(CP2KSettings(**settings))
    if name == "pyscf":
        from tgkit.dft.pyscf_backend import PySCFBackend, PySCFSettings

        return PySCFBackend(PySCFSettings(**settings))
    raise ConfigError(f"unknown DFT backend {name!r}: use 'cp2k' or 'pyscf'")
