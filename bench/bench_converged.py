"""Converged comparison: every setup trained to its plateau, several seeds, on the large CP2K sets.

Setups: baseline, +Trace, +Grad, +TraceGrad and a width-matched baseline (``baseline-wide``:
the baseline widened until its parameter count matches +TraceGrad's; its step time is
reported next to it), plus any ``tracegrad`` variant given with ``--variant KEY=VALUE``
(``tracegrad.grad_init=zero``, ``tracegrad.grad_where=last``, ``train.trace_lambda=1.0`` ...).
Every run uses the recipe of ``--config`` (default ``configs/converged.yaml``: warmup + cosine
to the plateau, see its header), the same split (``data.split_seed``) and ``train.seed`` =
seed. Runs live in ``runs/converged/<set>/<setup>/seed<k>/`` and resume where they stopped
(rerun the same command after an interruption; finished runs are read, not retrained).

Reports per run and as mean +- std over seeds: test MAE_all, MAE_sample^cha, MAE_block^cha
(nt, and t where the set has twisted structures), band errors (max, mean within E_F +- 2 eV
along the standard path), parameters, CPU ms/step and the CPU seconds to reach the plateau
(first validation within 2 % of the run's best validation MAE). Learning curves (validation
MAE against steps and against CPU seconds, one line per run) go to
``bench/results/converged_<set>.png``; numbers to ``bench/results/converged_<set>.json``.

Usage (repository root, after ``bash datasets/build_large.sh``)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_converged.py --set graphene --seeds 3
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_converged.py --set bilayer --seeds 3
    .venv/bin/python bench/bench_converged.py --set graphene --report   # table only, no training

``--jobs 2`` trains two runs at a time (one thread each; the measured CPU seconds are per run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit.config import Config, config_from_dict, config_to_dict, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETS = {"graphene": "datasets/large/graphene-60", "bilayer": "datasets/large/bilayer",
        "graphene-8": "datasets/graphene-8"}  # the shipped set: the capacity ladder on any machine
# the capacity ladder (--width): model.irreps_hidden and model.num_blocks; "narrow" is the recipe's
WIDTHS = {"narrow": ("16x0e+8x1o+4x2e+4x3o+2x4e", 2),
          "medium": ("32x0e+16x1o+8x2e+6x3o+4x4e", 2),
          "paper": ("64x0e+32x1o+16x2e+8x3o+8x4e", 3)}
SETUPS = ("baseline", "trace", "grad", "tracegrad", "baseline-wide")
# +TraceGrad of configs/converged.yaml has 102,640 parameters; this baseline 102,774
WIDE_HIDDEN = "26x0e+11x1o+6x2e+5x3o+3x4e"
PLATEAU_TOLERANCE = 0.02
VAL_STEPS = 72  # steps between validations on every set (val_every is in epochs)


def run_config(base: Config, set_name: str, setup: str, seed: int, variant: dict[str, str],
               out_root: Path, data: str | None = None, width: str = "narrow",
               device: str = "cpu") -> Config:
    """The config of one run: the recipe, the set, the setup, the seed, a variant and a width
    (runs of another width than narrow are tagged ``<setup>@<width>``)."""
    d = config_to_dict(base)
    if width != "narrow":
        d["model"]["irreps_hidden"], d["model"]["num_blocks"] = WIDTHS[width]
    d["data"]["path"] = str(Path(data) if data else ROOT / SETS[set_name])
    d["tracegrad"]["setup"] = "baseline" if setup == "baseline-wide" else setup
    if setup == "baseline-wide":
        d["model"]["irreps_hidden"] = WIDE_HIDDEN
    for key, value in variant.items():
        section, name = key.split(".")
        d[section][name] = type(d[section][name])(value) if not isinstance(
            d[section][name], bool) else value.lower() in ("1", "true", "yes")
    tag = setup + "".join(f"+{k.split('.')[1]}={v}" for k, v in sorted(variant.items()))
    tag += "" if width == "narrow" else f"@{width}"
    d["train"].update(seed=seed, progress=False, device=device,
                      out_dir=str(out_root / set_name / tag / f"seed{seed}"))
    d["data"]["cache"] = str(out_root / set_name / "graphs.h5")  # one cache for all runs
    return config_from_dict(d)


def train_one(cfg_dict: dict) -> str:
    """Train (or resume, or just read) one run in a worker process; returns its out_dir."""
    import torch

    from tgkit.train.run import train

    torch.set_num_threads(1)
    cfg = config_from_dict(cfg_dict)
    out = Path(cfg.train.out_dir)
    res = out / "results.json"
    if res.exists():
        # a run stopped by an earlier, lower step cap continues (exactly) to this one
        done = json.loads(res.read_text())
        if not (done.get("stop_reason", "").startswith("reached max_steps")
                and done.get("steps", 0) < cfg.train.max_steps):
            return str(out)
    resume = (out / "last.pt").exists()
    train(cfg, resume=resume, force=not resume, verbose=False)
    return str(out)


def plateau(vals: list[dict]) -> dict:
    """Step and CPU seconds of the first validation within PLATEAU_TOLERANCE of the best."""
    best = min(v["val_mae_all"] for v in vals)
    for v in vals:
        if v["val_mae_all"] <= best * (1 + PLATEAU_TOLERANCE):
            return {"step": v["step"], "cpu_s": v.get("cpu_s", math.nan), "best_val": best}
    return {"step": math.nan, "cpu_s": math.nan, "best_val": best}


def extra_test(out: Path, extra: Path) -> dict:
    """Metrics and band errors of a finished run on structures outside its set (cached in
    ``<run>/extra_<name>.json``): every structure there is a twisted test structure."""
    from tgkit.train.run import evaluate_run

    cached = out / f"extra_{extra.name}.json"
    if not cached.exists():
        doc = evaluate_run(out, data=extra, device="cpu")
        cached.write_text(json.dumps(doc.get("test_t") or doc.get("test"), indent=1))
    r = json.loads(cached.read_text())
    return {k: r.get(k, math.nan) for k in (
        "mae_all", "mae_sample_cha", "mae_block_cha", "band_max_meV", "band_mean_meV")}


def read_run(out: Path, extra: Path | None = None) -> dict:
    """Figures of a finished run from its results.json, metrics.jsonl and model."""
    from tgkit.nn import load_model

    res = json.loads((out / "results.json").read_text())
    vals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v["kind"] == "val"]
    steps = res["steps"]
    cpu = vals[-1].get("cpu_s", math.nan)
    # wall ms/step between consecutive validations (validation included; "time" restarts at
    # each resume, so pairs across a resume are skipped): the measure on a GPU
    pace = [1e3 * (b["time"] - a["time"]) / (b["step"] - a["step"])
            for a, b in zip(vals, vals[1:], strict=False)
            if "time" in a and b.get("time", 0) > a["time"] and b["step"] > a["step"]]
    model = load_model(out / "model.pt")
    cfg = load_config(out / "config.yaml")
    doc = {"steps": steps, "params": sum(p.numel() for p in model.parameters()),
           "device": cfg.train.device, "cpu_s": cpu,
           "cpu_ms_per_step": 1e3 * cpu / steps if steps else math.nan,
           "wall_ms_per_step": float(np.median(pace)) if pace else math.nan,
           "plateau": plateau(vals), "stop_reason": res.get("stop_reason"),
           "curve": [[v["step"], v.get("cpu_s", math.nan), v["val_mae_all"]] for v in vals]}
    for sub in ("val", "test", "test_t"):
        if sub in res:
            r = res[sub]
            doc[sub] = {k: r.get(k, math.nan) for k in (
                "mae_all", "mae_sample_cha", "mae_block_cha", "band_max_meV", "band_mean_meV")}
    if extra is not None and extra.is_dir():
        doc["test_t_extra"] = extra_test(out, extra)
    return doc


def stats(values: list[float]) -> list[float]:
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    return [float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, int(len(a))] \
        if len(a) else [math.nan, math.nan, 0]


def summarize(runs: dict[str, dict[int, dict]]) -> dict[str, dict]:
    out = {}
    for tag, by_seed in runs.items():
        rs = list(by_seed.values())
        row: dict = {"seeds": sorted(by_seed), "params": rs[0]["params"]}
        row["device"] = rs[0].get("device", "cpu")
        for key in ("cpu_ms_per_step", "wall_ms_per_step", "steps"):
            row[key] = stats([r[key] for r in rs])
        row["plateau_cpu_s"] = stats([r["plateau"]["cpu_s"] for r in rs])
        for sub in ("test", "test_t", "test_t_extra"):
            if sub in rs[0]:
                row[sub] = {k: stats([r[sub][k] for r in rs]) for k in rs[0][sub]}
        out[tag] = row
    return out


def table(summary: dict[str, dict]) -> str:
    def f(s: list[float], digits: int = 2) -> str:
        return "-" if s[2] == 0 else f"{s[0]:.{digits}f} ± {s[1]:.{digits}f}"

    z = [math.nan, math.nan, 0]
    subsets = [("test", "nt"), ("test_t", "t"), ("test_t_extra", "t extra")]
    present = [(k, lab) for k, lab in subsets if any(k in r for r in summary.values())]
    head = "| setup | seeds | params | CPU ms/step | wall ms/step | plateau CPU s |"
    for _, lab in present:
        head += (f" MAE_all {lab} | MAE_sample^cha {lab} | MAE_block^cha {lab} "
                 f"| band max / mean {lab} (meV) |")
    lines = [head, "|" + " --- |" * (6 + 4 * len(present))]
    for tag, r in summary.items():
        dev = "" if r.get("device", "cpu") == "cpu" else f" ({r['device']})"
        row = (f"| {tag}{dev} | {len(r['seeds'])} | {r['params']:,} | "
               f"{f(r['cpu_ms_per_step'], 0)} | {f(r.get('wall_ms_per_step', z), 0)} | "
               f"{f(r['plateau_cpu_s'], 0)} |")
        for k, _ in present:
            t = r.get(k, {})
            row += (f" {f(t.get('mae_all', z))} | {f(t.get('mae_sample_cha', z))} | "
                    f"{f(t.get('mae_block_cha', z))} | {f(t.get('band_max_meV', z), 0)} / "
                    f"{f(t.get('band_mean_meV', z), 0)} |")
        lines.append(row)
    return "\n".join(lines)


def figure(runs: dict[str, dict[int, dict]], path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=120)
    axes = fig.subplots(1, 2)
    colors = {}
    for tag, by_seed in runs.items():
        for seed, r in sorted(by_seed.items()):
            c = np.asarray(r["curve"], float)
            kw = {"color": colors.setdefault(tag, f"C{len(colors)}"), "lw": 1.0, "alpha": 0.8,
                  "label": tag if seed == min(by_seed) else None}
            axes[0].plot(c[:, 0], c[:, 2], **kw)
            axes[1].plot(c[:, 1], c[:, 2], **kw)
    for ax, xl in zip(axes, ("optimizer steps", "CPU seconds (one core)"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel("validation MAE_all (meV)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=sorted(SETS), required=True)
    p.add_argument("--config", default=str(ROOT / "configs/converged.yaml"))
    p.add_argument("--setups", default=",".join(SETUPS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--variant", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--width", choices=sorted(WIDTHS), nargs="+", default=["narrow"],
                   help="the capacity ladder: model widths (tag <setup>@<width>)")
    p.add_argument("--device", default="cpu", help="train.device of new runs (cpu, cuda)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="raise the recipe's step cap: runs it stopped continue exactly where "
                   "they were (same directories)")
    p.add_argument("--data", default=None, help="another DeepH tree for this set name")
    p.add_argument("--out", default=str(ROOT / "runs/converged"))
    p.add_argument("--report", action="store_true", help="only collect finished runs")
    p.add_argument("--extra-test", type=Path, default=None,
                   help="more twisted test structures outside the set (bilayer: "
                   "datasets/large/twisted-13.2), evaluated after training")
    p.add_argument("--results", default=None, help="default bench/results/converged_<set>.json")
    args = p.parse_args()
    base = load_config(args.config)
    if args.max_steps:
        base = config_from_dict({**config_to_dict(base), "train": {
            **config_to_dict(base)["train"], "max_steps": args.max_steps}})
    variant = dict(v.split("=", 1) for v in args.variant)
    out_root = Path(args.out)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    # seed-major order: a partial session still yields one full comparison per seed
    cfgs = [run_config(base, args.set, s, k, variant, out_root, args.data, w, args.device)
            for k in seeds for w in args.width for s in setups]
    if not args.report:
        # build the shared cache once, before the workers start
        from tgkit.data.store import GraphDataset
        from tgkit.train.run import make_split, prepare_cache

        Path(cfgs[0].data.cache).parent.mkdir(parents=True, exist_ok=True)
        cache = prepare_cache(cfgs[0], Path(cfgs[0].train.out_dir))
        n_train = len(make_split(cfgs[0], GraphDataset(cache)).train)
        todo = [config_to_dict(c) for c in cfgs]
        for d in todo:
            if args.set != "graphene-8":  # graphene-8 keeps its recipe's (the main job's)
                d["train"]["val_every"] = max(1, round(VAL_STEPS / n_train))
        import multiprocessing

        # CUDA cannot be used in forked children
        ctx = multiprocessing.get_context("spawn" if args.device != "cpu" else None)
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            for out in pool.map(train_one, todo):
                print(f"done {out}", flush=True)
    results_path = Path(args.results or ROOT / f"bench/results/converged_{args.set}.json")
    old = json.loads(results_path.read_text()) if results_path.exists() else {}
    runs: dict[str, dict[int, dict]] = {}
    # every finished run of this set under --out, not only this invocation's
    for res in sorted((out_root / args.set).glob("*/seed*/results.json")):
        tag, seed = res.parent.parent.name, int(res.parent.name.removeprefix("seed"))
        runs.setdefault(tag, {})[seed] = read_run(res.parent, args.extra_test)
    summary = summarize(runs)
    doc = {"set": args.set, "data": args.data or SETS[args.set], "recipe": config_to_dict(base),
           "extra_test": str(args.extra_test) if args.extra_test else None,
           "wide_hidden": WIDE_HIDDEN, "plateau_tolerance": PLATEAU_TOLERANCE,
           "machine": machine_info(), "summary": summary, "table": table(summary),
           "runs": {t: {str(k): v for k, v in r.items()} for t, r in runs.items()},
           "history": old.get("history", []) + [{"date": machine_info()["date"],
                                                  "finished_runs": sum(map(len, runs.values()))}]}
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(doc, indent=1) + "\n")
    if runs:
        figure(runs, results_path.with_suffix(".png"),
               f"{args.set}: validation MAE of every run (recipe {Path(args.config).name})")
    print(doc["table"])
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
