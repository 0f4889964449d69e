"""One TraceGrad module, this checkout's against a git revision's, timed in one process.

Loads ``tgkit/nn/tracegrad.py`` as it is now and as it was at ``--against`` (``git show``),
builds both modules with the same seed, asserts they give the same o and df (round-off), and
the same o in inference, and
times them alternately: a training pass (forward and backward of o and z) and a forward in
``torch.inference_mode``, at each ``--widths`` and item count. Alternating keeps machine load
alike for both, so the ratio is the figure to read, not the absolute times.

Usage (from the repository root)::

    .venv/bin/python bench/bench_tracegrad_module.py --against deadd40 \\
        --out bench/results/tracegrad_module.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from e3nn import o3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from machine import machine_info  # noqa: E402

WIDTHS = {"narrow": "16x0e+8x1o+4x2e+4x3o+2x4e", "paper": "64x0e+32x1o+16x2e+8x3o+8x4e"}


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def carbon_model(config: str):
    """The model of the YAML ``config`` for carbon 2s2p1d (graphene-8's basis), seed 0,
    float32, on one torch thread with glibc keeping freed blocks (as ``predict_chunked``):
    what the one-chunk benchmarks time."""
    from tgkit.config import load_config
    from tgkit.irreps import OrbitalBasis
    from tgkit.nn import HamiltonianModel
    from tgkit.runtime import reuse_freed_memory

    torch.set_num_threads(1)
    reuse_freed_memory()
    cfg = load_config(config)
    torch.manual_seed(0)
    return HamiltonianModel(OrbitalBasis({6: (0, 0, 1, 1, 2)}), False, cfg.model,
                            cfg.tracegrad, dtype=torch.float32)


def ratio_table(rows: list[dict], name: str, before: str, after: str,
                header: tuple[str, str, str]) -> None:
    """Print ``rows`` as a markdown table: ``row[name]``, ``row[before]``, ``row[after]`` (ms)
    and their ratio, under the column titles ``header``."""
    print(f"| {header[0]} | {header[1]} | {header[2]} | ratio |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r[name]} | {r[before]:.2f} | {r[after]:.2f} | {r[after] / r[before]:.2f} |")


def median_ms(fns, reps: int, warmup: int = 3, clock: str = "wall") -> list[float]:
    """Median ms (wall, or this process's CPU time) of each of ``fns``, called round-robin."""
    now = time.perf_counter if clock == "wall" else time.process_time
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            t0 = now()
            fn()
            times[k].append(now() - t0)
    return [1000 * statistics.median(t) for t in times]


def measure(old, new, irreps: o3.Irreps, n: int, reps: int) -> dict:
    """Same-seed modules of both versions on n items: their largest output difference and the
    median ms of a training pass and of an inference forward."""
    mods = []
    for lib in (old, new):
        torch.manual_seed(0)
        mods.append(lib.TraceGrad(irreps, 32, 64, 32))
    torch.manual_seed(1)
    f = torch.randn(n, irreps.dim, requires_grad=True)
    go, gz = torch.randn(n, irreps.dim), torch.randn(n, 32)

    def train(m):
        f.grad = None
        m.zero_grad(set_to_none=True)
        o, z = m(f)
        ((o * go).sum() + (z * gz).sum()).backward()
        return o.detach(), f.grad.clone()

    def infer(m):
        with torch.inference_mode():
            return m(f.detach())[0]

    (o_old, g_old), (o_new, g_new) = train(mods[0]), train(mods[1])
    diff = max((o_old - o_new).abs().max().item(), (g_old - g_new).abs().max().item(),
               (infer(mods[0]) - infer(mods[1])).abs().max().item())
    assert diff < 1e-4 * (1 + o_old.abs().max().item()), f"outputs differ by {diff}"
    t_train = median_ms([lambda: train(mods[0]), lambda: train(mods[1])], reps)
    t_inf = median_ms([lambda: infer(mods[0]), lambda: infer(mods[1])], reps)
    return {"max_abs_diff": diff, "train_ms": {"old": t_train[0], "new": t_train[1]},
            "inference_ms": {"old": t_inf[0], "new": t_inf[1]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--against", required=True, help="git revision of the old tracegrad.py")
    p.add_argument("--widths", nargs="+", choices=sorted(WIDTHS), default=["narrow", "paper"])
    p.add_argument("--items", type=int, nargs="+", default=[464, 5000],
                   help="edges per call (464: the toy graphene graph of bench_step.py)")
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--allocator", choices=["reuse", "default"], default="reuse",
                   help="reuse: glibc keeps freed blocks, as `tgkit train` sets "
                   "(tgkit.runtime.reuse_freed_memory); default: glibc's defaults")
    args = p.parse_args()
    if args.allocator == "reuse":
        from tgkit.runtime import reuse_freed_memory

        reuse_freed_memory()
    torch.set_num_threads(args.threads)
    rel = "tgkit/nn/tracegrad.py"
    old_src = subprocess.run(["git", "show", f"{args.against}:{rel}"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "old.py").write_text(old_src)
        old, new = load_module(Path(tmp) / "old.py", "tg_old"), load_module(ROOT / rel, "tg_new")
    rows = [dict(width=w, items=n, **measure(old, new, o3.Irreps(WIDTHS[w]), n, args.reps))
            for w in args.widths for n in args.items]
    info = machine_info()
    print(f"machine: {info['cpu']}, {args.threads} torch thread(s); old = {args.against}")
    print("| width | items | train old / new (ms) | ratio | inference old / new (ms) | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        tr, inf = r["train_ms"], r["inference_ms"]
        print(f"| {r['width']} | {r['items']} | {tr['old']:.2f} / {tr['new']:.2f} | "
              f"{tr['new'] / tr['old']:.2f} | {inf['old']:.2f} / {inf['new']:.2f} | "
              f"{inf['new'] / inf['old']:.2f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"against": args.against, "threads": args.threads,
                                              "allocator": args.allocator,
                                              "machine": info, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
