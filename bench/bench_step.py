"""Train-step time of the four setups (baseline, +Trace, +Grad, +TraceGrad) on the same graph.

One run builds the four models (DeepH-E3 default widths unless overridden), then times full
training steps (forward, masked MSE on H plus the paper's trace term, backward, Adam step)
round-robin over the setups, so that machine load affects all four alike. It reports the
median step time, the ratio to baseline, the memory autograd saves for backward in one
training forward (distinct storages, any device), on a GPU the peak CUDA allocation, and the
number of ATen operations one step dispatches (each is at least one kernel launch on a GPU)
and the matrix-multiply GFLOP of one step (what a CPU step cannot go below).

Usage (from the repository root)::

    .venv/bin/python bench/bench_step.py                 # toy 8-atom graphene, 7.0 A pairs
    .venv/bin/python bench/bench_step.py --data datasets/graphene-8/0000 --steps 10
    .venv/bin/python bench/bench_step.py --setups baseline tracegrad baseline-e3nn tracegrad-e3nn
    .venv/bin/python bench/bench_step.py --setups baseline tracegrad --num-invariants 16
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import time

import torch

from tgkit import keys as K
from tgkit.config import Config, TraceGradConfig, load_config
from tgkit.data.graph import structure_to_graph, to_device
from tgkit.irreps import OrbitalBasis
from tgkit.nn import HamiltonianModel, TraceGrad
from tgkit.runtime import reuse_freed_memory
from tgkit.train.loss import TraceGradLoss
from tgkit.train.trainer import adam

SETUPS = ("baseline", "trace", "grad", "tracegrad")
# "tracegrad-autograd": TraceGrad with v from plain autograd through square (for comparison);
# "<setup>-e3nn": convolutions through e3nn's TensorProduct instead of the edge frame
CHOICES = SETUPS + ("tracegrad-autograd",) + tuple(f"{s}-e3nn" for s in SETUPS)


def build_graph(args: argparse.Namespace):
    if args.data:
        from tgkit.data.deeph import read_structure

        s = read_structure(args.data)
    else:
        from tgkit.data.structures import graphene
        from tgkit.testing import toy_structure

        atoms = graphene((2, 2))
        s = toy_structure(atoms.numbers, atoms.cell.array, atoms.positions, cutoff=7.0)
    basis = OrbitalBasis.union([{int(z): t for z, t in zip(s.numbers, s.orbital_types,
                                                            strict=True)}])
    return structure_to_graph(s, basis, dtype=getattr(torch, args.dtype)), basis, s.spinful


def make_loss(trace_lambda: float):
    """The trainer's loss (:class:`tgkit.train.loss.TraceGradLoss`): masked MSE on H plus,
    when T is predicted, lambda no_grad(loss_Q / loss_T) loss_T."""
    loss = TraceGradLoss(trace_lambda)

    def loss_fn(out: dict, graph: dict) -> torch.Tensor:
        return loss(out, graph[K.HAMILTONIAN]).total

    return loss_fn


def saved_bytes(model: torch.nn.Module, graph: dict, loss_fn) -> int:
    """Bytes of the distinct tensors autograd saves for backward in one training forward."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.device.type)
        seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn(model(graph), graph)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def count_ops(step) -> int:
    """ATen operations dispatched by one call of ``step`` (forward, backward and optimizer):
    on a GPU each is at least one kernel launch, so this bounds small-graph step time there."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Counter(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Counter.n += 1
            return func(*args, **(kwargs or {}))

    with Counter():
        step()
    return Counter.n


def matmul_gflop(step) -> float:
    """Matrix-multiply GFLOP of one call of ``step`` (torch's FlopCounterMode: mm, bmm,
    addmm, ...; elementwise work is not counted): the arithmetic a step cannot avoid."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / 1e9


def matmul_rate(device: torch.device, shape: tuple[int, int, int] = (464, 64, 2048)) -> float:
    """GFLOP/s of one float32 ``(m, k) @ (k, n)`` product (median of 50) on ``device``: the
    rate a step's matrix products could reach at best (default: TraceGrad's scalar product
    on the toy graph's 464 edges)."""
    m, k, n = shape
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    times = []
    for _ in range(55):
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 2 * m * k * n / statistics.median(times[5:]) / 1e9


def make_step(model: torch.nn.Module, graph: dict, device: torch.device, loss_fn,
              optimizer: str = "tgkit"):
    """One training step as a timed callable. ``optimizer``: ``tgkit`` is the trainer's Adam
    (:func:`tgkit.train.trainer.adam`, fused where available); ``plain`` is
    ``torch.optim.Adam``'s default (one loop over the tensors on a CPU)."""
    opt = (adam(model.parameters(), 1e-3) if optimizer == "tgkit"
           else torch.optim.Adam(model.parameters(), lr=1e-3))

    def step() -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(graph), graph)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="a DeepH structure directory (default: toy graphene 2x2)")
    p.add_argument("--setups", nargs="+", default=list(SETUPS), choices=CHOICES)
    p.add_argument("--steps", type=int, default=5, help="timed steps per setup")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--config", help="YAML config: its model section and train.trace_lambda "
                   "(default: tgkit's defaults)")
    p.add_argument("--irreps-hidden", help="override model.irreps_hidden")
    p.add_argument("--num-blocks", type=int, help="override model.num_blocks")
    p.add_argument("--num-invariants", type=int,
                   help="override tracegrad.num_invariants (the width of u; default 32)")
    p.add_argument("--allocator", choices=["reuse", "default"], default="reuse",
                   help="reuse: glibc keeps freed blocks, as `tgkit train` sets "
                   "(tgkit.runtime.reuse_freed_memory); default: glibc's defaults")
    p.add_argument("--optimizer", choices=["tgkit", "plain"], default="tgkit",
                   help="tgkit: the trainer's Adam (fused where available); plain: "
                   "torch.optim.Adam's default")
    args = p.parse_args()
    if args.allocator == "reuse":
        reuse_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    graph, basis, spinful = build_graph(args)
    graph = to_device(graph, device)
    config = load_config(args.config) if args.config else Config()
    cfg = dataclasses.replace(
        config.model, **{k: v for k, v in (("irreps_hidden", args.irreps_hidden),
                                            ("num_blocks", args.num_blocks)) if v is not None})
    loss_fn = make_loss(config.train.trace_lambda)
    steps, models = {}, {}
    for setup in args.setups:
        torch.manual_seed(0)
        tg = TraceGradConfig(setup=setup.removesuffix("-autograd").removesuffix("-e3nn"),
                             **({"num_invariants": args.num_invariants}
                                if args.num_invariants else {}))
        mc = dataclasses.replace(cfg, use_edge_frame=not setup.endswith("-e3nn"))
        m = HamiltonianModel(basis, spinful, mc, tg, dtype=getattr(torch, args.dtype))
        m = m.to(device).train()
        if setup.endswith("-autograd"):
            for mod in m.modules():
                if isinstance(mod, TraceGrad):
                    mod.forward = mod.forward_autograd
        models[setup], steps[setup] = m, make_step(m, graph, device, loss_fn, args.optimizer)
    for _ in range(args.warmup):
        for setup in args.setups:
            steps[setup]()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times: dict[str, list[float]] = {s: [] for s in args.setups}
    peak: dict[str, float] = {}
    for _ in range(args.steps):
        for setup in args.setups:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times[setup].append(steps[setup]())
            if device.type == "cuda":
                peak[setup] = max(peak.get(setup, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    saved = {setup: saved_bytes(models[setup], graph, loss_fn) / 2**20 for setup in args.setups}
    ops = {setup: count_ops(steps[setup]) for setup in args.setups}
    gflop = {setup: matmul_gflop(steps[setup]) for setup in args.setups}
    base = statistics.median(times[args.setups[0]])
    e = graph[K.EDGE_INDEX].shape[1]
    n = graph[K.SPECIES].shape[0]
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"{torch.get_num_threads()} torch threads")
    print(f"machine: {dev}; torch {torch.__version__}; python {platform.python_version()}; "
          f"allocator {args.allocator}; optimizer {args.optimizer}; "
          f"tracegrad.num_invariants {args.num_invariants or TraceGradConfig().num_invariants}")
    print(f"graph: {n} atoms, {e} edges, B = {basis.dim}{' (SOC)' if spinful else ''}; "
          f"irreps_hidden {cfg.irreps_hidden}, {cfg.num_blocks} blocks, {args.dtype}; "
          f"median of {args.steps} steps after {args.warmup} warm-up, round-robin")
    print(f"one 464x64x2048 float32 matmul: {matmul_rate(device):.0f} GFLOP/s")
    print(f"| setup | step (ms) | ratio to {args.setups[0]} | saved for backward (MiB) | "
          f"peak CUDA alloc (MiB) | parameters | ATen ops per step | matmul GFLOP per step |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for setup in args.setups:
        med = statistics.median(times[setup])
        params = sum(q.numel() for q in models[setup].parameters())
        mm = f"{peak[setup]:.0f}" if setup in peak else "-"
        print(f"| {setup} | {1000 * med:.1f} | {med / base:.2f} | {saved[setup]:.1f} | {mm} "
              f"| {params} | {ops[setup]:,} | {gflop[setup]:.2f} |")


if __name__ == "__main__":
    main()
