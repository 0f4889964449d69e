"""The paper's loss: masked complex-safe MSE, mu without gradient, global normalisation."""

from __future__ import annotations

import torch

from tgkit import keys as K
from tgkit.train.loss import TraceGradLoss, masked_mse


def _outputs(seed: int, e: int = 5, b: int = 4, p: int = 3, complex_: bool = False):
    g = torch.Generator().manual_seed(seed)
    dt = torch.complex128 if complex_ else torch.float64
    h = torch.randn(e, b, b, generator=g, dtype=dt).requires_grad_(True)
    t = torch.randn(e, p, generator=g, dtype=torch.float64).requires_grad_(True)
    out = {K.H_PRED: h, K.H_MASK: torch.rand(e, b, b, generator=g) > 0.3,
           K.T_PRED: t, K.T_LABEL: torch.randn(e, p, generator=g, dtype=torch.float64),
           K.BLOCK_MASK: torch.rand(e, p, generator=g) > 0.2}
    return out, torch.randn(e, b, b, generator=g, dtype=dt)


def test_masked_mse_complex_is_squared_modulus():
    out, label = _outputs(0, complex_=True)
    d = (out[K.H_PRED] - label)[out[K.H_MASK]]
    expected = (d.real**2 + d.imag**2).mean()
    got = masked_mse(out[K.H_PRED], label, out[K.H_MASK])
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected)


def test_mu_carries_no_gradient_and_balances_terms():
    out, label = _outputs(1)
    lam = 0.3
    parts = TraceGradLoss(lam)(out, label)
    lq = masked_mse(out[K.H_PRED], label, out[K.H_MASK])
    lt = masked_mse(out[K.T_PRED], out[K.T_LABEL], out[K.BLOCK_MASK])
    mu = lam * (lq / lt).detach()
    torch.testing.assert_close(parts.mu, mu)
    # mu * loss_T == lambda * loss_Q in value: the terms are balanced
    torch.testing.assert_close(parts.total, (1 + lam) * lq)
    g = torch.autograd.grad(parts.total, [out[K.H_PRED], out[K.T_PRED]])
    ref = torch.autograd.grad(lq + mu * lt, [out[K.H_PRED], out[K.T_PRED]])
    for a, b in zip(g, ref, strict=True):
        torch.testing.assert_close(a, b)


def test_no_trace_term_without_t_pred_or_lambda():
    out, label = _outputs(2)
    del out[K.T_PRED]
    parts = TraceGradLoss(0.3)(out, label)
    assert float(parts.mu) == 0.0 and float(parts.loss_t) == 0.0
    out, label = _outputs(2)
    assert float(TraceGradLoss(0.0)(out, label).mu) == 0.0


def test_two_shards_average_to_the_full_batch_gradient():
    out, label = _outputs(3, e=6)
    full = TraceGradLoss()(out, label)
    g_full = torch.autograd.grad(full.total, [out[K.H_PRED], out[K.T_PRED]])
    shards = [slice(0, 2), slice(2, 6)]  # unequal element counts on purpose
    loss_fn = TraceGradLoss()

    def sub(s):
        return {k: v[s] for k, v in out.items()}, label[s]

    # the reducer sums the statistics of both shards, as all_reduce would
    stats = []
    for s in shards:
        o, lab = sub(s)
        loss_fn(o, lab, reduce=lambda t: stats.append(t) or t)
    total_stats = stats[0] + stats[1]
    grads = [torch.zeros_like(out[K.H_PRED]), torch.zeros_like(out[K.T_PRED])]
    for s in shards:
        o, lab = sub(s)
        p = loss_fn(o, lab, reduce=lambda t: total_stats, world_size=2)
        torch.testing.assert_close(p.loss_q, full.loss_q)
        gh, gt = torch.autograd.grad(p.total, [out[K.H_PRED], out[K.T_PRED]])
        grads[0] += gh / 2  # DDP averages over processes
        grads[1] += gt / 2
    for a, b in zip(grads, g_full, strict=True):
        torch.testing.assert_close(a, b)
