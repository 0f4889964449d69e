"""torch.compile on the training step (issue 18, item 5): eager against compiled, one run.

Whole-model ``torch.compile`` fails in TorchDynamo on e3nn's ``Irreps`` (``Irreps.__len__``
raises NotImplementedError while tracing e3nn 0.6's modules), so this compiles what can be
compiled: every :class:`~tgkit.nn.edge_frame.FrameProduct` (the edge-frame tensor product, the
largest op count of a step) and every TraceGrad module, through
``HamiltonianModel.compile_training`` (what ``train.compile: true`` does: dynamic shapes, the
training path only), optionally the equivariant layer norms too (``--layer-norm``). It
reports the compile time (the first compiled step) and the median eager and compiled step
times, alternating eager and compiled steps so that load hits both alike.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_compile.py                 # narrow model
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_compile.py --config ''     # paper widths
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_compile.py --config '' --setup tracegrad
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_step as bs  # noqa: E402

from tgkit.config import Config, TraceGradConfig, load_config  # noqa: E402
from tgkit.nn import HamiltonianModel, TraceGrad  # noqa: E402
from tgkit.nn.blocks import EquivariantLayerNorm  # noqa: E402
from tgkit.nn.edge_frame import FrameProduct  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"),
                   help="model section from this YAML ('' : tgkit's defaults, paper widths)")
    p.add_argument("--setup", default="baseline")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench/gpu_check.sh)")
    p.add_argument("--layer-norm", action="store_true", help="compile the layer norms too")
    args = p.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    graph, basis, spinful = bs.build_graph(argparse.Namespace(data=None, dtype="float32"))
    graph = bs.to_device(graph, device)
    cfg = load_config(args.config) if args.config else Config()
    loss_fn = bs.make_loss(cfg.train.trace_lambda)
    torch.manual_seed(0)
    model = HamiltonianModel(basis, spinful, cfg.model, TraceGradConfig(setup=args.setup),
                             dtype=torch.float32).to(device).train()
    compiled = copy.deepcopy(model)
    compiled.compile_training()   # frame products and TraceGrad, as train.compile: true does
    kinds = (FrameProduct, TraceGrad) + ((EquivariantLayerNorm,) if args.layer_norm else ())
    for mod in compiled.modules():
        if isinstance(mod, EquivariantLayerNorm) and args.layer_norm:
            mod.forward = torch.compile(mod.forward, dynamic=False)
    eager = bs.make_step(model, graph, device, loss_fn)
    comp = bs.make_step(compiled, graph, device, loss_fn)
    t0 = time.perf_counter()
    comp()
    compile_s = time.perf_counter() - t0
    comp()
    eager(), eager()
    te, tc = [], []
    for _ in range(args.steps):
        te.append(eager())
        tc.append(comp())
    e, c = 1e3 * statistics.median(te), 1e3 * statistics.median(tc)
    print(f"torch {torch.__version__}; {cfg.model.irreps_hidden}, {cfg.model.num_blocks} blocks, "
          f"{args.setup}; compiled: {', '.join(k.__name__ for k in kinds)}")
    print(f"first compiled step (compilation) {compile_s:.1f} s; eager {e:.1f} ms/step, "
          f"compiled {c:.1f} ms/step ({e / c:.2f}x); break-even after "
          + (f"{compile_s * 1e3 / (e - c):.0f} steps" if e > c else "never"))


if __name__ == "__main__":
    main()
