"""Input embeddings: species, radial basis with a smooth cutoff, edge spherical harmonics."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import nn

from tgkit.irreps import to_e3nn_frame


class SpeciesEmbedding(nn.Module):
    """One-hot species -> scalar node features (DeepH-E3's ``Linear(num_species x0e -> embed)``).

    Args:
        num_species: number of species in the dataset's basis.
        irreps_out: scalar irreps, e.g. ``64x0e``.

    Shapes: ``(N,)`` int64 species index -> ``(N, irreps_out.dim)``.
    """

    def __init__(self, num_species: int, irreps_out: o3.Irreps | str) -> None:
        super().__init__()
        self.irreps_out = o3.Irreps(irreps_out)
        self.embed = nn.Embedding(num_species, self.irreps_out.dim)

    def forward(self, species: torch.Tensor) -> torch.Tensor:
        return self.embed(species)


def smooth_cutoff(r: torch.Tensor, cutoff: float, p: int = 6) -> torch.Tensor:
    """Polynomial envelope (DimeNet, p=6): 1 at r=0, zero value and derivatives at r=cutoff."""
    x = (r / cutoff).clamp(max=1.0)
    env = (
        1.0
        - (p + 1) * (p + 2) / 2 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2 * x ** (p + 2)
    )
    return env * (r < cutoff)


class GaussianRadialBasis(nn.Module):
    """Gaussians on [0, cutoff] times a smooth cutoff envelope.

    DeepH-E3 uses plain Gaussians; the envelope makes every edge feature vanish smoothly at
    the cutoff, so predictions are continuous when atoms cross it.

    Shapes: ``(E,)`` distances in Angstrom -> ``(E, num_basis)``, irreps ``num_basis x 0e``.
    """

    def __init__(self, num_basis: int, cutoff: float) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.irreps_out = o3.Irreps(f"{num_basis}x0e")
        self.register_buffer("centers", torch.linspace(0.0, cutoff, num_basis))
        self.width = cutoff / (num_basis - 1)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        g = torch.exp(-0.5 * ((r[:, None] - self.centers) / self.width) ** 2)
        return g * smooth_cutoff(r, self.cutoff)[:, None]


class EdgeSphericalHarmonics(nn.Module):
    """Real spherical harmonics (component normalisation) of the edge direction, degrees 0..lmax.

    Cartesian vectors enter e3nn in the (y, z, x) frame of :mod:`tgkit.irreps`. Self-loops
    (zero vectors) have no direction: they get Y_0 = 1 and zero for l > 0, which is the only
    rotation-invariant choice.

    Shapes: ``(E, 3)`` cartesian -> ``(E, irreps_out.dim)``, irreps ``1x0e+1x1o+...``.
    """

    def __init__(self, lmax: int) -> None:
        super().__init__()
        self.irreps_out = o3.Irreps.spherical_harmonics(lmax)
        self.sh = o3.SphericalHarmonics(self.irreps_out, normalize=True, normalization="component")

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        r = vec.norm(dim=-1, keepdim=True)
        zero = r < 1e-8
        safe = torch.where(zero, torch.ones_like(vec), vec)  # avoid 0/0 in the normalisation
        y = self.sh(to_e3nn_frame(safe))
        scalar_only = torch.zeros_like(y)
        scalar_only[:, 0] = 1.0
        return torch.where(zero, scalar_only, y)
