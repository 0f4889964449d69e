"""The frame product's two plans against the number of edges, forward only (prediction).

``FrameProduct`` (tgkit/nn/edge_frame.py) runs either its gather plan (few operations, with
autograd: training, and GPUs) or, without autograd on a CPU, its block plan on features laid
out edges last (matmuls with constant Clebsch-Gordan matrices and E columns). This times both
forward under ``no_grad`` on the convolutions of the ``--config`` model (random weights,
float32, 1 thread, CPU time; the block plan on transposed inputs, as the model hands them
over) for several edge counts, alternating the plans, and prints the CPU microseconds per
edge. The block plan runs whenever there is no autograd on a CPU: it wins from a few hundred
edges (a chunk of 4,096, a training cell's graph), and where it loses, on the last few dozen
edges of a prediction or a cell that small, that costs a few milliseconds. (It has no
backward: training keeps the gather plan.)

Usage (repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frame_plans.py

writes bench/results/frame_plans.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit.config import load_config  # noqa: E402
from tgkit.irreps import OrbitalBasis  # noqa: E402
from tgkit.nn import HamiltonianModel  # noqa: E402
from tgkit.nn.blocks import EquivariantConv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def time_plan(conv: EquivariantConv, e: int, plan: str, reps: int) -> float:
    """Median CPU seconds of ``reps`` forward calls of the conv's frame product on ``e``
    edges under ``no_grad``: ``plan`` 'gathers' (edges first) or 'blocks' (edges last)."""
    fp = conv.frame_product
    g = torch.Generator().manual_seed(0)
    x = torch.randn(e, fp.irreps_in.dim, generator=g)
    w = torch.randn(e, conv.tp.weight_numel, generator=g)
    if plan == "blocks":
        x, w = x.t().contiguous(), w.t().contiguous()
    times = []
    for _ in range(reps + 1):   # the first call warms up
        t0 = time.process_time()
        with torch.no_grad():
            fp(x, w, conv.lin_post, edges_last=plan == "blocks")
        times.append(time.process_time() - t0)
    return sorted(times[1:])[reps // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--edges", type=int, nargs="+", default=[64, 256, 512, 1024, 4096])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--rounds", type=int, default=2, help="alternations of the two plans")
    p.add_argument("--results", default=str(ROOT / "bench/results/frame_plans.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    basis = OrbitalBasis({6: (0, 0, 1, 1, 2)})   # C 2s2p1d, as graphene-8
    torch.manual_seed(0)
    model = HamiltonianModel(basis, False, cfg.model, cfg.tracegrad, dtype=torch.float32)
    convs = [m for m in model.modules() if isinstance(m, EquivariantConv)]
    rows = []
    for mode in ("forward",):
        for e in args.edges:
            best = {"gathers": float("inf"), "blocks": float("inf")}
            for _ in range(args.rounds):
                for plan in best:
                    t = sum(time_plan(c, e, plan, args.reps) for c in convs)
                    best[plan] = min(best[plan], t)
            row = {"mode": mode, "edges": e,
                   "gathers_us_per_edge": 1e6 * best["gathers"] / e,
                   "blocks_us_per_edge": 1e6 * best["blocks"] / e}
            row["blocks_over_gathers"] = row["blocks_us_per_edge"] / row["gathers_us_per_edge"]
            rows.append(row)
            print(f"{mode:17s} E={e:5d}  gathers {row['gathers_us_per_edge']:7.2f}  blocks "
                  f"{row['blocks_us_per_edge']:7.2f} us/edge  "
                  f"ratio {row['blocks_over_gathers']:.2f}", flush=True)
    out = {"command": "OMP_NUM_THREADS=1 .venv/bin/python " + " ".join(sys.argv),
           "config": args.config, "convolutions": len(convs), "machine": machine_info(),
           "rows": rows}
    Path(args.results).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
