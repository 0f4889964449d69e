"""The frame product of this checkout against a git revision's, timed in one process.

Loads ``tgkit/nn/edge_frame.py`` as it is now and as it was at ``--against`` (``git show``),
builds the model of ``--config`` (seed 0, float32), and for every convolution makes the old
``FrameProduct`` from the same tensor product and linear. On one chunk of ``--edges`` random
inputs under ``torch.no_grad()``, each version in its CPU prediction plan (edges last where
the version has it, ``forward(..., edges_last=True)`` on transposed inputs; edges first
before), it asserts both give the same output and times them alternately (process CPU
time, median of ``--reps``, 1 torch thread).
Alternating keeps machine load alike for both: read the ratio, not the absolute times.

Usage (from the repository root)::

    .venv/bin/python bench/bench_frame_product.py --against e92c5d7 \\
        --out bench/results/frame_product_1206.json
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_tracegrad_module import (  # noqa: E402
    carbon_model,
    load_module,
    median_ms,
    ratio_table,
)
from machine import machine_info  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", required=True, help="git revision of the old edge_frame.py")
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--edges", type=int, default=4096, help="edges per call (inference chunk)")
    p.add_argument("--reps", type=int, default=25)
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args()
    rel = "tgkit/nn/edge_frame.py"
    src = subprocess.run(["git", "show", f"{args.against}:{rel}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "old.py").write_text(src)
        old = load_module(Path(tmp) / "old.py", "edge_frame_old")
    model = carbon_model(args.config)
    rows = []
    with torch.no_grad():
        for name, blocks in (("node", model.node_blocks), ("edge", model.edge_blocks)):
            for k, blk in enumerate(blocks):
                conv, new_fp = blk.conv, blk.conv.frame_product
                old_fp = old.FrameProduct(conv.tp, conv.lin_post)
                x = torch.randn(args.edges, new_fp.irreps_in.dim)
                w = torch.randn(args.edges, new_fp.weight_order.numel())
                xt, wt = x.t().contiguous(), w.t().contiguous()
                # each version's CPU prediction plan: edges last where it has one
                calls = [functools.partial(fp, xt, wt, conv.lin_post, edges_last=True)
                         if "edges_last" in inspect.signature(fp.forward).parameters
                         else functools.partial(fp, x, w, conv.lin_post)
                         for fp in (old_fp, new_fp)]
                a, b = (c() if c.args[0] is x else c().t() for c in calls)
                diff = (a - b).abs().max().item()
                assert diff <= 1e-4 * (1 + a.abs().max().item()), f"outputs differ by {diff}"
                t_old, t_new = median_ms(calls, args.reps, clock="process")
                rows.append({"block": f"{name} {k}", "irreps_out": str(new_fp.irreps_out),
                             "old_ms": t_old, "new_ms": t_new, "max_abs_diff": diff})
    info = machine_info()
    print(f"machine: {info['cpu']}, 1 torch thread; old = {args.against}; {args.edges} edges")
    ratio_table(rows, "block", "old_ms", "new_ms",
                ("convolution", "old (CPU ms)", "new (CPU ms)"))
    old_t, new_t = sum(r["old_ms"] for r in rows), sum(r["new_ms"] for r in rows)
    print(f"| all | {old_t:.2f} | {new_t:.2f} | {new_t / old_t:.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"against": args.against, "edges": args.edges,
                                              "config": args.config, "machine": info,
                                              "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
