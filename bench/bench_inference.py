"""Inference scaling: predict H of twisted bilayer graphene of ~1k, ~4k and 10k+ atoms.

Each size runs in its own subprocess, so its peak memory (VmHWM of /proc/self/status: the
resident high-water mark, torch's allocations included) is that size's alone. A child builds
the commensurate twisted bilayer (``tgkit.data.structures.twisted_bilayer_graphene(m)``,
4 (3m^2 + 3m + 1) atoms, C 2s2p1d = 13 orbitals), its 7.0 Angstrom neighbour graph (the pair
cutoff of the shipped data; ``structure_to_graph(..., cutoff=7.0)``), and the model of
``configs/default.yaml`` (the README's default job; weights from ``--model`` or random: the
cost does not depend on their values), then predicts every block in float32 under
``torch.no_grad()`` with :func:`tgkit.nn.inference.predict_chunked`.

Reported per size: atoms, edges, seconds for structure, graph and prediction (wall and CPU),
peak RSS, and the scaling exponent between sizes; time(4N)/time(N) is the measured time ratio
of the two sizes rescaled to exactly 4x atoms with the measured exponent.

Usage (repository root)::

    .venv/bin/python bench/bench_inference.py                      # m = 9, 19 (1084, 4564 atoms)
    .venv/bin/python bench/bench_inference.py --m 9 19 29          # + 10,444 atoms
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def vm_hwm_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    import tgkit.nn.inference
    from tgkit import keys as K
    from tgkit.config import load_config
    from tgkit.data.deeph import Structure
    from tgkit.data.graph import structure_to_graph
    from tgkit.data.structures import twisted_bilayer_graphene
    from tgkit.irreps import OrbitalBasis
    from tgkit.nn import HamiltonianModel, load_model
    from tgkit.nn.inference import predict_chunked

    if args.allocator == "default":  # glibc's defaults: skip predict_chunked's tuning
        tgkit.nn.inference.reuse_freed_memory = lambda: False

    if args.model:
        model = load_model(args.model).float()
        basis = model.basis
    else:
        cfg = load_config(args.config)
        basis = OrbitalBasis({6: (0, 0, 1, 1, 2)})
        torch.manual_seed(0)
        model = HamiltonianModel(basis, False, cfg.model, cfg.tracegrad, dtype=torch.float32)
    dev = torch.device(args.device)
    model = model.export_inference().to(dev)
    setup = model.setup
    rec: dict = {"m": args.child, "threads": torch.get_num_threads(), "setup": setup,
                 "allocator": args.allocator, "workers": args.workers,
                 "device": str(dev),
                 "chunk_edges": args.chunk, "hwm_after_model_GiB": vm_hwm_gib()}
    t = time.perf_counter()
    atoms = twisted_bilayer_graphene(args.child)
    rec["structure_s"] = time.perf_counter() - t
    s = Structure(numbers=atoms.numbers, lattice=atoms.cell.array, positions=atoms.positions,
                  orbital_types=[list(basis.orbital_types[6])] * len(atoms), hamiltonians={})
    t = time.perf_counter()
    g = structure_to_graph(s, basis, cutoff=args.cutoff, dtype=torch.float32)
    rec["graph_s"] = time.perf_counter() - t
    rec.update(atoms=len(atoms), twist_deg=atoms.info["twist_angle"],
               edges=int(g[K.EDGE_INDEX].shape[1]))
    g = {k: v.to(dev) for k, v in g.items()}
    t, c = time.perf_counter(), cpu_s()
    with torch.no_grad():  # closed-form Grad: no autograd needed (inference_mode: same speed)
        out = predict_chunked(model, g, chunk_edges=args.chunk, workers=args.workers)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        rec["peak_cuda_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    rec["predict_s"] = time.perf_counter() - t
    rec["predict_cpu_s"] = cpu_s() - c
    rec["peak_rss_GiB"] = vm_hwm_gib()
    rec["finite"] = bool(torch.isfinite(out[K.H_PRED]).all())
    rec["us_per_edge"] = 1e6 * rec["predict_s"] / rec["edges"]
    print("RESULT " + json.dumps(rec), flush=True)


def summarize(rows: list[dict]) -> tuple[list[dict], dict]:
    """Scaling between every pair of sizes (wall and CPU seconds), and the issue's targets.

    ``time_4N_over_N`` = 4 ** exponent, the exponent fitted to the pair's time ratio; the
    target (<= 4.4) is judged on the smallest to the largest size, the widest lever arm.
    """
    scaling = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            ln = math.log(b["atoms"] / a["atoms"])
            rec = {"from_atoms": a["atoms"], "to_atoms": b["atoms"],
                   "atoms_ratio": b["atoms"] / a["atoms"]}
            for kind, key in (("wall", "predict_s"), ("cpu", "predict_cpu_s")):
                expo = math.log(b[key] / a[key]) / ln
                rec[f"{kind}_time_ratio"] = b[key] / a[key]
                rec[f"{kind}_exponent"] = expo
                rec[f"{kind}_time_4N_over_N"] = 4**expo
            scaling.append(rec)
    targets: dict = {}
    big = [r for r in rows if r["atoms"] >= 10000]
    if big:
        targets["10k_under_60s"] = all(r["predict_s"] < 60 for r in big)
        targets["10k_under_8GiB"] = all(r["peak_rss_GiB"] < 8 for r in big)
    if len(rows) > 1:
        ends = [s for s in scaling if s["from_atoms"] == rows[0]["atoms"]
                and s["to_atoms"] == rows[-1]["atoms"]][0]
        targets["ratio_4N_le_4.4_wall"] = ends["wall_time_4N_over_N"] <= 4.4
        targets["ratio_4N_le_4.4_cpu"] = ends["cpu_time_4N_over_N"] <= 4.4
    return scaling, targets


def main() -> None:
    from tgkit.nn.inference import CPU_CHUNK_EDGES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, nargs="+", default=[9, 19],
                   help="twisted-bilayer indices (9: 1084, 19: 4564, 29: 10444 atoms)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2-core target)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu_check.sh)")
    p.add_argument("--chunk", type=int, default=CPU_CHUNK_EDGES, help="edges per chunk")
    p.add_argument("--cutoff", type=float, default=7.0, help="neighbour radius, Angstrom")
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--model", help="a trained model.pt instead of random weights")
    p.add_argument("--results", default=str(ROOT / "bench/results/inference.json"))
    p.add_argument("--allocator", choices=["reuse", "default"], default="reuse",
                   help="reuse: what predict_chunked does (reuse_freed_memory); default: "
                        "glibc's malloc settings, for A/B runs")
    p.add_argument("--workers", type=int, default=None,
                   help="chunks at once in worker threads (default: predict_chunked's, one per "
                        "torch thread on a CPU; 1: torch's intra-op threads only)")
    p.add_argument("--summarize", action="store_true",
                   help="recompute scaling and targets of the rows already in --results")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.summarize:
        doc = json.loads(Path(args.results).read_text())
        doc["scaling"], doc["targets_met"] = summarize(doc["rows"])
        Path(args.results).write_text(json.dumps(doc, indent=1))
        print(json.dumps({"scaling": doc["scaling"], "targets_met": doc["targets_met"]}, indent=1))
        return
    if args.child is not None:
        child(args)
        return
    from machine import machine_info

    info = machine_info()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    rows = []
    for m in args.m:
        cmd = [sys.executable, __file__, "--child", str(m), "--threads", str(args.threads),
               "--chunk", str(args.chunk), "--cutoff", str(args.cutoff), "--config", args.config,
               "--device", args.device, "--allocator", args.allocator]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        if args.model:
            cmd += ["--model", args.model]
        load0 = os.getloadavg()[0]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise SystemExit(f"m={m} failed:\n{proc.stdout}\n{proc.stderr}")
        rec = json.loads(lines[-1][7:])
        rec["load_avg_1min_before"], rec["load_avg_1min_after"] = load0, os.getloadavg()[0]
        rows.append(rec)
        print(json.dumps(rec), flush=True)
    scaling, targets = summarize(rows)
    doc = {"command": " ".join(["bench/bench_inference.py", *sys.argv[1:]]), "machine": info,
           "model_config": args.config if not args.model else args.model, "dtype": "float32",
           "rows": rows, "scaling": scaling, "targets_met": targets}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(doc, indent=1))
    print(json.dumps({"scaling": scaling, "targets_met": targets}, indent=1))


if __name__ == "__main__":
    main()
