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

    out = build_cache(args.data, args.out, cutoff=args.cutoff, progress=not args.quiet)
    ds = GraphDataset(out)
    edges = sum(int(ds[k]["num_edges"].sum()) for k in range(len(ds)))
    print(
        f"wrote {out}: {len(ds)} structures, {edges} edges, basis {ds.basis.to_dict()} "
        f"(B={ds.basis.dim}), {'spinful' if ds.spinful else 'spinless'}"
    )
    return 0


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
    p.set_defaults(func=_preprocess)
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
