"""``train.compile``: a module's training path through ``torch.compile``, eager otherwise.

A module opts in by holding ``compile_backend`` (None: eager) and calling
:func:`call_compiled` from its ``forward`` with its eager implementation;
:meth:`tgkit.nn.HamiltonianModel.compile_training` sets the backend. Prediction and validation
(gradients off) stay eager; where compiling fails (no C++ compiler, an unsupported torch), the
module warns once and stays eager.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def call_compiled(module: nn.Module, eager: Callable[..., Any], *args: Any) -> Any:
    """``eager(module, *args)``, compiled with ``module.compile_backend`` while gradients are on."""
    backend = getattr(module, "compile_backend", None)
    if backend is not None and torch.is_grad_enabled():
        try:
            return _compiled(eager, backend)(module, *args)
        except Exception as exc:  # noqa: BLE001 - no compiler, unsupported op, ...: eager
            warnings.warn(f"torch.compile of {type(module).__name__} failed, training continues "
                          f"without it ({type(exc).__name__}: {str(exc)[:200]})",
                          RuntimeWarning, stacklevel=3)
            module.compile_backend = None
    return eager(module, *args)


@functools.cache
def _compiled(fn: Callable[..., Any], backend: Any) -> Callable[..., Any]:
    """``fn`` compiled once per backend, with dynamic shapes (the number of edges changes from
    cell to cell); dynamo guards, and recompiles, per module instance."""
    return torch.compile(fn, dynamic=True, backend=backend)
