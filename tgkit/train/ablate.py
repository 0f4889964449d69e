"""The paper's ablation: four setups x N seeds on one dataset, tables in the layout of Tables 1-2.

``tgkit ablate CONFIG --out DIR --seeds N`` trains ``baseline``, ``trace``, ``grad`` and
``tracegrad`` (the ``tracegrad.setup`` of CONFIG is overridden) with training seeds
``train.seed + k``, k < N, on the same split, then evaluates them with the paper's challenge
definitions: ``MAE_sample^cha`` is measured on the test sample where the *baseline* is worst and
``MAE_block^cha`` on the block type where the baseline is worst (worst by the baseline's mean
over seeds), separately for the non-twisted (``nt``) and twisted (``t``) test sets.

Run-directory layout (read by the notebooks)::

    DIR/config.yaml              the base configuration
    DIR/graphs.h5, split.json    the shared graph cache and split
    DIR/<setup>/seed<k>/         one training run each (layout: tgkit.train.run); a run whose
                                 results.json exists is reused, so an interrupted ablation
                                 continues where it stopped
    DIR/challenge.json           {"nt"|"t": {"sample": name, "block": label}} from the baseline
    DIR/table.json               {setup: {subset: {metric: {"mean", "std", "values": [...]}}}}
                                 metrics mae_all, mae_sample_cha, mae_block_cha (meV)
    DIR/table.md, DIR/table.csv  the same as text: "mean ± std" per cell (std over seeds, ddof 0)
    DIR/block_mae.json           {setup: {subset: {block label: {"mean", "std"}}}} (MAE_block,
                                 bar charts of Figs 4-5)
    DIR/block_mae.npz            "<setup>/<subset>/block_mae" (seeds, blocks) with "block_labels",
                                 "<setup>/<subset>/orbital_mae" (seeds, S, S, B, B), "species",
                                 "orbital_labels"
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tgkit.config import SETUPS, Config, save_config
from tgkit.errors import ConfigError
from tgkit.io_utils import atomic_path, write_text
from tgkit.train.run import prepare_cache, train

SUBSETS = {"nt": "test", "t": "test_t"}
METRICS = ("mae_all", "mae_sample_cha", "mae_block_cha")
SETUP_NAMES = {"baseline": "DeepHE3 (Baseline)", "trace": "DeepHE3+Trace",
               "grad": "DeepHE3+Grad", "tracegrad": "DeepHE3+TraceGrad"}


def _mean_std(values: Sequence[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "values": [float(v) for v in a]}


def run_config(config: Config, out: Path, setup: str, seed: int, cache: Path, split: Path
               ) -> Config:
    """The configuration of one ablation run: ``setup`` and ``seed`` under ``out``.

    Every run shares the ablation's graph cache (``data.cache``; ``data.path`` keeps naming
    the source data) and its split file.
    """
    return dataclasses.replace(
        config,
        tracegrad=dataclasses.replace(config.tracegrad, setup=setup),
        data=dataclasses.replace(config.data, cache=str(cache), split=str(split)),
        train=dataclasses.replace(config.train, seed=seed,
                                  out_dir=str(out / setup / f"seed{seed}")),
    )


def run_ablation(config: Config, out_dir: str | Path, seeds: int = 3,
                 setups: Sequence[str] = SETUPS, verbose: bool = True) -> dict[str, Any]:
    """Train every setup with ``seeds`` seeds and write the tables; returns table.json's dict.

    Args:
        config: base configuration; ``tracegrad.setup``, ``train.seed`` (the first seed) and
            ``train.out_dir`` are set per run.
        out_dir: the ablation directory (layout in the module docstring).
        seeds: number of repeated runs per setup.
        setups: which setups; ``baseline`` is required for the challenge metrics.
    """
    if "baseline" not in setups:
        raise ConfigError("ablate: the setups must include baseline (it defines MAE^cha)")
    bad = [s for s in setups if s not in SETUPS]
    if bad:
        raise ConfigError(f"ablate: unknown setup(s) {bad}; known: {', '.join(SETUPS)}")
    if seeds < 1:
        raise ConfigError(f"ablate: --seeds must be >= 1, got {seeds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "config.yaml")
    base_cfg = dataclasses.replace(config, data=dataclasses.replace(
        config.data, cache=config.data.cache or str(out / "graphs.h5")))
    cache = prepare_cache(base_cfg, out)
    split = out / "split.json"
    if not split.exists():
        from tgkit.data.store import GraphDataset
        from tgkit.train.run import make_split

        make_split(config, GraphDataset(cache)).to_json(split)

    runs: dict[str, list[dict[str, Any]]] = {}
    for setup in ["baseline", *[s for s in setups if s != "baseline"]]:
        runs[setup] = []
        for k in range(seeds):
            cfg = run_config(config, out, setup, config.train.seed + k, cache, split)
            res_file = Path(cfg.train.out_dir) / "results.json"
            if res_file.exists():
                doc = json.loads(res_file.read_text())
            else:
                if verbose:
                    print(f"== {setup} seed {cfg.train.seed} -> {cfg.train.out_dir}", flush=True)
                doc = train(cfg, resume=True, verbose=verbose)
            runs[setup].append({"doc": doc, "dir": Path(cfg.train.out_dir)})
    return write_tables(out, runs, seeds=[config.train.seed + k for k in range(seeds)])


def _challenge(baseline: list[dict[str, Any]], subset: str) -> dict[str, str]:
    """Worst sample and block of the baseline's mean over seeds."""
    docs = [r["doc"][subset] for r in baseline]
    samples = {n: np.mean([d["mae_sample"][n] for d in docs]) for n in docs[0]["mae_sample"]}
    blocks = {b: np.mean([d["mae_block"][b] for d in docs]) for b in docs[0]["mae_block"]}
    return {"sample": max(samples, key=samples.__getitem__),
            "block": max(blocks, key=blocks.__getitem__)}


def write_tables(out: Path, runs: dict[str, list[dict[str, Any]]], seeds: Sequence[int]
                 ) -> dict[str, Any]:
    """challenge.json, table.{json,md,csv}, block_mae.{json,npz} from finished runs."""
    subsets = [s for s, key in SUBSETS.items() if key in runs["baseline"][0]["doc"]]
    challenge = {s: _challenge(runs["baseline"], SUBSETS[s]) for s in subsets}
    write_text(out / "challenge.json", json.dumps(challenge, indent=1))
    table: dict[str, Any] = {}
    blocks_json: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for setup, rs in runs.items():
        table[setup], blocks_json[setup] = {}, {}
        for s in subsets:
            key, ch = SUBSETS[s], challenge[s]
            docs = [r["doc"][key] for r in rs]
            table[setup][s] = {
                "mae_all": _mean_std([d["mae_all"] for d in docs]),
                "mae_sample_cha": _mean_std([d["mae_sample"][ch["sample"]] for d in docs]),
                "mae_block_cha": _mean_std([d["mae_block"][ch["block"]] for d in docs]),
            }
            labels = list(docs[0]["mae_block"])
            per = np.array([[d["mae_block"][b] for b in labels] for d in docs])
            blocks_json[setup][s] = {b: {"mean": float(per[:, i].mean()),
                                         "std": float(per[:, i].std())}
                                     for i, b in enumerate(labels)}
            arrays[f"{setup}/{s}/block_mae"] = per
            arrays[f"{s}/block_labels"] = np.asarray(labels)
            orb = [np.load(r["dir"] / "block_mae.npz") for r in rs]
            arrays[f"{setup}/{s}/orbital_mae"] = np.stack([o[f"{key}/orbital_mae"] for o in orb])
            arrays["species"] = orb[0]["species"]
            arrays["orbital_labels"] = orb[0]["orbital_labels"]
    doc = {"seeds": list(seeds), "challenge": challenge, "table": table}
    write_text(out / "table.json", json.dumps(doc, indent=1))
    write_text(out / "block_mae.json", json.dumps(blocks_json, indent=1))
    with atomic_path(out / "block_mae.npz") as tmp:
        np.savez(tmp, **arrays)
    md, csv = format_table(table, subsets, len(seeds))
    write_text(out / "table.md", md)
    write_text(out / "table.csv", csv)
    return doc


def format_table(table: dict[str, Any], subsets: Sequence[str], n_seeds: int
                 ) -> tuple[str, str]:
    """Markdown and CSV in the layout of the paper's Tables 1-2 (mean ± std, meV)."""
    heads = ["MAE_all", "MAE_sample^cha", "MAE_block^cha"]
    cols = [f"{h} ({s})" if len(subsets) > 1 or s == "t" else h for s in subsets for h in heads]
    md = [f"MAE in meV, mean ± std over {n_seeds} seed(s); nt = non-twisted, t = twisted test set",
          "", "| Method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    csv = ["method," + ",".join(c.replace(",", ";") for c in cols)]
    for setup, per in table.items():
        cells = [f"{per[s][m]['mean']:.3f} ± {per[s][m]['std']:.3f}"
                 for s in subsets for m in METRICS]
        name = SETUP_NAMES.get(setup, setup)
        md.append(f"| {name} | " + " | ".join(cells) + " |")
        csv.append(name + "," + ",".join(cells))
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"
