"""Where inference time goes: CPU seconds per module type of one chunked prediction.

Forward hooks (and wrappers around the edge-frame rotations and Wigner-D builder) take
``time.process_time()`` around the parts of the model of ``configs/default.yaml`` (random
weights, float32, ``torch.no_grad()``) while it predicts a twisted bilayer graphene (``--m``;
3: 148 atoms) on one torch thread, in chunks of ``--chunk`` edges. CPU time, not wall time, so
the shares hold on a loaded machine.

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

import tgkit.nn.blocks
import tgkit.nn.inference
import tgkit.nn.model
from tgkit.config import load_config
from tgkit.data.deeph import Structure
from tgkit.data.graph import structure_to_graph
from tgkit.data.structures import twisted_bilayer_graphene
from tgkit.irreps import OrbitalBasis
from tgkit.nn import HamiltonianModel, TraceGrad
from tgkit.nn.blocks import EquivariantConv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


CONV_REST = "conv: rest (radial MLP and the product's weights)"
FIRST_LINEAR = "conv: first linear (node parts once per node, edge part per edge)"


def tag_of(name: str, mod: torch.nn.Module) -> str | None:
    """A label for the modules we time (disjoint, except whole convolutions: CONV_REST)."""
    leaf = name.split(".")[-1]
    if isinstance(mod, TraceGrad):
        return "TraceGrad (node+edge)"
    if ".pre_parts." in f".{name}.":
        return FIRST_LINEAR
    if ".conv." in f".{name}.":
        return {"frame_product": "conv: TP with SH + linear, in the edge frame",
                "gate": "conv: gate"}.get(leaf)
    if name == "head.linear":
        return "head: linear decoder"
    return {"lin_post": "block: linear after aggregation", "self_connection":
            "block: species self-connection", "norm": "block: layer norm",
            "spherical_harmonics": "spherical harmonics"}.get(leaf)


def time_function(module, name: str, tag: str, acc: dict[str, float]) -> None:
    """Replace ``module.name`` by a wrapper that adds its CPU seconds to ``acc[tag]``."""
    fn = getattr(module, name)

    def timed(*args, **kwargs):
        t0 = time.process_time()
        out = fn(*args, **kwargs)
        acc[tag] += time.process_time() - t0
        return out

    setattr(module, name, timed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=3)
    p.add_argument("--chunk", type=int, default=tgkit.nn.inference.CPU_CHUNK_EDGES,
                   help="edges per chunk")
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
    rotations = "conv: rotations into / out of the edge frame"
    time_function(tgkit.nn.blocks, "rotate", rotations, acc)   # training layout
    time_function(tgkit.nn.blocks, "rotate_edges_last", rotations, acc)   # prediction on a CPU
    time_function(tgkit.nn.model, "edge_frame", "edge frames (Wigner-D per edge, once)", acc)
    for mod in model.modules():   # a convolution from its first linear's output on
        if isinstance(mod, EquivariantConv):
            time_function(mod, "forward_mid", CONV_REST, acc)
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
        tgkit.nn.inference.predict_chunked(model, g, args.chunk)
    total = time.process_time() - c0
    edges = int(g["edge_index"].shape[1])
    # convolutions after their first linear were timed under CONV_REST: keep only what no
    # other tag covers
    acc[CONV_REST] -= sum(v for k, v in acc.items()
                          if k.startswith("conv:") and k not in (CONV_REST, FIRST_LINEAR))
    acc["other (gathers, message sums, head symmetrisation, copies)"] = total - sum(acc.values())
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
