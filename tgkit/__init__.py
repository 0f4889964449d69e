"""tgkit: TraceGrad, SO(3)-equivariant Hamiltonian prediction with non-linear expressiveness."""

__version__ = "0.1.0"
