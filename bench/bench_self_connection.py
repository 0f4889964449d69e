"""Species self-connection: the table path against e3nn's per-item weights, in one process.

``SpeciesLinear`` (``tgkit/nn/blocks.py``) runs every species (pair) map on every item and
keeps each item's own when there are at most ``max_table_types`` types; otherwise e3nn's
``Linear`` with a weight vector copied per item. Both give the same values and gradients
(``tests/nn/test_blocks.py``). This script times whole training steps (forward, the trainer's
loss, backward, Adam) of one model with the two paths switched step by step, so that load on
a shared machine hits both alike, by process CPU time (1 thread) and wall time.

Usage (repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_self_connection.py --steps 20
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_self_connection.py --setup tracegrad
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_self_connection.py --profile per-item

``--profile PATH`` prints the share of one step's CPU time spent in ``aten::fill_`` (the
zero-fills of backward) with that path, from ``torch.profiler``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import build_graph, make_loss, make_step  # noqa: E402
from machine import machine_info  # noqa: E402

from tgkit import keys as K  # noqa: E402
from tgkit.config import ModelConfig, TraceGradConfig  # noqa: E402
from tgkit.nn import HamiltonianModel  # noqa: E402
from tgkit.nn.blocks import SpeciesLinear  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", default="baseline")
    p.add_argument("--steps", type=int, default=20, help="timed steps per path")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--irreps-hidden", default=None, help="default: DeepH-E3's widths")
    p.add_argument("--num-blocks", type=int, default=None)
    p.add_argument("--results", default=None, help="write a JSON here")
    p.add_argument("--profile", choices=["table", "per-item"], default=None,
                   help="profile 3 steps of this path instead of timing")
    args = p.parse_args()
    torch.set_num_threads(1)
    graph, basis, spinful = build_graph(argparse.Namespace(data=None, dtype="float32"))
    mc = ModelConfig()
    mc = dataclasses.replace(mc, irreps_hidden=args.irreps_hidden or mc.irreps_hidden,
                             num_blocks=args.num_blocks or mc.num_blocks)
    torch.manual_seed(0)
    model = HamiltonianModel(basis, spinful, mc, TraceGradConfig(setup=args.setup),
                             dtype=torch.float32).train()
    step = make_step(model, graph, torch.device("cpu"), make_loss(0.3))
    paths = {"table": SpeciesLinear.max_table_types, "per-item": 0}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        SpeciesLinear.max_table_types = paths[args.profile]
        for _ in range(args.warmup):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        ev = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ev)
        fill = sum(e.self_cpu_time_total for e in ev if e.key == "aten::fill_")
        print(f"{args.profile}: aten::fill_ {100 * fill / total:.1f} % of the self CPU time "
              f"of 3 steps ({total / 3e3:.1f} ms per step)")
        return
    cpu: dict[str, list[float]] = {k: [] for k in paths}
    wall: dict[str, list[float]] = {k: [] for k in paths}
    for k in range(args.warmup + args.steps):
        for name, limit in paths.items():
            SpeciesLinear.max_table_types = limit
            c0 = time.process_time()
            w = step()
            if k >= args.warmup:
                cpu[name].append(1e3 * (time.process_time() - c0))
                wall[name].append(1e3 * w)
    SpeciesLinear.max_table_types = paths["table"]
    doc = {"machine": machine_info(), "setup": args.setup, "irreps_hidden": mc.irreps_hidden,
           "num_blocks": mc.num_blocks, "edges": int(graph[K.EDGE_INDEX].shape[1]),
           "cpu_ms": cpu, "wall_ms": wall,
           "median_cpu_ms": {k: statistics.median(v) for k, v in cpu.items()},
           "median_wall_ms": {k: statistics.median(v) for k, v in wall.items()}}
    m = doc["median_cpu_ms"]
    print(f"{args.setup}, {mc.irreps_hidden}, {mc.num_blocks} blocks, "
          f"{doc['edges']} edges, median of {args.steps} alternating steps:")
    for name in paths:
        print(f"  {name:9s} CPU {m[name]:7.1f} ms   wall {doc['median_wall_ms'][name]:7.1f} ms")
    print(f"  per-item / table (CPU): {m['per-item'] / m['table']:.2f}x")
    if args.results:
        Path(args.results).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
