"""Process-wide settings that make tgkit's CPU work faster (each applied once per process),
and the one test that picks tgkit's plans for prediction on a CPU."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import torch


def cpu_prediction(device: torch.device) -> bool:
    """Work on ``device`` is prediction (or validation) on a CPU: no autograd. There tgkit runs
    its edges-last plans (Wigner matrices, rotations, frame product, TraceGrad; each tested
    equal to the training path) and edge chunks in worker threads."""
    return device.type == "cpu" and not torch.is_grad_enabled()



@functools.cache
def reuse_freed_memory() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse (once per process).

    By default, blocks from 128 KiB up are mapped fresh from the kernel and returned on free,
    so every chunk's activations and every large temporary of a training step (MBs each) are
    page-faulted and zeroed again: 7-14 % of a CPU prediction of 1,084 atoms, nothing
    measurable at 10,444 (``bench/bench_inference.py --allocator default`` against ``reuse``),
    and ~4 % of a training step (bench/README.md), with the same peak memory.
    :func:`tgkit.nn.inference.predict_chunked`, ``predict_structure`` and
    :func:`tgkit.train.run.train` call it. Returns False where the
    C library is not glibc (nothing is changed there).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3   # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 * 2**20)) and bool(
        mallopt(m_trim_threshold, 2**30))
