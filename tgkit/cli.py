"""The ``tgkit`` command: parse arguments, call the library, report errors in one line.

Every subcommand is a thin wrapper; the work lives in ``tgkit.data``, ``tgkit.train`` and
``tgkit.physics``. Bad input (a :class:`tgkit.errors.TgkitError`) prints one line naming the
file or key and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tgkit.errors import TgkitError

Handler = Callable[[argparse.Namespace], int]


def _preprocess(args: argparse.Namespace) -> int:
    from tgkit.data.store import GraphDataset, build_cache

    out = build_cache(args.data, args.out, cutoff=args.cutoff, progress=not args.quiet,
                      skip_bad=args.skip_bad)
    ds = GraphDataset(out)
    edges = sum(ds.num_edges())
    print(
        f"wrote {out}: {len(ds)} structures, {edges} edges, basis {ds.basis.to_dict()} "
        f"(B={ds.basis.dim}), {'spinful' if ds.spinful else 'spinless'}"
    )
    return 0


# --- train / eval / ablate / predict (library: tgkit.train) -------------------------------
def _load_cfg(args: argparse.Namespace):
    import dataclasses

    from tgkit.config import Config, load_config

    cfg = load_config(args.config) if args.config else Config()
    data, train = {}, {}
    if getattr(args, "data", None):
        data["path"] = str(args.data)
    if getattr(args, "skip_bad", False):
        data["skip_bad"] = True
    for key in ("out_dir", "device", "dtype", "epochs", "max_steps", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            train[key] = str(value) if key == "out_dir" else value
    if getattr(args, "quiet", False):
        train["progress"] = False
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data),
                               train=dataclasses.replace(cfg.train, **train))


def _train(args: argparse.Namespace) -> int:
    from tgkit.train.run import train

    train(_load_cfg(args), resume=args.resume, force=args.force)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tgkit.train.run import evaluate_run, print_summary

    print_summary(evaluate_run(args.model, args.data, args.device, args.out))
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from tgkit.train.ablate import run_ablation

    setups = tuple(s.strip() for s in args.setups.split(",") if s.strip())
    run_ablation(_load_cfg(args), args.out, args.seeds, setups)
    print((args.out / "table.md").read_text(), end="")
    print(f"wrote {args.out}/table.md, table.json, block_mae.npz")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tgkit.train.run import predict

    files = predict(args.model, args.data, args.out, args.device, args.cutoff, args.chunk_edges,
                    force=args.force)
    print(f"wrote {len(files)} hamiltonians_pred.h5 file(s) under {args.out}")
    return 0


def _common_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, nargs="?", default=None,
                   help="YAML config (sections data, model, tracegrad, train; documented in "
                   "tgkit/config.py); default: all defaults")
    p.add_argument("--data", type=Path, help="override data.path: a DeepH tree or a graph cache")
    p.add_argument("--device", help="override train.device: auto, cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=("float32", "float64"), help="override train.dtype")
    p.add_argument("--epochs", type=int, help="override train.epochs")
    p.add_argument("--max-steps", dest="max_steps", type=int, help="override train.max_steps")
    p.add_argument("--seed", type=int, help="override train.seed (the first seed for ablate)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_train_commands(sub) -> None:
    """The ``train``, ``eval``, ``ablate`` and ``predict`` subcommands."""
    p = sub.add_parser(
        "train", help="train a model from a YAML config",
        description="Train a Hamiltonian model (setup baseline/trace/grad/tracegrad from "
        "tracegrad.setup) with the paper's loss, then evaluate it. The run directory "
        "(train.out_dir) gets config.yaml, split.json, last.pt/best.pt checkpoints, model.pt, "
        "metrics.jsonl/csv, results.json (MAE in meV) and block_mae.npz. Multi-GPU: "
        "torchrun --nproc_per_node=N -m tgkit.cli train CONFIG.",
    )
    _common_train_options(p)
    p.add_argument("--out-dir", dest="out_dir", type=Path, help="override train.out_dir")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from OUT_DIR/last.pt when it exists (from "
                   "last.prev.pt, saying so, when last.pt is damaged)")
    p.add_argument("--force", action="store_true",
                   help="replace a previous run in OUT_DIR (default: refuse; see --resume)")
    p.add_argument("--skip-bad", dest="skip_bad", action="store_true",
                   help="set data.skip_bad: leave out (and list) structures that fail "
                   "validation instead of stopping")
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "eval", help="MAE metrics (meV) of a trained model",
        description="Evaluate a run directory, a training checkpoint or a model.pt: MAE_all, "
        "MAE_sample^cha, MAE_block^cha on the run's test set (non-twisted and twisted "
        "separately), or on every structure of --data. SOC errors use the complex modulus.",
    )
    p.add_argument("model", type=Path, help="run directory, best.pt/last.pt, model.pt, or the "
                   "name of a shipped model (graphene, bilayer: see models/)")
    p.add_argument("--data", type=Path, default=None,
                   help="DeepH tree or graph cache to evaluate (default: the run's split)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, default=None,
                   help="also write results.json and block_mae.npz into this directory")
    p.set_defaults(func=_eval)

    p = sub.add_parser(
        "ablate", help="train the four setups x N seeds and write Table 1/2",
        description="Train baseline, +Trace, +Grad and +TraceGrad with N seeds each on the "
        "same split; write OUT/table.md|csv|json (mean ± std of MAE_all, MAE_sample^cha, "
        "MAE_block^cha, challenge sample and block taken from the baseline), "
        "block_mae.json|npz and one run directory per setup and seed. Rerunning continues "
        "an interrupted ablation.",
    )
    _common_train_options(p)
    p.add_argument("--out", type=Path, required=True, help="ablation directory")
    p.add_argument("--seeds", type=int, default=3, help="repeated runs per setup (default 3)")
    p.add_argument("--setups", default="baseline,trace,grad,tracegrad",
                   help="comma-separated setups (default all four; baseline is required)")
    p.set_defaults(func=_ablate)

    p = sub.add_parser(
        "predict", help="write hamiltonians_pred.h5 for DeepH structures",
        description="Predict H blocks for every structure under DATA and write "
        "OUT/<structure>/hamiltonians_pred.h5 in DeepH format (OpenMX orbital order, eV), "
        "with the structure files copied alongside (OUT may equal DATA).",
    )
    p.add_argument("model", type=Path, help="run directory, best.pt/last.pt, model.pt, or the "
                   "name of a shipped model (graphene, bilayer: see models/)")
    p.add_argument("data", type=Path, help="a DeepH structure directory or tree")
    p.add_argument("--out", type=Path, required=True, help="output root")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--chunk-edges", type=int, default=None,
                   help="run the model over this many edges at a time (bounds memory, and "
                   "on a CPU is faster); 0: all at once; default: 4096 on a CPU, all at once "
                   "on a GPU")
    p.add_argument("--cutoff", type=float, default=None,
                   help="edges within this radius (Angstrom) instead of the hamiltonians.h5 "
                   "keys, for structures without DFT Hamiltonians")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing hamiltonians_pred.h5 files (default: refuse)")
    p.set_defaults(func=_predict)


def _data_check(args: argparse.Namespace) -> int:
    from tgkit.dft.check import check_directory

    report = check_directory(args.dir, raise_on_failure=False, geometry=not args.no_geometry)
    print(report.summary())
    if not report.ok:
        raise TgkitError(f"data check failed for {args.dir} (see the table above)")
    return 0


def _data_build(args: argparse.Namespace) -> int:
    import numpy as np

    from tgkit.data import structures as st
    from tgkit.dft import build_dataset, get_backend

    extra_info = None
    if args.twisted:
        atoms = [st.twisted_bilayer_graphene(*args.twisted)]
        # info.json "twisted": true puts it in the paper's "t" test subset (tgkit.data.splits)
        extra_info = [{"twisted": True, "twist_angle": atoms[0].info["twist_angle"]}]
    else:
        if args.family not in st.FAMILIES:
            raise TgkitError(f"unknown family {args.family!r}; known: {', '.join(st.FAMILIES)}")
        if args.stacking is not None and args.family != "BG":
            raise TgkitError(f"--stacking applies to --family BG, not {args.family}")
        seeds = [args.seed + k for k in range(args.num)]
        # "shifted": a uniform random top-layer shift per structure, drawn from its seed
        stackings = [
            [round(float(x), 6) for x in np.random.default_rng([s, 1]).random(2)]
            if args.stacking == "shifted" else args.stacking
            for s in seeds
        ]
        atoms = [
            st.thermal_perturb(
                st.FAMILIES[args.family](size=tuple(args.size),
                                         **({"stacking": stk} if stk is not None else {})),
                args.sigma, seed=s)
            for s, stk in zip(seeds, stackings, strict=True)
        ]
        if args.stacking is not None:
            extra_info = [{"stacking": stk} for stk in stackings]
    settings = {"kmesh": tuple(args.kmesh)}
    if args.backend == "cp2k":
        settings["mpi_procs"] = args.mpi_procs
    else:
        settings.update(fourier_factor=args.fourier_factor, ke_cutoff=args.ke_cutoff)
    backend = get_backend(args.backend, **settings)
    stats = build_dataset(atoms, args.out, backend, pair_cutoff=args.pair_cutoff, jobs=args.jobs,
                          names=[args.name] if args.twisted and args.name else None,
                          extra_info=extra_info)
    print(f"built {len(stats)} structure(s) into {args.out}")
    return 0


def _bands(args: argparse.Namespace) -> int:
    from tgkit.physics.bands import bands_command

    res = bands_command(args.dir, args.pred, args.out, path=args.path, npoints=args.npoints,
                        window=args.window, solver=args.solver, num_bands=args.num_bands,
                        force=args.force)
    from tgkit.viz.band_png import write_bands_png

    write_bands_png(res, Path(args.out) / "bands.png")
    for k, v in res.summary().items():
        if not isinstance(v, (list, dict)):
            print(f"{k}: {v}")
    print(f"wrote {args.out}/bands.png, bands.csv, bands.json")
    return 0


def add_data_commands(sub) -> None:
    """``tgkit data check|build`` and ``tgkit bands``."""
    data = sub.add_parser("data", help="check DeepH directories; build them with DFT")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = dsub.add_parser(
        "check", help="verify a DeepH directory (or tree) against physics",
        description="Hermiticity H_ji(-R) = H_ij(R)^dagger; bands from the stored H(R), S(R) "
        "against the DFT code's own eigenvalues (dft_bands.json, when present) on its SCF mesh "
        "and along a path; S blocks against overlaps computed independently with PySCF at the "
        "stated geometry (catches wrong R labels and orbital order). Exit 2 on failure.",
    )
    p.add_argument("dir", type=Path, help="a structure directory or a tree of them")
    p.add_argument("--no-geometry", action="store_true",
                   help="skip the PySCF overlap check (without pyscf installed it is "
                   "skipped anyway, saying so)")
    p.set_defaults(func=_data_check)

    p = dsub.add_parser(
        "build", help="run DFT (CP2K or PySCF) and write DeepH directories",
        description="Generate thermally perturbed structures of a material family (or one "
        "twisted bilayer) and compute their real-space H(R), S(R) with CP2K (default) or "
        "PySCF, written as DeepH directories with the DFT code's reference bands. Resumable: "
        "finished structures are skipped; raw DFT output is deleted after conversion.",
    )
    p.add_argument("--out", type=Path, required=True, help="dataset root to write")
    p.add_argument("--family", default="MG", help="MG, MM, BG, BB, BT or BS (default MG)")
    p.add_argument("--size", type=int, nargs=2, default=[2, 2], metavar=("N1", "N2"),
                   help="in-plane supercell of the family's cell (default 2 2)")
    p.add_argument("--num", type=int, default=4, help="number of structures (default 4)")
    p.add_argument("--stacking", choices=["AB", "AA", "shifted"], default=None,
                   help="--family BG only: AB (Bernal, the family's default), AA, or shifted "
                   "(a random in-plane top-layer shift per structure); recorded in info.json")
    p.add_argument("--sigma", type=float, default=0.05,
                   help="Gaussian displacement amplitude in Angstrom (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first structure")
    p.add_argument("--twisted", type=int, nargs=2, metavar=("M", "N"),
                   help="build one commensurate twisted bilayer graphene (m, n) instead; "
                   "marked \"twisted\": true in info.json (the test set's \"t\" subset)")
    p.add_argument("--name", help="with --twisted: the structure directory's name "
                   "(default 0000)")
    p.add_argument("--backend", choices=["cp2k", "pyscf"], default="cp2k")
    p.add_argument("--kmesh", type=int, nargs=3, default=[3, 3, 1], help="k mesh (default 3 3 1)")
    p.add_argument("--mpi-procs", type=int, default=2, help="MPI ranks per CP2K run (default 2)")
    p.add_argument("--fourier-factor", type=int, default=3,
                   help="pyscf: H(R) is Fourier-transformed from a mesh this many times denser "
                   "than the SCF mesh (default 3; 1 aliases, see datasets/README.md)")
    p.add_argument("--ke-cutoff", type=float, default=60.0,
                   help="pyscf: plane-wave kinetic energy cutoff, Hartree (default 60)")
    p.add_argument("--jobs", type=int, default=1, help="structures computed at once (default 1)")
    p.add_argument("--pair-cutoff", type=float, default=8.0,
                   help="keep blocks of pairs closer than this, Angstrom (default 8.0; see "
                   "datasets/README.md for the truncation curve)")
    p.set_defaults(func=_data_build)

    p = sub.add_parser(
        "bands", help="predicted against DFT band structure, figure + table",
        description="Bands of H(k) = sum_R H(R) exp(i 2 pi k.R) with S(k), solved as a "
        "generalized eigenproblem, along a k path, for the DFT blocks of DIR and a prediction "
        "file; writes bands.png, bands.csv, bands.json (errors within +-WINDOW eV of E_F).",
    )
    p.add_argument("dir", type=Path, help="a DeepH structure directory (reference H, S)")
    p.add_argument("--pred", default="hamiltonians_pred.h5",
                   help="predicted blocks: a path, or a file name inside DIR "
                   "(default hamiltonians_pred.h5)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--path", default=None, help="ase band path string, e.g. GMKG (default: "
                   "the lattice's standard path)")
    p.add_argument("--npoints", type=int, default=60, help="k points along the path")
    p.add_argument("--window", type=float, default=2.0, help="eV around E_F for the error")
    p.add_argument("--solver", choices=["auto", "dense", "sparse"], default="auto",
                   help="dense: all bands; sparse: shift-invert for a few bands near E_F "
                   "(large cells); auto: sparse above 3000 orbitals")
    p.add_argument("--num-bands", type=int, default=None,
                   help="sparse solver: eigenvalues nearest E_F per k point (default 20)")
    p.add_argument("--force", action="store_true",
                   help="overwrite bands.png/csv/json in OUT (default: refuse)")
    p.set_defaults(func=_bands)


def _export_sisl(args: argparse.Namespace) -> int:
    from tgkit.physics.sisl_io import check_export_path, export_sisl, import_sisl

    if len(args.paths) != (1 if args.dft else 2):
        raise TgkitError("expected RUN_OR_MODEL DATA_DIR, or --dft DATA_DIR")
    import_sisl()
    check_export_path(args.out, args.force)  # before a prediction that may take minutes
    if args.dft:
        from tgkit.data.deeph import read_structure

        structure, blocks = read_structure(args.paths[0]), None
    else:
        from tgkit.train.run import predict_one

        structure, blocks = predict_one(args.paths[0], args.paths[1], args.device, args.cutoff,
                                        args.chunk_edges)
    out = export_sisl(structure, args.out, blocks, force=args.force)
    what = "DFT" if args.dft else "predicted"
    print(f"wrote {out}: {what} H{' and S' if structure.overlaps is not None else ''} of "
          f"{structure.name} ({structure.num_atoms} atoms)")
    return 0


def add_export_commands(sub) -> None:
    """``tgkit export sisl``."""
    export = sub.add_parser("export", help="write Hamiltonians for other codes (sisl, TBtrans)")
    esub = export.add_subparsers(dest="export_command", required=True, metavar="FORMAT")
    p = esub.add_parser(
        "sisl", help="predicted (or DFT) H and S as a sisl/SIESTA file",
        description="Predict the H blocks of one DeepH structure with a trained model (as "
        "tgkit predict does) and write them, with the structure's overlaps, as a sisl "
        "Hamiltonian: FILE.nc (SIESTA NetCDF, read by sisl) or FILE.TSHS (read by sisl and "
        "TBtrans). Energies in the file are relative to info.json's Fermi level. Needs "
        "pip install tgkit[interop].",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="[RUN_OR_MODEL] DATA_DIR",
                   help="a run directory, best.pt/last.pt or model.pt, then one DeepH "
                   "structure directory (with --dft: the directory only)")
    p.add_argument("--out", type=Path, required=True, help="FILE.nc or FILE.TSHS")
    p.add_argument("--dft", action="store_true",
                   help="export the directory's DFT blocks (hamiltonians.h5) instead of a "
                   "prediction")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--chunk-edges", type=int, default=None,
                   help="as for tgkit predict (default: 4096 on a CPU)")
    p.add_argument("--cutoff", type=float, default=None,
                   help="as for tgkit predict: edges within this radius (Angstrom) instead of "
                   "the hamiltonians.h5 keys")
    p.set_defaults(func=_export_sisl)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tgkit",
        description="TraceGrad toolkit: train and use SO(3)-equivariant Hamiltonian models "
        "on DeepH-format data.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "preprocess",
        help="read DeepH directories and write the HDF5 graph cache",
        description="Read every DeepH structure directory under DATA (element.dat, lat.dat, "
        "site_positions.dat, orbital_types.dat, info.json, hamiltonians.h5, overlaps.h5), "
        "validate it, and write one HDF5 cache of graphs, atomically.",
    )
    p.add_argument("data", type=Path, help="a structure directory or a tree of them")
    p.add_argument("--out", type=Path, required=True, help="cache file to write (.h5)")
    p.add_argument(
        "--cutoff", type=float, default=None,
        help="build edges from this radius in Angstrom instead of the hamiltonians.h5 keys "
        "(for structures without DFT Hamiltonians); default: the keys",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--skip-bad", dest="skip_bad", action="store_true",
                   help="leave out structures that fail validation, listing them with a "
                   "count, instead of stopping at the first (default: stop)")
    p.set_defaults(func=_preprocess)
    add_train_commands(sub)
    add_data_commands(sub)
    add_export_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TgkitError as exc:
        print(f"tgkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tgkit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
