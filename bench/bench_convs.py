"""CPU time of the four convolutions of ``configs/default.yaml``'s model on one inference chunk.

Builds the model (seed 0, float32), the geometry of ``--edges`` random edge vectors (every
50th a self-loop, as the on-site edges of a real graph), and times each block's
``EquivariantConv`` forward under ``torch.no_grad()`` on one torch thread (process CPU time,
mean of ``--reps`` calls after 3 warm-up calls). To compare two versions of the code, run it
in both checkouts back to back, e.g. with an older commit in a worktree::

    git worktree add /tmp/old REV
    PYTHONPATH=/tmp/old .venv/bin/python /tmp/old/bench/bench_convs.py   # if it has the file
    .venv/bin/python bench/bench_convs.py

(an older checkout without this file: copy it there; it only uses the public model API).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--edges", type=int, default=4096, help="edges in the chunk")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    args = p.parse_args()
    torch.set_num_threads(1)
    from tgkit.config import load_config
    from tgkit.irreps import OrbitalBasis
    from tgkit.nn import HamiltonianModel

    cfg = load_config(args.config)
    torch.manual_seed(0)
    model = HamiltonianModel(OrbitalBasis({6: (0, 0, 1, 1, 2)}), False, cfg.model,
                             cfg.tracegrad, dtype=torch.float32)
    vec = torch.randn(args.edges, 3) * 3.0
    vec[::50] = 0.0
    total = 0.0
    with torch.no_grad():
        radial, sh, frame = model.edge_geometry(vec)
        for name, blocks in (("node", model.node_blocks), ("edge", model.edge_blocks)):
            for k, blk in enumerate(blocks):
                x = torch.randn(args.edges, blk.conv.irreps_in.dim)
                for _ in range(3):
                    blk.conv(x, sh, radial, frame)
                t0 = time.process_time()
                for _ in range(args.reps):
                    blk.conv(x, sh, radial, frame)
                ms = (time.process_time() - t0) / args.reps * 1e3
                total += ms
                print(f"{name} block {k}: {ms:.2f} CPU ms")
    print(f"all convolutions: {total:.2f} CPU ms for {args.edges} edges")


if __name__ == "__main__":
    main()
