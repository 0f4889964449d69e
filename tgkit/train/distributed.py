"""Device selection and data parallelism over ``torch.distributed`` (launched by ``torchrun``).

One process per device. ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`init_distributed` reads them (and does nothing in a plain single process). Gradients
are averaged with one flat ``all_reduce`` after ``backward``, as DDP does (the loss of
:mod:`tgkit.train.loss` is normalised by global counts times the world size, so the average
over processes is the gradient of the global batch). We do this rather than wrap the model in
``DistributedDataParallel`` because the Grad operator differentiates inside ``forward``
(double backward), which DDP's gradient-bucket hooks do not support reliably; one flat
collective per step costs the same bandwidth.

CUDA paths (device choice per local rank, NCCL, pinned memory) are plain functions of their
inputs so that CPU tests cover their logic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from tgkit.errors import ConfigError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def parse_dtype(name: str) -> torch.dtype:
    """``"float32"`` or ``"float64"`` -> torch dtype (complex blocks follow it)."""
    if name not in DTYPES:
        raise ConfigError(f"train.dtype: must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def select_device(
    spec: str, local_rank: int = 0, cuda_available: bool | None = None,
    cuda_count: int | None = None,
) -> torch.device:
    """The device of this process.

    Args:
        spec: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        local_rank: this process's rank on its node; with ``"cuda"``/``"auto"`` it picks the GPU.
        cuda_available, cuda_count: injected by tests; default asks torch.
    """
    avail = torch.cuda.is_available() if cuda_available is None else cuda_available
    count = (torch.cuda.device_count() if avail else 0) if cuda_count is None else cuda_count
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        spec = "cuda" if avail else "cpu"
        if spec == "cpu":
            return torch.device("cpu")
    if not spec.startswith("cuda"):
        raise ConfigError(f"train.device: must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if not avail:
        raise ConfigError(f"train.device: {spec!r} requested but CUDA is not available")
    if spec == "cuda":
        index = local_rank % max(count, 1)
    else:
        try:
            index = int(spec.split(":", 1)[1])
        except ValueError:
            raise ConfigError(f"train.device: cannot parse {spec!r}") from None
    if index >= count:
        raise ConfigError(f"train.device: {spec!r} but only {count} CUDA device(s) visible")
    return torch.device("cuda", index)


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = DistEnv()  # one process


def env_from_environ(environ: dict[str, str] | None = None) -> DistEnv:
    """The :class:`DistEnv` that ``torchrun``'s environment variables describe."""
    e = os.environ if environ is None else environ
    return DistEnv(int(e.get("RANK", 0)), int(e.get("WORLD_SIZE", 1)), int(e.get("LOCAL_RANK", 0)))


def init_distributed(device_spec: str = "auto") -> tuple[DistEnv, torch.device]:
    """Join the process group when launched with ``WORLD_SIZE > 1``; choose the device."""
    env = env_from_environ()
    device = select_device(device_spec, env.local_rank)
    if env.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), rank=env.rank, world_size=env.world_size)
    return env, device


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (a copy; identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def average_gradients(model: torch.nn.Module) -> None:
    """Average ``.grad`` of every parameter over processes in one flat collective.

    A parameter without a gradient on this process counts as zero, so all processes call the
    collective with the same shape whatever parts of the model their batch used.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
    ])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every process (same start everywhere)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
