"""Neural networks: the DeepH-E3-style encoder, TraceGrad, and the Hamiltonian head."""

from tgkit.nn.model import HamiltonianModel, default_dtype, load_model, save_model
from tgkit.nn.tracegrad import TraceDecoder, TraceGrad, trace_labels

__all__ = [
    "HamiltonianModel",
    "TraceDecoder",
    "TraceGrad",
    "default_dtype",
    "load_model",
    "save_model",
    "trace_labels",
]
