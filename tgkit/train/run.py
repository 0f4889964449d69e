"""Entry points behind ``tgkit train|eval|predict``: from a config to a finished run directory.

Layout of a training run directory (``train.out_dir``)::

    config.yaml       the full configuration used (every default written out)
    split.json        structure names of train / val / test / test_twisted
    graphs.h5         graph cache, when data.path is a DeepH tree and data.cache is unset
    last.pt, best.pt  full training checkpoints (resume with ``tgkit train --resume``)
    model.pt          best weights for inference (tgkit.nn.load_model; no T decoder)
    metrics.jsonl     one JSON record per log step ("kind": "train") and validation ("val")
    metrics.csv       the validation records as a table
    results.json      {"val"|"test"|"test_t": {"mae_all", "mae_sample_cha", "mae_block_cha",
                       "worst_sample", "worst_block", "loss_q", "loss_t", "mae_sample": {name: meV},
                       "mae_block": {"C-C s1-p1": meV}, "num_samples"}}, "stop_reason", "steps"
    block_mae.npz     "<subset>/orbital_mae" and "<subset>/orbital_count" (S, S, B, B) arrays,
                       "species" (S,), "orbital_labels" (B,) for heatmaps
    tensorboard/      when the tensorboard package is installed

``test`` is the non-twisted test set (the paper's "nt"), ``test_t`` the twisted one ("t").
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tgkit import keys as K
from tgkit.config import Config, config_to_dict, save_config
from tgkit.data.deeph import find_structures, read_structure, write_structure
from tgkit.data.splits import (
    PAPER_SPLITS,
    Split,
    split_by_seed,
    split_from_lists,
    split_from_manifest,
)
from tgkit.data.store import GraphDataset, build_cache, cache_matches
from tgkit.errors import ConfigError, TgkitError
from tgkit.io_utils import atomic_path, damaged_file_errors, load_torch, write_text
from tgkit.irreps import OrbitalBasis
from tgkit.nn.inference import predict_structure
from tgkit.nn.model import load_weights
from tgkit.runtime import reuse_freed_memory
from tgkit.train import hooks as H
from tgkit.train.band_error import BandErrorHook, subset_band_errors
from tgkit.train.checkpoint import load_checkpoint, resume_checkpoint, seed_everything
from tgkit.train.distributed import (
    SINGLE,
    DistEnv,
    barrier,
    broadcast_parameters,
    init_distributed,
    parse_dtype,
)
from tgkit.train.metrics import EvalResult
from tgkit.train.outputs import claim_run_dir, refuse_overwrite
from tgkit.train.schedule import inference_weights
from tgkit.train.trainer import Trainer, evaluate


def prepare_cache(config: Config, out_dir: Path, env: DistEnv = SINGLE) -> Path:
    """The graph cache of ``data.path``: the file itself, or one built from a DeepH tree."""
    raw = config.data.path
    if not raw:
        raise ConfigError("data.path: required (a DeepH structure tree or a graph cache .h5)")
    path = Path(raw)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"data.path: {path} does not exist")
    cache = Path(config.data.cache) if config.data.cache else out_dir / "graphs.h5"
    if env.is_main and not cache_matches(cache, path):  # rebuilt when a source file changed
        build_cache(path, cache, progress=False, skip_bad=config.data.skip_bad)
    barrier()
    return cache


def make_split(config: Config, ds: GraphDataset) -> Split:
    """The train/val/test split that ``data.split`` asks for."""
    d = config.data
    names = ds.all_names
    twisted = [n for n, t in ds.twisted.items() if t]
    if d.split == "random":
        test = max(0.0, 1.0 - d.train_fraction - d.val_fraction)
        return split_by_seed(names, (d.train_fraction, d.val_fraction, test), d.split_seed, twisted)
    if d.split.upper() in PAPER_SPLITS:
        return split_from_manifest(d.split, names, twisted, d.split_seed)
    path = Path(d.split)
    if not path.is_file():
        raise ConfigError(f"data.split: {d.split!r} is not random, a manifest "
                          f"({', '.join(PAPER_SPLITS)}) or an existing split JSON file")
    s = Split.from_json(path)
    return split_from_lists(names, {"train": s.train, "val": s.val, "test": s.test,
                                    "test_twisted": s.test_twisted})


def check_trainable(ds: GraphDataset) -> None:
    """A training set needs DFT blocks: caches built with a cutoff (prediction) have none."""
    if len(ds) and K.HAMILTONIAN not in ds[0]:
        raise TgkitError(f"{ds.path}: the cache has no Hamiltonians (built for prediction with a "
                         "cutoff?); training needs hamiltonians.h5 in every structure")


def build_model(config: Config, basis: OrbitalBasis, spinful: bool, dtype: torch.dtype):
    from tgkit.nn import HamiltonianModel

    return HamiltonianModel(basis, spinful, config.model, config.tracegrad, dtype=dtype)


def default_hooks(config: Config, out_dir: Path, verbose: bool = True) -> list[H.Hook]:
    t = config.train
    hooks: list[H.Hook] = [H.DivergenceGuard(), H.LRMonitor(), H.MetricsLogger(out_dir)]
    if t.tensorboard:
        hooks.append(H.TensorBoard(out_dir / "tensorboard"))
    if t.progress:
        hooks.append(H.ProgressBar())
    if verbose:
        hooks.append(H.PrintValidation())
    if t.band_error_every:
        hooks.append(BandErrorHook(t.band_error_every))
    if t.early_stopping:
        hooks.append(H.EarlyStopping(t.early_stopping, monitor=t.monitor))
    hooks.append(H.Checkpoint(out_dir, monitor=t.monitor, every_n_steps=t.checkpoint_every))
    return hooks


def result_json(res: EvalResult, n: int) -> dict[str, Any]:
    return {**res.summary(), "worst_sample": res.worst_sample if res.mae_sample else None,
            "worst_block": res.worst_block if res.mae_block else None, **res.to_json(),
            "num_samples": n}


def evaluate_subsets(model, ds: GraphDataset, split: Split, device, env: DistEnv = SINGLE,
                     batch_size: int = 1) -> dict[str, tuple[EvalResult, int]]:
    """Metrics of the val, test ("nt") and twisted test ("t") subsets that are not empty."""
    out = {}
    for key, names in (("val", split.val), ("test", split.test), ("test_t", split.test_twisted)):
        if names:
            out[key] = (evaluate(model, ds.subset(names), device, env, batch_size), len(names))
    return out


def results_doc(results: dict[str, tuple[EvalResult, int]],
                bands: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``results.json``'s subsets: the metrics plus the band errors (when computed)."""
    return {k: result_json(r, n) | bands.get(k, {}) for k, (r, n) in results.items()}


def subset_names(split: Split) -> dict[str, Sequence[str]]:
    return {"val": split.val, "test": split.test, "test_t": split.test_twisted}


def write_results(out_dir: Path, results: dict[str, tuple[EvalResult, int]], basis: OrbitalBasis,
                  extra: dict[str, Any], bands: dict[str, dict[str, Any]] | None = None
                  ) -> dict[str, Any]:
    doc = results_doc(results, bands or {}) | extra
    write_text(out_dir / "results.json", json.dumps(doc, indent=1))
    arrays: dict[str, np.ndarray] = {"species": np.asarray(basis.species),
                                     "orbital_labels": np.asarray(basis.orbital_labels())}
    for k, (r, _) in results.items():
        arrays[f"{k}/orbital_mae"] = r.orbital_mae
        arrays[f"{k}/orbital_count"] = r.orbital_count
    with atomic_path(out_dir / "block_mae.npz") as tmp:
        np.savez(tmp, **arrays)
    return doc


def train(config: Config, resume: bool = False, extra_hooks: Sequence[H.Hook] = (),
          verbose: bool = True, force: bool = False) -> dict[str, Any]:
    """Train a model as ``config`` says and evaluate it; returns the ``results.json`` dict.

    Args:
        config: the full configuration (``data.path`` required).
        resume: continue from ``<out_dir>/last.pt`` when it exists (exactly where it stopped;
            from ``last.prev.pt`` when last.pt is damaged).
        force: replace a previous run in ``out_dir``; without it or ``resume``, a directory
            holding one is an error (:func:`tgkit.train.outputs.claim_run_dir`).
        extra_hooks: added to :func:`default_hooks` (e.g. a dashboard from ``tgkit.viz``).
        verbose: print one line per validation and the final metrics.
    """
    reuse_freed_memory()   # large temporaries of each step reuse freed memory (CPU, ~4 %)
    threads = torch.get_num_threads()
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    try:
        return _train(config, resume, extra_hooks, verbose, force)
    finally:
        torch.set_num_threads(threads)


def _train(config: Config, resume: bool, extra_hooks: Sequence[H.Hook], verbose: bool,
           force: bool = False) -> dict[str, Any]:
    t = config.train
    env, device = init_distributed(t.device)
    dtype = parse_dtype(t.dtype)
    out_dir = Path(t.out_dir)
    if env.is_main:
        claim_run_dir(out_dir, resume, force)
    # a damaged checkpoint is reported before anything is written into the run directory
    start = resume_checkpoint(out_dir / "last.pt") if resume else None
    with _undo_on_error(out_dir, env):
        if env.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        cache = prepare_cache(config, out_dir, env)
        ds = GraphDataset(cache, dtype=dtype)
        check_trainable(ds)
        split = make_split(config, ds)
    if env.is_main:
        save_config(config, out_dir / "config.yaml")
        split.to_json(out_dir / "split.json")
    seed_everything(t.seed)
    model = build_model(config, ds.basis, ds.spinful, dtype)
    if t.compile:
        model.compile_training()
    broadcast_parameters(model)
    hooks = [*default_hooks(config, out_dir, verbose and env.is_main), *extra_hooks]
    trainer = Trainer(model, ds.subset(split.train), ds.subset(split.val) if split.val else None,
                      t, hooks, env, device, config.data.num_workers)
    trainer.extra_state = {"config": config_to_dict(config), "basis": ds.basis.to_dict(),
                           "spinful": ds.spinful}
    trainer.fit(resume=start)
    barrier()
    best = out_dir / "best.pt"
    state = load_checkpoint(best, device) if best.exists() else trainer.state_dict()
    load_weights(model, inference_weights(state))
    results = evaluate_subsets(model, ds, split, device, env, trainer.local_batch)
    doc = {}
    if env.is_main:
        from tgkit.nn import save_model

        save_model(model.export_inference(), out_dir / "model.pt")
        bands = subset_band_errors(model, ds, subset_names(split), device)
        doc = write_results(out_dir, results, ds.basis, {"stop_reason": trainer.stop_reason,
                                                         "steps": trainer.global_step}, bands)
        if verbose:
            print_summary(doc)
    barrier()
    return doc


@contextlib.contextmanager
def _undo_on_error(out_dir: Path, env: DistEnv = SINGLE) -> Iterator[None]:
    """Setup of a run (cache, dataset, split): when it fails, remove what it created, so
    bad data or config leaves no run directory (or no new cache in an existing one)."""
    top = next((p for p in (out_dir, *out_dir.parents) if p.parent.exists()), out_dir)
    created = not out_dir.exists()
    cache = out_dir / "graphs.h5"
    had_cache = cache.exists()
    try:
        yield
    except BaseException:
        if env.is_main:
            if created:
                shutil.rmtree(top, ignore_errors=True)
            elif not had_cache:
                cache.unlink(missing_ok=True)
        raise


def print_summary(doc: dict[str, Any]) -> None:
    """Print MAE_all, MAE_sample^cha and MAE_block^cha of each subset (meV)."""
    for key, label in (("val", "validation"), ("test", "test (nt)"), ("test_t", "test (t)")):
        if key in doc:
            r = doc[key]
            print(f"{label:<12} MAE_all {r['mae_all']:8.3f} meV   MAE_sample^cha "
                  f"{r['mae_sample_cha']:8.3f} meV ({r['worst_sample']})   MAE_block^cha "
                  f"{r['mae_block_cha']:8.3f} meV ({r['worst_block']})   [{r['num_samples']} "
                  "structures]", flush=True)
            if "band_max_meV" in r:
                print(f"{'':<12} band error within E_F +- 2 eV: max {r['band_max_meV']:.1f} meV, "
                      f"mean {r['band_mean_meV']:.1f} meV", flush=True)


def _load_for_eval(path: Path, device: torch.device):
    """A model and its training checkpoint (or None) from a run dir, ``*.pt`` checkpoint,
    ``model.pt`` or the name of a shipped model (:mod:`tgkit.models`)."""
    from tgkit.models import resolve
    from tgkit.nn import load_model

    path = resolve(path)
    if path.is_dir():
        path = path / ("best.pt" if (path / "best.pt").exists() else "model.pt")
    if not path.is_file():
        raise TgkitError(f"{path}: no such checkpoint or run directory")
    head = load_torch(path, "cpu")
    if not (isinstance(head, dict) and "trainer" in head):
        return load_model(path, device), None
    from tgkit.config import config_from_dict

    state = load_checkpoint(path, device)
    with damaged_file_errors(path, "checkpoint"):
        cfg = config_from_dict(state["config"])
        model = build_model(cfg, OrbitalBasis.from_dict(state["basis"]), state["spinful"],
                            parse_dtype(cfg.train.dtype))
        load_weights(model, inference_weights(state))
    return model.to(device), cfg


def evaluate_run(model_path: str | Path, data: str | Path | None = None, device: str = "auto",
                 out: str | Path | None = None) -> dict[str, Any]:
    """``tgkit eval``: metrics of a trained model.

    Args:
        model_path: a run directory, a training checkpoint or a ``model.pt``.
        data: a DeepH tree or cache to evaluate on as a whole; default: the run's own split.
        device: as ``train.device``.
        out: write results.json and block_mae.npz there (default: nowhere).
    """
    _, dev = init_distributed(device)
    model, cfg = _load_for_eval(Path(model_path), dev)
    dtype = next(model.parameters()).dtype
    if data is None:
        if cfg is None:
            raise TgkitError(f"{model_path}: a model.pt has no data settings; pass --data")
        run_dir = Path(model_path) if Path(model_path).is_dir() else Path(model_path).parent
        own = run_dir / "graphs.h5"  # the run's own cache, wherever the run directory is now
        cache = own if own.exists() else prepare_cache(cfg, Path(cfg.train.out_dir))
        ds = GraphDataset(cache, dtype=dtype)
        split_file = run_dir / "split.json"
        split = Split.from_json(split_file) if split_file.exists() else make_split(cfg, ds)
        return _evaluate(model, ds, split, dev, out)
    path = Path(data)
    if not path.is_dir():
        return _evaluate_cache(model, path, dtype, dev, out)
    tmp = Path(tempfile.mkdtemp(prefix="tgkit-eval-"))
    try:  # the temporary cache goes, whether building or evaluating it fails or not
        cache = build_cache(path, tmp / "graphs.h5", basis=model.basis, progress=False)
        return _evaluate_cache(model, cache, dtype, dev, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _evaluate_cache(model, cache: Path, dtype: torch.dtype, dev: torch.device,
                    out: str | Path | None) -> dict[str, Any]:
    """Metrics of every structure of ``cache`` (twisted ones as the "t" test subset)."""
    ds = GraphDataset(cache, dtype=dtype)
    check_trainable(ds)
    tw = tuple(n for n, t in ds.twisted.items() if t)
    split = Split((), (), tuple(n for n in ds.all_names if n not in tw), tw)
    return _evaluate(model, ds, split, dev, out)


def _evaluate(model, ds: GraphDataset, split: Split, dev: torch.device,
              out: str | Path | None) -> dict[str, Any]:
    results = evaluate_subsets(model, ds, split, dev)
    bands = subset_band_errors(model, ds, subset_names(split), dev)
    if out is None:
        return results_doc(results, bands)
    Path(out).mkdir(parents=True, exist_ok=True)
    return write_results(Path(out), results, model.basis, {}, bands)


def load_inference_model(model_path: str | Path, device: str = "auto"):
    """``(model, device)``: a run directory, checkpoint or ``model.pt`` ready for inference."""
    _, dev = init_distributed(device)
    model, _ = _load_for_eval(Path(model_path), dev)
    model = model.export_inference() if hasattr(model, "export_inference") else model.eval()
    return model, dev


def predict_one(model_path: str | Path, structure_dir: str | Path, device: str = "auto",
                cutoff: float | None = None, chunk_edges: int | None = None):
    """Read one DeepH structure directory and predict its blocks, in memory.

    Returns:
        ``(structure, blocks)``: the structure as read (DFT blocks, if any, untouched) and the
        predicted ``{(Rx, Ry, Rz, i, j): block}`` (OpenMX order, eV). Arguments as
        :func:`predict`.
    """
    found = find_structures(structure_dir)
    if len(found) != 1:
        raise TgkitError(f"{structure_dir}: holds {len(found)} structures; pass one directory")
    model, dev = load_inference_model(model_path, device)
    s = read_structure(found[0], require_hamiltonian=False)
    return s, predict_structure(model, s, cutoff=cutoff, device=dev, chunk_edges=chunk_edges)


def predict(model_path: str | Path, data: str | Path, out: str | Path, device: str = "auto",
            cutoff: float | None = None, chunk_edges: int | None = None,
            force: bool = False) -> list[Path]:
    """``tgkit predict``: write ``hamiltonians_pred.h5`` (DeepH format, OpenMX order, eV) for
    every structure under ``data`` into ``out/<structure>/`` (the other DeepH files are copied
    so that ``out`` is a complete DeepH tree; ``out == data`` only adds the prediction files).

    Args:
        model_path: a run directory, training checkpoint or ``model.pt``.
        data: a DeepH structure directory or tree.
        out: output root.
        cutoff: edges within this radius (Angstrom) instead of the hamiltonians.h5 keys, for
            structures without DFT Hamiltonians.
        chunk_edges: evaluate this many edges at a time (``predict_chunked``); 0: all at
            once; None: ``predict_structure``'s default (4096 on a CPU, all at once on a GPU).
        force: overwrite existing ``hamiltonians_pred.h5`` files (otherwise an error).
    """
    root, out = Path(data), Path(out)
    dirs = find_structures(root)
    dests = [out / (src.relative_to(root) if src != root else Path(src.name)) for src in dirs]
    refuse_overwrite([d / PRED_FILE for d in dests], force)
    model, dev = load_inference_model(model_path, device)
    made: list[Path] = []  # what this call created, removed again if a later structure fails
    try:
        for src, dest in zip(dirs, dests, strict=True):
            s = read_structure(src, require_hamiltonian=False)
            s.hamiltonians = predict_structure(model, s, cutoff=cutoff, device=dev,
                                               chunk_edges=chunk_edges)
            new_dir = _first_missing(dest)
            had_file = (dest / PRED_FILE).exists()
            write_structure(s, dest, hamiltonian_file=PRED_FILE)
            if new_dir is not None:
                made.append(new_dir)
            elif not had_file:
                made.append(dest / PRED_FILE)
    except BaseException:
        for p in reversed(made):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        raise
    return [d / PRED_FILE for d in dests]


PRED_FILE = "hamiltonians_pred.h5"


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet (None: it exists)."""
    if path.exists():
        return None
    return next(p for p in (path, *path.parents) if p.parent.exists())
