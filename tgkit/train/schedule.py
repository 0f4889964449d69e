"""Learning-rate schedule and weight averaging: pure functions of the step, exact on resume.

The cosine schedule is a function of the global step only (no scheduler state), so a resumed
run sets the same rate at the same step. The weight average is a list of shadow tensors saved
in checkpoints next to the raw weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def cosine_lr(step: int, total: int, lr: float, min_lr: float, warmup: int = 0) -> float:
    """Rate at 0-based ``step``: linear warmup from ``lr / 100`` over ``warmup`` steps, then a
    half cosine from ``lr`` to ``min_lr`` at step ``total - 1`` (held at ``min_lr`` after)."""
    if step < warmup:
        return lr * (0.01 + 0.99 * step / warmup)
    t = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))


class WeightAverage:
    """Exponential moving average of a model's parameters (buffers are taken as they are).

    ``update`` after every optimizer step; ``applied`` swaps the average in for evaluation and
    back afterwards. The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first
    updates, so early averages are not dominated by the random initialisation.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [n for n, _ in model.named_parameters()]
        self.shadow = [p.detach().clone() for p in model.parameters()]
        self.num_updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.num_updates += 1
        n = self.num_updates
        d = min(self.decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in model.parameters()], 1.0 - d)

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """Within the block the model holds the averaged weights."""
        params = list(model.parameters())
        raw = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, self.shadow, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, r in zip(params, raw, strict=True):
                    p.copy_(r)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": dict(zip(self.names, (s.detach().cpu() for s in self.shadow),
                                   strict=True))}

    def load_state_dict(self, state: dict) -> None:
        self.num_updates = int(state["num_updates"])
        for s, name in zip(self.shadow, self.names, strict=True):
            s.copy_(state["shadow"][name].to(s.device, s.dtype))


def inference_weights(state: dict) -> dict[str, torch.Tensor]:
    """The weights a checkpoint's model is evaluated with: the average when there is one."""
    weights = dict(state["model"])
    ema = state.get("ema")
    if ema:
        weights.update(ema["shadow"])
    return weights
