"""Where inference time goes: CPU seconds per module type of one chunked prediction.

Forward hooks take ``time.process_time()`` around the leaf modules of the model of
``configs/default.yaml`` (random weights, float32, ``torch.no_grad()``) while it predicts a
twisted bilayer graphene (``--m``; 3: 148 atoms) on one torch thread. CPU time, not wall time,
so the shares hold on a loaded machine.

Usage (repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/profile_inference.py --m 3
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

import torch

from tgkit.config import load_config
from tgkit.data.deeph import Structure
from tgkit.data.graph import structure_to_graph
from tgkit.data.structures import twisted_bilayer_graphene
from tgkit.irreps import OrbitalBasis
from tgkit.nn import HamiltonianModel, TraceGrad
from tgkit.nn.inference import predict_chunked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def tag_of(name: str, mod: torch.nn.Module) -> str | None:
    """A label for the modules we time (disjoint: none contains another that is timed)."""
    leaf = name.split(".")[-1]
    if isinstance(mod, TraceGrad):
        return "TraceGrad (node+edge)"
    if ".conv." in f".{name}.":
        return {"frame_product": "conv: TP with SH + linear, in the edge frame",
                "tp": "conv: tensor product with SH", "lin_post": "conv: linear after TP",
                "lin_pre": "conv: linear before TP", "radial": "conv: radial MLP (TP weights)",
                "gate": "conv: gate"}.get(leaf)
    return {"lin_post": "block: linear after aggregation", "self_connection":
            "block: species self-connection", "norm": "block: layer norm", "head": "head",
            "spherical_harmonics": "spherical harmonics"}.get(leaf)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--results", default=str(ROOT / "bench/results/profile_inference.json"))
    args = p.parse_args()
    from machine import machine_info

    info = machine_info()
    torch.set_num_threads(1)
    cfg = load_config(args.config)
    basis = OrbitalBasis({6: (0, 0, 1, 1, 2)})
    atoms = twisted_bilayer_graphene(args.m)
    s = Structure(numbers=atoms.numbers, lattice=atoms.cell.array, positions=atoms.positions,
                  orbital_types=[[0, 0, 1, 1, 2]] * len(atoms), hamiltonians={})
    g = structure_to_graph(s, basis, cutoff=7.0, dtype=torch.float32)
    torch.manual_seed(0)
    model = HamiltonianModel(basis, False, cfg.model, cfg.tracegrad,
                             dtype=torch.float32).export_inference()
    acc: dict[str, float] = collections.defaultdict(float)
    for name, mod in model.named_modules():
        tag = tag_of(name, mod)
        if tag is None:
            continue

        def pre(m, _inp, tag=tag):
            m._t0 = time.process_time()

        def post(m, _inp, _out, tag=tag):
            acc[tag] += time.process_time() - m._t0

        mod.register_forward_pre_hook(pre)
        mod.register_forward_hook(post)
    c0 = time.process_time()
    with torch.no_grad():
        predict_chunked(model, g, args.chunk)
    total = time.process_time() - c0
    edges = int(g["edge_index"].shape[1])
    acc["other (edge frames, rotations, gathers, sums)"] = total - sum(acc.values())
    rows = {k: {"cpu_s": round(v, 3), "share": round(v / total, 3)}
            for k, v in sorted(acc.items(), key=lambda kv: -kv[1])}
    doc = {"command": " ".join(["bench/profile_inference.py", *sys.argv[1:]]), "machine": info,
           "atoms": len(atoms), "edges": edges, "cpu_s": round(total, 3),
           "cpu_us_per_edge": round(1e6 * total / edges, 1),
           "tp_weight_numel": [b.conv.tp.weight_numel for b in
                               [*model.node_blocks, *model.edge_blocks]],
           "tp_out_dim": [b.conv.tp.irreps_out.dim for b in
                          [*model.node_blocks, *model.edge_blocks]],
           "modules": rows}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
