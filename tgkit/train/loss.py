"""The paper's training loss (eq. 10-11): masked MSE on H blocks plus a rescaled trace term.

``loss = loss_Q + mu * loss_T`` with ``mu = lambda * no_grad(loss_Q / loss_T)`` (lambda = 0.3 in
the paper). Both MSEs are means over the elements that exist (``H_MASK`` / ``BLOCK_MASK``).
Complex (SOC) blocks use ``|pred - label|^2``, the squared complex modulus, so real and
imaginary parts count alike.

Data parallelism: the loss is a *global* mean. :func:`masked_sums` gives per-process sums and
counts; :func:`combine` divides by counts reduced over all processes and scales by the world
size, so that averaging gradients over processes (what DDP does) reproduces the gradient of a
single process that saw the whole global batch, and ``mu`` uses the global loss ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tgkit import keys as K

Reducer = Callable[[torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def masked_sq_error(pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``|pred - label|^2`` over masked elements; complex-safe. Returns a real scalar."""
    diff = pred - label
    sq = diff.real.square() + diff.imag.square() if diff.is_complex() else diff.square()
    return torch.where(mask, sq, torch.zeros((), dtype=sq.dtype, device=sq.device)).sum()


def masked_mse(pred: torch.Tensor, label: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``|pred - label|^2`` over the elements where ``mask`` is True (0 if none)."""
    return masked_sq_error(pred, label, mask) / mask.sum().clamp(min=1)


@dataclass
class LossParts:
    """Terms of one step's loss. ``total`` carries the gradient; the rest are detached.

    ``loss_q`` and ``loss_t`` are the global (all-process) MSEs in eV^2 and eV^4; ``mu`` the
    trace weight actually used (0 without a trace term).
    """

    total: torch.Tensor
    loss_q: torch.Tensor
    loss_t: torch.Tensor
    mu: torch.Tensor


class TraceGradLoss:
    """``loss_Q + mu * loss_T``, ``mu = lam * no_grad(loss_Q / loss_T)`` (paper eq. 10-11).

    Args:
        lam: lambda of eq. 11 (0.3 in the paper). The trace term is used only when the model
            returns ``T_PRED`` (setups ``trace`` and ``tracegrad``) and ``lam > 0``.
        eps: guards ``loss_Q / loss_T`` when ``loss_T`` is 0.
    """

    def __init__(self, lam: float = 0.3, eps: float = 1e-30) -> None:
        self.lam = float(lam)
        self.eps = eps

    def uses_trace(self, out: dict[str, torch.Tensor]) -> bool:
        return self.lam > 0 and K.T_PRED in out

    def __call__(
        self,
        out: dict[str, torch.Tensor],
        label: torch.Tensor,
        reduce: Reducer = _identity,
        world_size: int = 1,
    ) -> LossParts:
        """The loss of one (local) batch.

        Args:
            out: model outputs (``H_PRED``, ``H_MASK`` and, with Trace, ``T_PRED``,
                ``T_LABEL``, ``BLOCK_MASK``).
            label: (E, B, B) or (E, 2B, 2B) the DFT blocks ``HAMILTONIAN``.
            reduce: sums a tensor over processes (identity in one process). It must not
                carry gradients; it only sees detached statistics.
            world_size: number of processes whose gradients are averaged.
        """
        mask = out[K.H_MASK]
        sq_q = masked_sq_error(out[K.H_PRED], label, mask)
        n_q = mask.sum().to(sq_q.dtype)
        stats = [sq_q.detach(), n_q]
        use_t = self.uses_trace(out)
        if use_t:
            bmask = out[K.BLOCK_MASK]
            sq_t = masked_sq_error(out[K.T_PRED], out[K.T_LABEL], bmask)
            stats += [sq_t.detach(), bmask.sum().to(sq_t.dtype)]
        # one collective for all statistics, not one per number
        g = reduce(torch.stack(stats))
        n_q_all = g[1].clamp(min=1)
        loss_q = g[0] / n_q_all
        total = sq_q * (world_size / n_q_all)
        zero = torch.zeros((), dtype=loss_q.dtype, device=loss_q.device)
        if not use_t:
            return LossParts(total, loss_q, zero, zero)
        n_t_all = g[3].clamp(min=1)
        loss_t = g[2] / n_t_all
        mu = self.lam * loss_q / (loss_t + self.eps)  # built from detached values: no gradient
        total = total + mu * sq_t * (world_size / n_t_all)
        return LossParts(total, loss_q, loss_t, mu)
