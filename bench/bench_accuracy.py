"""Accuracy of the four setups (Tables 1-2 layout) on real CP2K data, plus band errors near E_F.

Trains baseline, +Trace, +Grad and +TraceGrad with the same config and training budget for
``--seeds`` seeds each (``tgkit.train.ablate``: same split, challenge sample and block taken
from the baseline), optionally in ``--jobs`` parallel worker processes (one group of setups
each; an interrupted run resumes from its last checkpoint). Then it predicts H of every
non-twisted test structure with each trained model and compares the bands with the DFT
bands near E_F (:func:`tgkit.physics.bands.compare_bands`, path GMKG, +-2 eV window).

Usage (repository root; the run directory is under the git-ignored ``runs/``)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_accuracy.py --seeds 3 --epochs 40 --jobs 4

``--data DIR`` trains and tests on another DeepH tree (e.g. a larger set built with
``datasets/build_default.py --out runs/graphene-24 --num 24``) with the config's split fractions;
use it with its own ``--out`` and ``--results``.

Writes ``bench/results/accuracy.json`` (table, relative improvements, band errors, machine)
and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit import keys as K  # noqa: E402
from tgkit.config import SETUPS, load_config  # noqa: E402
from tgkit.train.ablate import run_ablation, run_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def base_config(args: argparse.Namespace):
    cfg = load_config(args.config)
    train = dataclasses.replace(cfg.train, epochs=args.epochs, progress=False, device="cpu")
    data = dataclasses.replace(cfg.data, path=args.data) if args.data else cfg.data
    return dataclasses.replace(cfg, train=train, data=data)


def worker(args: argparse.Namespace) -> None:
    """Train the runs of ``--worker`` setups (cache and split already prepared)."""
    from tgkit.train.run import train

    cfg, out = base_config(args), Path(args.out)
    for setup in args.worker.split(","):
        for k in range(args.seeds):
            rc = run_config(cfg, out, setup, cfg.train.seed + k, out / "graphs.h5",
                             out / "split.json")
            if not (Path(rc.train.out_dir) / "results.json").exists():
                print(f"== {setup} seed {rc.train.seed}", flush=True)
                train(rc, resume=True, verbose=False)


def band_errors(out: Path, setups: list[str], seeds: list[int]) -> dict:
    """Max and mean |E_pred - E_DFT| (meV) within +-2 eV of E_F, per setup, seed, structure."""
    from tgkit.data.deeph import read_structure
    from tgkit.data.graph import graph_blocks, structure_to_graph
    from tgkit.nn import load_model
    from tgkit.physics.bands import compare_bands

    cfg = load_config(out / "config.yaml")
    names = json.loads((out / "split.json").read_text())["test"]
    res: dict = {}
    for setup in setups:
        res[setup] = {}
        for seed in seeds:
            model = load_model(out / setup / f"seed{seed}" / "model.pt")
            for name in names:
                s = read_structure(Path(cfg.data.path) / name)
                g = structure_to_graph(s, model.basis, dtype=next(model.parameters()).dtype)
                with torch.no_grad():
                    g[K.HAMILTONIAN] = model(g)[K.H_PRED].double()
                cmp = compare_bands(s, graph_blocks(g, model.basis), path="GMKG", npoints=40)
                res[setup].setdefault(name, []).append(
                    {"seed": seed, "max_meV": 1000 * cmp.max_error,
                     "mean_meV": 1000 * cmp.mean_error, "bands_in_window": int(cmp.num_in_window)})
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--out", default=str(ROOT / "runs/bench-accuracy"))
    p.add_argument("--data", help="DeepH tree to train and test on (default: the config's "
                   "data.path, datasets/graphene-8)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--jobs", type=int, default=1, help="parallel training processes (1-4)")
    p.add_argument("--results", default=str(ROOT / "bench/results/accuracy.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        worker(args)
        return
    t0 = time.time()
    info = machine_info()  # load average at the start
    cfg, out = base_config(args), Path(args.out)
    setups = list(SETUPS)
    if args.jobs > 1:
        # cache and split first (run_ablation with zero seeds is not allowed: train nothing)
        from tgkit.data.store import GraphDataset
        from tgkit.train.run import make_split, prepare_cache

        out.mkdir(parents=True, exist_ok=True)
        bcfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, cache=cfg.data.cache or str(out / "graphs.h5")))
        cache = prepare_cache(bcfg, out)
        if not (out / "split.json").exists():
            make_split(cfg, GraphDataset(cache)).to_json(out / "split.json")
        groups = [setups[k::args.jobs] for k in range(min(args.jobs, 4))]
        procs = [subprocess.Popen([sys.executable, __file__, "--worker", ",".join(g),
                                   "--config", args.config, "--out", args.out,
                                   "--seeds", str(args.seeds), "--epochs", str(args.epochs),
                                   *(["--data", args.data] if args.data else [])])
                 for g in groups]
        if any(pr.wait() for pr in procs):
            raise SystemExit("a training worker failed")
    table = run_ablation(cfg, out, args.seeds, setups, verbose=True)["table"]
    seeds = [cfg.train.seed + k for k in range(args.seeds)]
    bands = band_errors(out, setups, seeds)
    rel = {}
    for subset, rows in table["baseline"].items():
        rel[subset] = {
            setup: {m: 100 * (1 - table[setup][subset][m]["mean"] / rows[m]["mean"])
                    for m in rows} for setup in setups if setup != "baseline"}
    band_summary = {
        s: {key + "_mean": float(np.mean([r[key] for v in d.values() for r in v]))
            for key in ("max_meV", "mean_meV")}
        for s, d in bands.items()}
    doc = {
        "command": " ".join(["bench/bench_accuracy.py", *sys.argv[1:]]),
        "machine": info,
        "load_avg_end": [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]],
        "wall_s": round(time.time() - t0, 1),
        "data": cfg.data.path, "split": json.loads((out / "split.json").read_text()),
        "epochs": args.epochs, "seeds": seeds,
        "table_meV": table, "relative_improvement_percent": rel,
        "challenge": json.loads((out / "challenge.json").read_text()),
        "band_error_near_EF": {"window_eV": 2.0, "path": "GMKG", "per_run": bands,
                               "summary": band_summary},
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(doc, indent=1))
    print((out / "table.md").read_text())
    print(json.dumps({"relative_improvement_percent": rel, "band_error_summary": band_summary},
                     indent=1))


if __name__ == "__main__":
    main()
