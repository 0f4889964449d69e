"""The frame product's two plans against the number of edges: where the block plan wins.

``FrameProduct`` (tgkit/nn/edge_frame.py) runs either its gather plan (few operations: wins
when the per-call cost dominates, i.e. training graphs and GPUs) or its block plan (matmuls
with constant Clebsch-Gordan matrices: wins on the CPU once the wide elementwise passes of the
gather plan leave the cache). This times both on the convolutions of the ``--config`` model
(random weights, float32, 1 thread, CPU time) for several edge counts, forward under
``no_grad`` (inference) and forward + backward (training), alternating the plans, and prints
the CPU microseconds per edge; ``FrameProduct.blocks_min_edges`` is set from it.

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


def time_plan(conv: EquivariantConv, e: int, plan: str, backward: bool, reps: int) -> float:
    """Median CPU seconds of ``reps`` calls of the conv's frame product on ``e`` edges."""
    fp = conv.frame_product
    fp.force_plan = plan
    g = torch.Generator().manual_seed(0)
    x = torch.randn(e, fp.irreps_in.dim, generator=g, requires_grad=backward)
    w = torch.randn(e, conv.tp.weight_numel, generator=g, requires_grad=backward)
    times = []
    for _ in range(reps + 1):   # the first call warms up
        t0 = time.process_time()
        with torch.set_grad_enabled(backward):
            out = fp(x, w, conv.lin_post)
            if backward:
                out.pow(2).sum().backward()
        times.append(time.process_time() - t0)
    return sorted(times[1:])[reps // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--edges", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
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
    for mode in ("forward", "forward+backward"):
        for e in args.edges:
            best = {"gathers": float("inf"), "blocks": float("inf")}
            for _ in range(args.rounds):
                for plan in best:
                    t = sum(time_plan(c, e, plan, mode != "forward", args.reps) for c in convs)
                    best[plan] = min(best[plan], t)
            row = {"mode": mode, "edges": e,
                   "gathers_us_per_edge": 1e6 * best["gathers"] / e,
                   "blocks_us_per_edge": 1e6 * best["blocks"] / e}
            row["blocks_over_gathers"] = row["blocks_us_per_edge"] / row["gathers_us_per_edge"]
            rows.append(row)
            print(f"{mode:17s} E={e:5d}  gathers {row['gathers_us_per_edge']:7.2f}  blocks "
                  f"{row['blocks_us_per_edge']:7.2f} us/edge  "
                  f"ratio {row['blocks_over_gathers']:.2f}", flush=True)
    out = {"command": "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_frame_plans.py",
           "config": args.config, "convolutions": len(convs), "machine": machine_info(),
           "rows": rows}
    Path(args.results).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
