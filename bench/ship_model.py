"""Ship a trained run as a pretrained model: ``models/<name>/`` with model.pt and a model card.

The card (``card.md`` for people, ``card.json`` for the tests) records the data recipe, the
full config, the commit, the run's metrics and band errors on its held-out test sets, and the
MAE and band error of the model on shipped structures (``--check``), which
``tests/test_models.py`` recomputes and compares.

Usage (repository root)::

    .venv/bin/python bench/ship_model.py runs/converged/graphene/tracegrad/seed0 --name graphene \\
        --data-recipe "datasets/build_large.sh: graphene-60" --check datasets/graphene-8/0003 \\
        --command "OMP_NUM_THREADS=1 .venv/bin/python bench/bench_converged.py --set graphene"
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_info  # noqa: E402

from tgkit.data.deeph import read_structure  # noqa: E402
from tgkit.io_utils import write_text  # noqa: E402
from tgkit.nn import load_model  # noqa: E402
from tgkit.train.band_error import structure_errors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def subset_lines(res: dict) -> list[str]:
    out = []
    for key, label in (("val", "validation"), ("test", "test (nt)"), ("test_t", "test (t)")):
        if key in res:
            r = res[key]
            out.append(f"| {label} | {r['num_samples']} | {r['mae_all']:.2f} | "
                       f"{r['mae_sample_cha']:.2f} | {r['mae_block_cha']:.2f} "
                       f"({r['worst_block']}) | "
                       f"{r.get('band_max_meV', float('nan')):.0f} / "
                       f"{r.get('band_mean_meV', float('nan')):.0f} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--data-recipe", required=True)
    p.add_argument("--check", action="append", default=[], help="shipped structure directory")
    p.add_argument("--command", required=True, help="the command that reproduces the run")
    p.add_argument("--note", default="", help="a paragraph for the card (gaps, caveats)")
    p.add_argument("--commit", default="HEAD",
                   help="the commit the run was trained with (default: this checkout's HEAD)")
    args = p.parse_args()
    torch.set_num_threads(1)
    dest = ROOT / "models" / args.name
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("model.pt", "model.pt.sha256"):
        if (args.run / f).exists():
            shutil.copyfile(args.run / f, dest / f)
    res = json.loads((args.run / "results.json").read_text())
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    model = load_model(dest / "model.pt")
    checks = []
    for d in args.check:
        s = read_structure(ROOT / d)
        checks.append({"structure": d, "twisted": bool(s.info.get("twisted", False)),
                       **structure_errors(model, s)})
    commit = subprocess.run(["git", "rev-parse", args.commit], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    split = json.loads((args.run / "split.json").read_text())
    subsets = {k: {kk: vv for kk, vv in v.items() if kk not in ("mae_sample", "mae_block")}
               for k, v in res.items() if isinstance(v, dict)}
    card = {"name": args.name, "commit": commit, "data_recipe": args.data_recipe,
            "command": args.command, "config": cfg, "split": split, "results": subsets,
            "steps": res.get("steps"), "stop_reason": res.get("stop_reason"),
            "params": sum(p.numel() for p in model.parameters()), "checks": checks,
            "machine": machine_info(), "note": args.note}
    write_text(dest / "card.json", json.dumps(card, indent=1) + "\n")
    m, tg = cfg["model"], cfg["tracegrad"]
    md = [f"# Model card: `{args.name}`", "",
          f"- **What**: tgkit {tg['setup']} model, encoder `{m['irreps_hidden']}` x "
          f"{m['num_blocks']} blocks, lmax {m['lmax']}, cutoff {m['cutoff']} A, "
          f"{card['params']:,} parameters, {cfg['train']['dtype']}.",
          f"- **Data**: {args.data_recipe} (CP2K 2023.1, PBE, DZVP-MOLOPT-SR-GTH, 13 orbitals "
          "per C; see datasets/README.md).",
          f"- **Split**: {len(split['train'])} train / {len(split['val'])} val / "
          f"{len(split['test'])} test (nt) / {len(split.get('test_twisted', []))} test (t).",
          f"- **Training**: {res.get('steps')} steps, stop: "
          f"{res.get('stop_reason') or 'all epochs done'}; "
          f"commit `{commit[:10]}`; {card['machine']['cpu']}, {card['machine']['date']}.",
          f"- **Reproduce**: `{args.command}`", "",
          "## Metrics (meV; bands within E_F +- 2 eV along the standard path)", "",
          "| subset | structures | MAE_all | MAE_sample^cha | MAE_block^cha | band max / mean |",
          "| --- | --- | --- | --- | --- | --- |", *subset_lines(res), "",
          "## Checks on shipped structures (tests/test_models.py recomputes these)", "",
          "| structure | in split | MAE (meV) | band max / mean (meV) |",
          "| --- | --- | --- | --- |"]
    for c in checks:
        name = Path(c["structure"]).name
        where = next((k for k in ("train", "val", "test", "test_twisted")
                      if any(n.endswith(name) for n in split.get(k, []))), "not in the set")
        md.append(f"| `{c['structure']}` | {where} | {c['mae_meV']:.2f} | "
                  f"{c['band_max_meV']:.0f} / {c['band_mean_meV']:.0f} |")
    if args.note:
        md += ["", "## Notes", "", args.note]
    md += ["", "Load: `tgkit.models.load(\"" + args.name + "\")`, or "
           f"`tgkit predict {args.name} DATA_DIR --out PRED_DIR`."]
    write_text(dest / "card.md", "\n".join(md) + "\n")
    print((dest / "card.md").read_text())


if __name__ == "__main__":
    main()
