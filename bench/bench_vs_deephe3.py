"""Train-step time of the public DeepH-E3 code against tgkit, measured in one alternating run.

The driver (run with tgkit's venv) writes one structure as a DeepH directory (default: the
toy 2x2 graphene cell of ``bench_step.py``, 8 atoms, C 2s2p1d, pairs within 7.0 A) and then
alternates worker subprocesses, DeepH-E3, tgkit, DeepH-E3, tgkit, ..., for ``--rounds``
rounds and every width in ``--widths``. Each worker builds its network on that structure,
runs ``--warmup`` training steps and reports the median of ``--steps`` timed ones (forward,
masked MSE on the Hamiltonian blocks, backward, Adam step; float32, ``--threads`` torch
threads). Alternating the two codes inside one run is what makes their ratio meaningful on
a shared machine: load hits both alike, so the ratio counts and absolute ms are noisy.

- **DeepH-E3 worker** (run with ``<deephe3-root>/venv/bin/python``): DeepH-E3's own code,
  imported at run time from ``<deephe3-root>/src`` and never copied here. Its graph comes
  from ``deephe3.graph.get_graph`` on the DeepH directory (edges = the keys of
  hamiltonians.h5, as ``AijData`` builds them with ``radius=-1``), its irreps and output
  channels from ``deephe3.parse_configs.TrainConfig`` (train_default.ini with the width's
  ``irreps_embed``, ``irreps_mid``, ``num_blocks``; ``target_blocks_type=all``:
  one output channel per shell pair, all 169 elements of each C-C block), the network is
  ``deephe3.model.Net`` built with the arguments of the ``build_model.py`` its trainer
  writes, and the loss is its ``e3TensorDecomp.get_H`` + ``MaskMSELoss``, as in
  ``DeepHE3Kernel.get_loss``. The labels are the DeepH directory's blocks, laid out per
  channel by ``deephe3.utils.process_targets``. ``deephe3/__init__.py`` is skipped (it
  imports the dataset and trainer modules, which need pymatgen, pathos and tensorboard, none
  of which the network needs), and ``torch_scatter`` (no wheels for current torch) is
  replaced in-process by PyG's ``torch_geometric.utils.scatter``.
- **tgkit worker** (run with this interpreter, the repository root on ``PYTHONPATH``):
  ``HamiltonianModel`` through ``bench_step.py``'s own graph, loss and step code, setup
  ``baseline`` (``--tgkit-setups`` adds ``trace``, ``grad``, ``tracegrad``).

Widths (``--widths``):

- ``narrow``: ``16x0e+8x1o+4x2e+4x3o+2x4e``, 2 blocks, embedding ``16x0e``. tgkit takes the
  whole model section of ``configs/default.yaml`` (its radial basis is 32 Gaussians with a
  32-32 MLP); DeepH-E3's radial basis has no such setting (128 Gaussians, 64-64 MLP, fixed
  in its code).
- ``paper``: DeepH-E3's defaults and the paper's widths, ``64x0e+32x1o+16x2e+8x3o+8x4e``,
  3 blocks, embedding ``64x0e``; tgkit's ``ModelConfig`` defaults are the same
  (128 Gaussians, 64-64 MLP).

Both: cutoff 7.2 A for the radial basis, spherical harmonics up to l = 4, float32.

Setup, once, from the repository root (``.deephe3/`` is git-ignored; torch pinned so that a
CPU build of the same version as tgkit's is used; e3nn 0.4.1 is the oldest release that
runs on torch 2.13, 0.3.5 and 0.4.0 do not)::

    git clone https://github.com/Xiaoxun-Gong/DeepH-E3 .deephe3/src
    git -C .deephe3/src checkout f011d5f5c94a8aae39c885614a145de07620139c   # 2023-04-04
    python3 -m venv .deephe3/venv
    .deephe3/venv/bin/pip install torch==2.13.0 e3nn==0.4.1 torch_geometric numpy scipy \\
        h5py sympy

Usage (repository root; ~5 minutes on the 2-core VM with the defaults, 8 with the second
line; the results of the second line are in bench/README.md)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_vs_deephe3.py
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_vs_deephe3.py --rounds 5 --steps 5 \\
        --tgkit-setups baseline tracegrad
    .venv/bin/python bench/bench_vs_deephe3.py --data datasets/graphene-8/0000   # a real cell

Prints a markdown table (per code and width, the median of the per-round medians of the step
time by process CPU time, or wall time with ``--clock wall``, and the
ratio DeepH-E3 / tgkit) and writes ``--out`` (default ``bench/results/vs_deephe3.json``):
machine, versions, graph, the per-round medians and every step time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WIDTHS = {
    "narrow": {"irreps_embed": "16x0e", "irreps_mid": "16x0e+8x1o+4x2e+4x3o+2x4e",
               "num_blocks": 2, "tgkit_config": "configs/default.yaml"},
    "paper": {"irreps_embed": "64x0e", "irreps_mid": "64x0e+32x1o+16x2e+8x3o+8x4e",
              "num_blocks": 3, "tgkit_config": None},
}
CUTOFF_RADIUS = 7.2  # radial basis range, both codes (DeepH-E3's default, tgkit's configs)
LMAX = 4
TGKIT_SETUPS = ("baseline", "trace", "grad", "tracegrad")
RESULT_TAG = "RESULT "


def _median_step(step, warmup: int, steps: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of ``steps`` calls after ``warmup`` untimed ones. With one
    torch thread the CPU time is the step's own work, which other jobs on a shared machine
    inflate far less than the wall time."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(steps):
        c0 = time.process_time()
        wall.append(step())
        cpu.append(time.process_time() - c0)
    return wall, cpu


# --------------------------------------------------------------------------- DeepH-E3 worker


def _import_deephe3(src: Path):
    """Import DeepH-E3's network modules from ``src`` without running its package __init__."""
    import types

    from torch_geometric.utils import scatter as pyg_scatter

    def scatter(src_, index, dim=-1, out=None, dim_size=None, reduce="sum"):
        if out is not None:
            raise NotImplementedError("torch_scatter stand-in: out= is not supported")
        return pyg_scatter(src_, index, dim=dim, dim_size=dim_size,
                           reduce="sum" if reduce == "add" else reduce)

    shim = types.ModuleType("torch_scatter")
    shim.scatter = scatter
    sys.modules.setdefault("torch_scatter", shim)
    pkg = types.ModuleType("deephe3")
    pkg.__path__ = [str(src / "deephe3")]
    sys.modules["deephe3"] = pkg
    import deephe3.e3modules
    import deephe3.graph
    import deephe3.model
    import deephe3.parse_configs
    import deephe3.utils
    return deephe3


def deephe3_worker(args: argparse.Namespace) -> dict:
    import contextlib
    import importlib.metadata as md

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    dtype = torch.float32
    torch.set_default_dtype(dtype)
    src = Path(args.deephe3_root) / "src"
    w = WIDTHS[args.width]
    folder = Path(args.structure)
    with contextlib.redirect_stdout(sys.stderr), tempfile.TemporaryDirectory() as tmp:
        d = _import_deephe3(src)
        ini = Path(tmp) / "train.ini"
        ini.write_text(
            f"[basic]\nsave_dir = {tmp}\ndtype = float\ndevice = cpu\n"
            f"[network]\ncutoff_radius = {CUTOFF_RADIUS}\n"
            f"spherical_harmonics_lmax = {LMAX}\nirreps_embed = {w['irreps_embed']}\n"
            f"irreps_mid = {w['irreps_mid']}\nnum_blocks = {w['num_blocks']}\n")
        config = d.parse_configs.TrainConfig(str(ini))

        # the graph, as AijData.process_worker + get_graph build it (edges = H keys)
        lat = np.loadtxt(folder / "lat.dat").T
        pos = np.loadtxt(folder / "site_positions.dat", ndmin=2).T
        numbers = np.loadtxt(folder / "element.dat", ndmin=1).astype(np.int64)
        frac = pos @ np.linalg.inv(lat)
        data = d.graph.get_graph(
            torch.tensor(pos, dtype=dtype), torch.tensor(frac, dtype=dtype),
            torch.tensor(numbers), folder.name, r=-1, max_num_nbr=0, edge_Aij=True,
            lattice=torch.tensor(lat, dtype=dtype), default_dtype_torch=dtype,
            data_folder=str(folder), target_file_name="hamiltonians.h5", inference=False,
            only_ij=False, create_from_DFT=True)
        index_to_Z = torch.unique(data.x, sorted=True)
        z_to_index = torch.full((100,), -1, dtype=torch.int64)
        z_to_index[index_to_Z] = torch.arange(len(index_to_Z))
        data.x = z_to_index[data.x]
        _, orbital_types = d.graph.load_orbital_types(str(folder / "orbital_types.dat"),
                                                      return_orbital_types=True)
        species_orbitals = [orbital_types[int(np.nonzero(numbers == int(z))[0][0])]
                            for z in index_to_Z]
        config.set_target(species_orbitals, index_to_Z, data.spinful, None)
        if data.spinful:
            raise SystemExit("bench_vs_deephe3: only spinless structures are supported")

        # labels and mask: every target channel's block of every edge (DeepH-E3's layout)
        blocks, js, slices = d.utils.process_targets(species_orbitals, index_to_Z,
                                                     config.target_blocks)
        e = data.num_edges
        label = torch.zeros(e, slices[-1], dtype=dtype)
        mask = torch.zeros(e, slices[-1], dtype=torch.bool)
        zi, zj = data.x[data.edge_index[0]], data.x[data.edge_index[1]]
        for c, block in enumerate(blocks):
            for pair, (a0, a1, b0, b1) in block.items():
                si, sj = (int(z_to_index[int(z)]) for z in pair.split())
                sel = (zi == si) & (zj == sj)
                label[sel, slices[c]:slices[c + 1]] = data.Aij[sel, a0:a1, b0:b1].reshape(
                    int(sel.sum()), -1)
                mask[sel, slices[c]:slices[c + 1]] = True
        assert torch.isfinite(label[mask]).all()
        data.label, data.mask = label, mask
        del data.Aij, data.Aij_mask
        batch = d.graph.Collater()([data])

        torch.manual_seed(0)
        net = d.model.Net(
            num_species=len(index_to_Z), irreps_embed_node=config.irreps_embed_node,
            irreps_edge_init=config.irreps_edge_init, irreps_sh=config.irreps_sh,
            irreps_mid_node=config.irreps_mid_node, irreps_post_node=config.irreps_post_node,
            irreps_out_node=config.irreps_out_node, irreps_mid_edge=config.irreps_mid_edge,
            irreps_post_edge=config.irreps_post_edge, irreps_out_edge=config.net_out_irreps,
            num_block=config.num_blocks, r_max=config.cutoff_radius, use_sc=True,
            no_parity=config.no_parity, use_sbf=config.use_sbf, only_ij=config.only_ij,
            if_sort_irreps=False)
        kernel = d.e3modules.e3TensorDecomp(config.net_out_irreps, js,
                                            default_dtype_torch=dtype, spinful=False,
                                            no_parity=config.no_parity,
                                            if_sort=config.convert_net_out, device_torch="cpu")
        criterion = d.utils.MaskMSELoss()
        opt = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.adam_betas)
        net.train()

    def step() -> float:
        t0 = time.perf_counter()
        _, out_edge = net(batch)
        loss = criterion(kernel.get_H(out_edge), batch.label, batch.mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    times, cpu = _median_step(step, args.warmup, args.steps)
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {
        "times_s": times, "median_s": statistics.median(times),
        "cpu_times_s": cpu, "median_cpu_s": statistics.median(cpu),
        "parameters": sum(p.numel() for p in net.parameters()),
        "atoms": int(data.num_nodes), "edges": int(e), "outputs_per_edge": int(slices[-1]),
        "output_channels": len(js), "irreps_post_edge": str(config.irreps_post_edge),
        "net_out_irreps": str(config.net_out_irreps), "torch_threads": torch.get_num_threads(),
        "versions": {"deephe3_commit": commit, "torch": torch.__version__,
                     "e3nn": md.version("e3nn"), "torch_geometric": md.version("torch_geometric"),
                     "python": sys.version.split()[0]},
    }


# --------------------------------------------------------------------------- tgkit worker


def tgkit_worker(args: argparse.Namespace) -> dict:
    import dataclasses
    import importlib.metadata as md

    import bench_step  # this folder (sys.path[0]): the same graph, loss and step code
    import torch

    import tgkit
    from tgkit import keys as K
    from tgkit.config import Config, load_config
    from tgkit.nn import HamiltonianModel

    torch.set_num_threads(args.threads)
    w = WIDTHS[args.width]
    config = load_config(REPO / w["tgkit_config"]) if w["tgkit_config"] else Config()
    mc = config.model
    if (mc.irreps_hidden, mc.num_blocks, mc.irreps_embed) != (
            w["irreps_mid"], w["num_blocks"], w["irreps_embed"]):
        raise SystemExit(f"tgkit model {mc} does not match width {args.width}: {w}")
    graph, basis, spinful = bench_step.build_graph(
        argparse.Namespace(data=args.structure, dtype="float32"))
    device = torch.device("cpu")
    torch.manual_seed(0)
    tg = dataclasses.replace(config.tracegrad, setup=args.setup)
    model = HamiltonianModel(basis, spinful, mc, tg, dtype=torch.float32).to(device).train()
    step = bench_step.make_step(model, graph, device, bench_step.make_loss(
        config.train.trace_lambda))
    times, cpu = _median_step(step, args.warmup, args.steps)
    return {
        "times_s": times, "median_s": statistics.median(times),
        "cpu_times_s": cpu, "median_cpu_s": statistics.median(cpu),
        "parameters": sum(p.numel() for p in model.parameters()),
        "atoms": int(graph[K.SPECIES].shape[0]), "edges": int(graph[K.EDGE_INDEX].shape[1]),
        "outputs_per_edge": basis.dim ** 2, "torch_threads": torch.get_num_threads(),
        "model": dataclasses.asdict(mc),
        "tgkit_path": str(Path(tgkit.__file__).parent),
        "versions": {"tgkit": getattr(tgkit, "__version__", "?"), "torch": torch.__version__,
                     "e3nn": md.version("e3nn"), "python": sys.version.split()[0]},
    }


# --------------------------------------------------------------------------- driver


def write_structure(args: argparse.Namespace, where: Path) -> Path:
    """The benchmark's structure as a DeepH directory that both workers read."""
    from tgkit.data.deeph import read_structure
    from tgkit.data.deeph import write_structure as write

    if args.data:
        s = read_structure(args.data)
    else:
        from tgkit.data.structures import graphene
        from tgkit.testing import toy_structure

        atoms = graphene((2, 2))
        s = toy_structure(atoms.numbers, atoms.cell.array, atoms.positions, cutoff=7.0)
    s.overlaps = None
    return write(s, where / "structure")


def run_worker(kind: str, width: str, setup: str, structure: Path,
               args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    threads = str(args.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    cmd = [str(Path(__file__).resolve()), "--worker", kind, "--width", width,
           "--structure", str(structure), "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--threads", str(args.threads), "--deephe3-root", str(args.deephe3_root)]
    if kind == "deephe3":
        python = args.deephe3_python or str(Path(args.deephe3_root) / "venv" / "bin" / "python")
        env["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
        env.pop("PYTHONPATH", None)
    else:
        python = sys.executable
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        cmd += ["--setup", setup]
    t0 = time.perf_counter()
    p = subprocess.run([python, *cmd], env=env, capture_output=True, text=True,
                       timeout=args.timeout)
    lines = [x for x in p.stdout.splitlines() if x.startswith(RESULT_TAG)]
    if p.returncode != 0 or not lines:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"{kind} worker ({width}, {setup}) failed with exit code "
                         f"{p.returncode}")
    out = json.loads(lines[-1][len(RESULT_TAG):])
    out["wall_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="alternations per width")
    p.add_argument("--steps", type=int, default=5, help="timed steps per worker")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps per worker first (e3nn 0.4's TorchScript code in "
                   "DeepH-E3 runs slower for its first ~3 steps)")
    p.add_argument("--widths", nargs="+", default=list(WIDTHS), choices=list(WIDTHS))
    p.add_argument("--tgkit-setups", nargs="+", default=["baseline"], choices=TGKIT_SETUPS,
                   help="tgkit setups timed against DeepH-E3 (each gets its ratio)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in each worker")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                   help="time the steps by process CPU time (default: robust to other jobs "
                   "on a shared machine, with 1 thread) or by wall time")
    p.add_argument("--data", help="a DeepH structure directory (default: toy graphene 2x2)")
    p.add_argument("--deephe3-root", default=str(REPO / ".deephe3"),
                   help="folder with src/ (DeepH-E3's clone) and venv/")
    p.add_argument("--deephe3-python", help="default: <deephe3-root>/venv/bin/python")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "vs_deephe3.json"))
    p.add_argument("--timeout", type=float, default=600, help="seconds per worker")
    # worker mode (internal)
    p.add_argument("--worker", choices=["deephe3", "tgkit"], help=argparse.SUPPRESS)
    p.add_argument("--width", choices=list(WIDTHS), help=argparse.SUPPRESS)
    p.add_argument("--setup", default="baseline", choices=TGKIT_SETUPS, help=argparse.SUPPRESS)
    p.add_argument("--structure", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        res = (deephe3_worker if args.worker == "deephe3" else tgkit_worker)(args)
        print(RESULT_TAG + json.dumps(res), flush=True)
        return

    from machine import machine_info

    codes = [("deephe3", "baseline")] + [("tgkit", s) for s in args.tgkit_setups]
    label = {("deephe3", "baseline"): "DeepH-E3"} | {
        ("tgkit", s): f"tgkit {s}" for s in args.tgkit_setups}
    clock = "median_cpu_s" if args.clock == "cpu" else "median_s"
    start = machine_info()
    t_start = time.perf_counter()
    per_round: dict[str, dict[str, list[float]]] = {w: {label[c]: [] for c in codes}
                                                    for w in args.widths}
    runs = []
    with tempfile.TemporaryDirectory(prefix="vs_deephe3_") as tmp:
        structure = write_structure(args, Path(tmp))
        for r in range(args.rounds):
            for width in args.widths:
                for kind, setup in codes:
                    res = run_worker(kind, width, setup, structure, args)
                    name = label[(kind, setup)]
                    per_round[width][name].append(res[clock])
                    runs.append({"round": r, "width": width, "code": name, **res})
                    print(f"round {r + 1}/{args.rounds} {width:6s} {name:16s} "
                          f"{1000 * res[clock]:8.1f} {args.clock} ms/step  ({res['edges']} edges, "
                          f"{res['parameters']} parameters, {res['wall_s']:.0f} s wall)",
                          flush=True)
    end = machine_info()
    first = {(r["width"], r["code"]): r for r in runs if r["round"] == 0}
    ref = label[codes[1]]
    table = [f"| width | code | step ({args.clock} ms), median of round medians | "
             "per-round medians (ms) "
             "| parameters | DeepH-E3 / this |", "| --- | --- | --- | --- | --- | --- |"]
    summary: dict[str, dict] = {}
    for width in args.widths:
        med = {n: statistics.median(v) for n, v in per_round[width].items()}
        summary[width] = {"median_of_medians_ms": {n: 1000 * m for n, m in med.items()},
                          "ratio_deephe3_over": {n: med["DeepH-E3"] / m for n, m in med.items()
                                                 if n != "DeepH-E3"},
                          # per-round ratios (the two workers of one round ran back to back)
                          "per_round_ratio_deephe3_over": {
                              n: [a / b for a, b in zip(per_round[width]["DeepH-E3"], v,
                                                        strict=True)]
                              for n, v in per_round[width].items() if n != "DeepH-E3"}}
        for n, v in per_round[width].items():
            ratio = "-" if n == "DeepH-E3" else f"{med['DeepH-E3'] / med[n]:.2f}"
            rounds = ", ".join(f"{1000 * x:.0f}" for x in v)
            table.append(f"| {width} | {n} | {1000 * med[n]:.1f} | {rounds} | "
                         f"{first[(width, n)]['parameters']} | {ratio} |")
    g = first[(args.widths[0], "DeepH-E3")]
    gt = first[(args.widths[0], ref)]
    header = (f"graph: {'toy graphene 2x2' if not args.data else args.data}, {g['atoms']} atoms, "
              f"{g['edges']} edges (DeepH-E3) / {gt['edges']} (tgkit), outputs per edge "
              f"{g['outputs_per_edge']} / {gt['outputs_per_edge']}; float32, {args.threads} "
              f"torch thread(s); {args.rounds} rounds x {args.steps} timed steps after "
              f"{args.warmup} warm-up, workers alternating; {start['cpu']}, "
              f"{start['cores_visible']} cores, load {start['load_avg_1_5_15']} -> "
              f"{end['load_avg_1_5_15']}; {start['date']}")
    print()
    print(header)
    print("\n".join(table))
    result = {
        "benchmark": "train step, DeepH-E3 (public code) vs tgkit, alternating subprocesses",
        "machine": start, "machine_at_end": end, "total_wall_s": time.perf_counter() - t_start,
        "date": start["date"],
        "settings": {"rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
                     "clock": args.clock,
                     "threads": args.threads, "widths": {w: WIDTHS[w] for w in args.widths},
                     "cutoff_radius": CUTOFF_RADIUS, "lmax": LMAX, "dtype": "float32",
                     "data": args.data or "toy graphene 2x2 (tgkit.testing.toy_structure, "
                                          "7.0 A pairs)",
                     "tgkit_setups": args.tgkit_setups},
        "versions": {"deephe3_worker": g["versions"], "tgkit_worker": gt["versions"]},
        "graph": {"atoms": g["atoms"], "edges_deephe3": g["edges"], "edges_tgkit": gt["edges"],
                  "outputs_per_edge_deephe3": g["outputs_per_edge"],
                  "outputs_per_edge_tgkit": gt["outputs_per_edge"],
                  "deephe3_output_channels": g["output_channels"]},
        "per_round_median_s": per_round, "summary": summary, "table_md": "\n".join(table),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
