"""The cosine schedule and the weight average: exact, resumable, used for evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from tgkit.train.schedule import WeightAverage, cosine_lr, inference_weights


def test_cosine_schedule_shape():
    lr, lo, total, warm = 0.01, 1e-4, 101, 10
    assert cosine_lr(0, total, lr, lo, warm) == pytest.approx(lr / 100)
    assert cosine_lr(5, total, lr, lo, warm) == pytest.approx(lr * (0.01 + 0.99 * 0.5))
    assert cosine_lr(warm, total, lr, lo, warm) == pytest.approx(lr)
    mid = warm + (total - 1 - warm) // 2
    assert cosine_lr(mid, total, lr, lo, warm) == pytest.approx(0.5 * (lr + lo), rel=1e-2)
    assert cosine_lr(total - 1, total, lr, lo, warm) == pytest.approx(lo)
    assert cosine_lr(total + 50, total, lr, lo, warm) == pytest.approx(lo)  # held after the end
    values = [cosine_lr(s, total, lr, lo, warm) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))  # monotone decay


def test_weight_average_tracks_and_swaps():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = WeightAverage(model, decay=0.9)
    start = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        ema.update(model)
    # the ramp min(0.9, (1+n)/(10+n)) weighs the first updates: shadow = running blend
    expected = start[0].clone()
    for n in (1, 2, 3):
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * (start[0] + n)
    assert torch.allclose(ema.shadow[0], expected)
    raw = model.weight.detach().clone()
    with ema.applied(model):
        assert torch.equal(model.weight, ema.shadow[0])
    assert torch.equal(model.weight, raw)  # swapped back
    state = ema.state_dict()
    other = WeightAverage(model, decay=0.9)
    other.load_state_dict(state)
    assert other.num_updates == 3 and torch.equal(other.shadow[0], ema.shadow[0])
    weights = inference_weights({"model": model.state_dict(), "ema": state})
    assert torch.equal(weights["weight"], ema.shadow[0])
    assert torch.equal(inference_weights({"model": model.state_dict()})["weight"], raw)
    assert math.isclose(ema.decay, 0.9)
