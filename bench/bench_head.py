"""The head's spinless decode: decoder then block map (two steps) against one folded matrix.

``HamiltonianHead.decode_blocks`` multiplies each edge by the product of the decoder (applied
to the identity) and ``to_block``; this times it against the two steps it replaces
(``head._blocks(head.decode(x))``) on one chunk of ``--edges`` random last-layer features of
the ``--config`` model, under ``torch.no_grad()``, alternating, 1 torch thread, process CPU
time (median of ``--reps``), after asserting both give the same blocks.

Usage (from the repository root)::

    .venv/bin/python bench/bench_head.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_tracegrad_module import carbon_model, median_ms  # noqa: E402
from machine import machine_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--edges", type=int, default=4096)
    p.add_argument("--reps", type=int, default=30)
    args = p.parse_args()
    model = carbon_model(args.config)
    head = model.head
    x = torch.randn(args.edges, head.irreps_in.dim)
    with torch.no_grad():
        two, one = head._blocks(head.decode(x)), head.decode_blocks(x)
        torch.testing.assert_close(one, two, atol=1e-4, rtol=1e-4)
        t_two, t_one = median_ms([lambda: head._blocks(head.decode(x)),
                                  lambda: head.decode_blocks(x)], args.reps, clock="process")
    print(f"machine: {machine_info()['cpu']}, 1 torch thread; {args.edges} edges, "
          f"{head.irreps_in.dim} features -> {head.basis.dim}x{head.basis.dim} blocks")
    print(f"two steps {t_two:.2f} CPU ms, one matrix {t_one:.2f} CPU ms, "
          f"ratio {t_one / t_two:.2f}")


if __name__ == "__main__":
    main()
