"""How large is Grad's update v against the features f it is added to (o = f + v)?

For every TraceGrad module of a model (node and edge positions of every block) it reports
rms(v) / rms(f) over the items of real DFT structures, for a freshly initialised model of a
config (``--config``, per ``--init`` variant) and for trained models (``--model``, a run
directory or model.pt). A ratio far above 1 means the non-linear update swamps the equivariant
features at the start (the residual does not start near the baseline); far below 1 means Grad
contributes little.

Usage (repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/grad_size.py --config configs/default.yaml \\
        --model runs/converged/bilayer/tracegrad/seed0 --data datasets/tbg-21.8/t000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit.config import load_config  # noqa: E402
from tgkit.data.deeph import find_structures, read_structure  # noqa: E402
from tgkit.data.graph import structure_to_graph  # noqa: E402
from tgkit.irreps import OrbitalBasis  # noqa: E402
from tgkit.nn import HamiltonianModel, TraceGrad  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ratios(model: HamiltonianModel, graphs: list[dict]) -> dict[str, float]:
    """rms(v) / rms(f) of every TraceGrad module (v = o - f), over all items of ``graphs``."""
    sums: dict[str, list[float]] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, TraceGrad) and mod.use_grad:
            def hook(m, inp, out, name=name):
                f, o = inp[0].detach(), out[0].detach()
                s = sums.setdefault(name, [0.0, 0.0])
                s[0] += float((o - f).pow(2).sum())
                s[1] += float(f.pow(2).sum())
            handles.append(mod.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        for g in graphs:
            model(g)
    for h in handles:
        h.remove()
    return {k: (v / f) ** 0.5 for k, (v, f) in sums.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--data", nargs="+", default=[str(ROOT / "datasets/graphene-8/0000")])
    p.add_argument("--init", nargs="+", default=["default", "zero"],
                   help="tracegrad.grad_init variants to initialise (seed 0)")
    p.add_argument("--model", nargs="*", default=[], help="trained runs or model.pt files")
    p.add_argument("--results", default=str(ROOT / "bench/results/grad_size.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    structures = [read_structure(d) for root in args.data for d in find_structures(root)]
    cfg = load_config(args.config)
    doc: dict = {"machine": machine_info(), "data": args.data, "init": {}, "trained": {}}
    for init in args.init:
        tg = dataclasses.replace(cfg.tracegrad, setup="tracegrad", grad_init=init)
        basis = OrbitalBasis.union([s.species_basis() for s in structures])
        torch.manual_seed(0)
        model = HamiltonianModel(basis, False, cfg.model, tg, dtype=torch.float32)
        graphs = [structure_to_graph(s, model.basis, dtype=torch.float32) for s in structures]
        doc["init"][init] = ratios(model, graphs)
    from tgkit.train.run import load_inference_model

    for m in args.model:
        model, _ = load_inference_model(m, "cpu")
        graphs = [structure_to_graph(s, model.basis, dtype=next(model.parameters()).dtype)
                  for s in structures]
        doc["trained"][m] = ratios(model, graphs)
    Path(args.results).write_text(json.dumps(doc, indent=1) + "\n")
    for kind in ("init", "trained"):
        for name, r in doc[kind].items():
            print(f"{kind:8s} {name}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items()))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
