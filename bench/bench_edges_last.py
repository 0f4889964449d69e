"""Edge frames and rotations in both Wigner layouts, one chunk, timed in one process.

Builds the model of ``--config`` (seed 0, float32) and one chunk of ``--edges`` random edge
vectors, then for each layout of the Wigner matrices (``edges_last`` False: ``(E, 2l+1,
2l+1)`` and batched matmuls, the training path; True: ``(2l+1, 2l+1, E)``, what prediction
on a CPU uses) times, alternately, under ``torch.no_grad()`` on one torch thread:

* the edge frame (``tgkit.nn.edge_frame.edge_frame``: rotations, Wigner chain, m = 0 parts);
* the eight rotations of one chunk's four convolutions (into the frame before each product,
  back after it), with the irreps of each convolution; edges last, with the transposes the
  model does (edges first before the first rotation, edges last after the second: the
  block plan and the gate run in between, edges last).

It asserts both layouts give the same frames and rotations first. Process CPU time, median
of ``--reps``; read the ratio, not the absolute times (shared VM).

Usage (from the repository root)::

    .venv/bin/python bench/bench_edges_last.py --out bench/results/edges_last_1206.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_tracegrad_module import carbon_model, median_ms, ratio_table  # noqa: E402
from machine import machine_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--edges", type=int, default=4096, help="edges per chunk (CPU default)")
    p.add_argument("--reps", type=int, default=25)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    from tgkit.nn.edge_frame import edge_frame, rotate, rotate_edges_last

    model = carbon_model(args.config)
    lmax, top = model.model_config.lmax, model.lmax_features
    vec = torch.randn(args.edges, 3) * 2.0
    convs = [b.conv for blocks in (model.node_blocks, model.edge_blocks) for b in blocks]
    rows = []
    with torch.no_grad():
        sh = model.spherical_harmonics(vec)
        frames = [edge_frame(vec, sh, lmax, top, edges_last=last) for last in (False, True)]
        torch.testing.assert_close(frames[1].sh_m0, frames[0].sh_m0, atol=1e-5, rtol=0)
        for d0, d1 in zip(*(f.wigner for f in frames), strict=True):
            torch.testing.assert_close(d1.permute(2, 0, 1), d0, atol=1e-5, rtol=0)
        calls = [functools.partial(edge_frame, vec, sh, lmax, top, edges_last=last)
                 for last in (False, True)]
        t0, t1 = median_ms(calls, args.reps, clock="process")
        rows.append({"part": f"edge frame (Wigner chain up to l={top})",
                     "edges_first_ms": t0, "edges_last_ms": t1})
        # per convolution: its input into the frame and its output back, as the model runs
        # them; edges last with a transpose on each side (the block plan runs between)
        pairs = [(torch.randn(args.edges, c.lin_pre.irreps_out.dim), c.lin_pre.irreps_out,
                  torch.randn(args.edges, c.gate.irreps_out.dim), c.gate.irreps_out)
                 for c in convs]
        outs_t = [y.t().contiguous() for _, _, y, _ in pairs]   # the gate's output, (dim, E)
        for x, ix, y, iy in pairs:
            for v, irreps, to_frame in ((x, ix, True), (y, iy, False)):
                a = rotate(v, irreps, frames[0].wigner, to_frame)
                b = rotate_edges_last(v.t().contiguous(), irreps, frames[1].wigner, to_frame)
                torch.testing.assert_close(b.t(), a, atol=1e-4, rtol=0)

        def first() -> None:
            for x, ix, y, iy in pairs:
                rotate(x, ix, frames[0].wigner, True)
                rotate(y, iy, frames[0].wigner, False)

        def last() -> None:
            for (x, ix, _, iy), yt in zip(pairs, outs_t, strict=True):
                rotate_edges_last(x.t().contiguous(), ix, frames[1].wigner, True)
                rotate_edges_last(yt, iy, frames[1].wigner, False).t().contiguous()

        t0, t1 = median_ms([first, last], args.reps, clock="process")
        rows.append({"part": f"rotations of {len(convs)} convolutions (in and out; edges "
                             "last: with the transposes)",
                     "edges_first_ms": t0, "edges_last_ms": t1})
    info = machine_info()
    print(f"machine: {info['cpu']}, 1 torch thread; {args.edges} edges")
    ratio_table(rows, "part", "edges_first_ms", "edges_last_ms",
                ("part", "edges first (CPU ms)", "edges last (CPU ms)"))
    if args.out:
        Path(args.out).write_text(json.dumps({"edges": args.edges, "config": args.config,
                                              "machine": info, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
