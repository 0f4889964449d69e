"""Structures per second of a training step against the batch size (issue 18, item 4).

Collates 1, 2, 4 ... structures of a DeepH tree (default: the four first of the shipped
graphene-8) into one batch and times full training steps (forward, the paper's loss,
backward, Adam), round-robin over the batch sizes so that load hits all alike. Reports the
median ms per step and per structure; whether a larger batch also converges as well per
CPU-second is a training question (bench_recipe.py / bench_converged.py with
``train.batch_size``), not answered here.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_batch.py --sizes 1 2 4
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_batch.py --config '' --setup tracegrad
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_step as bs  # noqa: E402

from tgkit.config import Config, TraceGradConfig, load_config  # noqa: E402
from tgkit.data.deeph import find_structures, read_structure  # noqa: E402
from tgkit.data.graph import collate, structure_to_graph  # noqa: E402
from tgkit.irreps import OrbitalBasis  # noqa: E402
from tgkit.nn import HamiltonianModel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "datasets/graphene-8"))
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"),
                   help="model section from this YAML ('': tgkit's defaults, paper widths)")
    p.add_argument("--setup", default="tracegrad")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)
    structures = [read_structure(d) for d in find_structures(args.data)[:max(args.sizes)]]
    basis = OrbitalBasis.union([{int(z): t for z, t in zip(s.numbers, s.orbital_types,
                                                            strict=True)} for s in structures])
    graphs = [structure_to_graph(s, basis, dtype=torch.float32) for s in structures]
    cfg = load_config(args.config) if args.config else Config()
    loss_fn = bs.make_loss(cfg.train.trace_lambda)
    torch.manual_seed(0)
    model = HamiltonianModel(basis, structures[0].spinful, cfg.model,
                             TraceGradConfig(setup=args.setup), dtype=torch.float32).train()
    steps = {b: bs.make_step(model, collate(graphs[:b]), torch.device("cpu"), loss_fn)
             for b in args.sizes}
    for b in args.sizes:
        steps[b]()
    times: dict[int, list[float]] = {b: [] for b in args.sizes}
    for _ in range(args.steps):
        for b in args.sizes:
            times[b].append(steps[b]())
    print(f"torch {torch.__version__}, 1 thread; {cfg.model.irreps_hidden}, "
          f"{cfg.model.num_blocks} blocks, {args.setup}; {args.data}")
    print("| batch | ms/step | ms/structure | structures/s | vs batch 1 |")
    print("| --- | --- | --- | --- | --- |")
    base = statistics.median(times[args.sizes[0]]) / args.sizes[0]
    for b in args.sizes:
        med = statistics.median(times[b])
        print(f"| {b} | {1e3 * med:.1f} | {1e3 * med / b:.1f} | {b / med:.2f} | "
              f"{base / (med / b):.2f}x |")


if __name__ == "__main__":
    main()
