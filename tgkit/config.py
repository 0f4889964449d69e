"""Configuration: frozen dataclasses with documented defaults, and YAML load/save.

A YAML file has one mapping per section (``model:``, ``tracegrad:``, ...); every key of a
section is a field of that section's dataclass. Unknown sections or keys and impossible values
raise :class:`tgkit.errors.ConfigError` naming the section and key. New sections (data, train)
are added by writing a dataclass, listing it in :data:`SECTIONS` and adding it to
:class:`Config`.

Example::

    model:
      irreps_hidden: 64x0e+32x1o+16x2e+8x3o+8x4e
      num_blocks: 3
    tracegrad:
      setup: tracegrad
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from e3nn import o3

from tgkit.errors import ConfigError
from tgkit.io_utils import write_text

SETUPS = ("baseline", "trace", "grad", "tracegrad")


def _parse_irreps(section: str, key: str, value: str) -> o3.Irreps:
    try:
        return o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as exc:
        raise ConfigError(f"{section}.{key}: cannot parse irreps {value!r} ({exc})") from None


def _check(cond: bool, section: str, key: str, problem: str) -> None:
    if not cond:
        raise ConfigError(f"{section}.{key}: {problem}")


@dataclass(frozen=True)
class ModelConfig:
    """The DeepH-E3-style equivariant encoder. Defaults are DeepH-E3's ``train_default.ini``.

    Attributes:
        irreps_embed: scalar irreps of the initial node (species) and edge (radial) embeddings.
        irreps_hidden: irreps of the hidden node and edge features of every block.
        num_blocks: K, the number of encoder modules (node update + edge update each).
        cutoff: radius in Angstrom where the radial basis goes smoothly to zero. It must cover
            the longest edge of the data (DeepH-E3 takes edges from the DFT keys).
        lmax: highest degree of the edge spherical harmonics.
        num_radial: Gaussians of the radial basis.
        radial_hidden: width of the two hidden layers of the radial MLP (tensor-product weights).
        avg_num_neighbors: messages are summed and divided by sqrt(this), which keeps node
            features O(1) for typical coordination (graphene at 7.2 A has ~40 neighbours).
        use_edge_frame: run the convolutions' tensor products in each edge's frame
            (:mod:`tgkit.nn.edge_frame`); false: e3nn's ``TensorProduct`` with the full
            harmonics, the same predictions to round-off and several times slower (the
            reference the tests compare against). Same parameters either way.
    """

    irreps_embed: str = "64x0e"
    irreps_hidden: str = "64x0e+32x1o+16x2e+8x3o+8x4e"
    num_blocks: int = 3
    cutoff: float = 7.2
    lmax: int = 4
    num_radial: int = 128
    radial_hidden: int = 64
    avg_num_neighbors: float = 40.0
    use_edge_frame: bool = True

    def __post_init__(self) -> None:
        emb = _parse_irreps("model", "irreps_embed", self.irreps_embed)
        hid = _parse_irreps("model", "irreps_hidden", self.irreps_hidden)
        _check(len(emb) > 0 and all(ir.l == 0 and ir.p == 1 for _, ir in emb), "model",
               "irreps_embed", f"must be scalars (like 64x0e), got {self.irreps_embed!r}")
        _check(any(ir == o3.Irrep("0e") and mul > 0 for mul, ir in hid), "model",
               "irreps_hidden", "needs 0e channels (gates and the invariant branch use them)")
        _check(all(mul > 0 for mul, _ in hid), "model", "irreps_hidden", "zero multiplicity")
        _check(self.num_blocks >= 1, "model", "num_blocks", f"must be >= 1, got {self.num_blocks}")
        _check(self.cutoff > 0, "model", "cutoff", f"must be > 0, got {self.cutoff}")
        _check(0 <= self.lmax <= 8, "model", "lmax", f"must be in 0..8, got {self.lmax}")
        _check(hid.lmax <= 8, "model", "irreps_hidden", "degrees above 8 are not supported")
        _check(self.num_radial >= 2, "model", "num_radial", "needs at least 2 Gaussians")
        _check(self.radial_hidden >= 1, "model", "radial_hidden", "must be >= 1")
        _check(self.avg_num_neighbors > 0, "model", "avg_num_neighbors", "must be > 0")


@dataclass(frozen=True)
class TraceGradConfig:
    """Trace label and Grad operator (paper sections 4 and 8).

    Attributes:
        setup: ``baseline`` (encoder only), ``trace`` (invariant branch on the last edge
            features plus T decoder, no v added), ``grad`` (o = f + v in every module, on node
            and edge features, no T decoder) or ``tracegrad`` (both).
        num_invariants: width of u = CGDecomp_ext(f (x) f, 0, W) (paper eq. 9).
        hidden: width of the hidden layer of s_nonlin (Linear, LayerNorm, SiLU, Linear).
        num_z: width of the invariant feature z = s_nonlin(u); v = d(sum z)/df.
        decoder_hidden: width of the hidden layer of the shallow T decoder.
        grad_where: which encoder features get o = f + v: ``both`` (node and edge features of
            every module, the paper's), ``node``, ``edge``, or ``last`` (node and edge
            features of the last module only).
        grad_init: ``default`` (PyTorch's init of s_nonlin) or ``zero`` (its last layer starts
            at zero, so v = 0 and the model starts as the baseline: a residual that must earn
            its contribution).
        grad_norm: divide v by ``1 + rms(v)`` (RMS over the feature dimension of each item;
            invariant, so equivariance holds), which bounds the update's size.
    """

    setup: str = "tracegrad"
    num_invariants: int = 32
    hidden: int = 64
    num_z: int = 32
    decoder_hidden: int = 64
    grad_where: str = "both"
    grad_init: str = "default"
    grad_norm: bool = False

    def __post_init__(self) -> None:
        _check(self.setup in SETUPS, "tracegrad", "setup",
               f"must be one of {', '.join(SETUPS)}, got {self.setup!r}")
        for name in ("num_invariants", "hidden", "num_z", "decoder_hidden"):
            _check(getattr(self, name) >= 1, "tracegrad", name, "must be >= 1")
        _check(self.grad_where in ("both", "node", "edge", "last"), "tracegrad", "grad_where",
               f"must be both, node, edge or last, got {self.grad_where!r}")
        _check(self.grad_init in ("default", "zero"), "tracegrad", "grad_init",
               f"must be default or zero, got {self.grad_init!r}")

    @property
    def use_trace(self) -> bool:
        """Whether the T decoder exists (and the trainer adds loss_T)."""
        return self.setup in ("trace", "tracegrad")

    @property
    def use_grad(self) -> bool:
        """Whether o = f + v is applied in every encoder module."""
        return self.setup in ("grad", "tracegrad")


@dataclass(frozen=True)
class DataConfig:
    """Where the structures come from and how they are split.

    Attributes:
        path: a DeepH structure directory or tree (preprocessed on the fly into ``cache``), or
            a graph cache ``.h5`` written by ``tgkit preprocess``.
        cache: where to write the cache when ``path`` is a directory (default:
            ``<train.out_dir>/graphs.h5``).
        split: ``random`` (fractions below, drawn by ``split_seed``), a paper manifest name
            (``MG``, ``MM``, ``BG``, ``BB``, ``BT``, ``BS``: the official sizes), or the path of a
            split JSON file (keys ``train``, ``val``, ``test``, ``test_twisted``: name lists).
            Twisted structures (``info.json`` ``"twisted": true``) only ever go to the test set.
        train_fraction: share of the non-twisted structures used for training (``random``).
        val_fraction: share used for validation; the rest is the test set.
        split_seed: seed of the random draw (DeepH-E3 and the paper use 42).
        num_workers: DataLoader worker processes (0 reads in the training process).
        skip_bad: leave out structure directories that fail validation (listed, with their
            count, on stderr) instead of stopping at the first one (the default).
    """

    path: str = ""
    cache: str = ""
    split: str = "random"
    train_fraction: float = 0.6
    val_fraction: float = 0.2
    split_seed: int = 42
    num_workers: int = 0
    skip_bad: bool = False

    def __post_init__(self) -> None:
        _check(0 < self.train_fraction <= 1, "data", "train_fraction", "must be in (0, 1]")
        _check(0 <= self.val_fraction < 1, "data", "val_fraction", "must be in [0, 1)")
        _check(self.train_fraction + self.val_fraction <= 1 + 1e-9, "data", "val_fraction",
               "train_fraction + val_fraction must be <= 1")
        _check(self.num_workers >= 0, "data", "num_workers", "must be >= 0")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, devices, checkpoints and logging. LR defaults follow DeepH-E3.

    Attributes:
        out_dir: run directory (checkpoints, metrics.jsonl/csv, results); see tgkit.train.
        seed: seeds the model initialisation and the batch order (same seed, same run).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``. Under torchrun,
            ``cuda``/``auto`` take the GPU of the local rank.
        dtype: ``float32`` or ``float64`` (complex SOC blocks follow). No mixed precision: half
            precision's 3 significant digits cannot resolve sub-meV errors on eV-sized blocks.
        epochs: maximum number of passes over the training set.
        max_steps: stop after this many optimizer steps (0: no limit).
        batch_size: structures per optimizer step, over all processes (a multiple of the number
            of processes under torchrun).
        lr: Adam learning rate (the peak rate of the ``cosine`` schedule).
        lr_schedule: ``plateau`` (DeepH-E3's: ReduceLROnPlateau on the smoothed validation
            loss, stops when the rate falls below ``min_lr``) or ``cosine`` (linear warmup over
            ``warmup_steps``, then a half cosine from ``lr`` down to ``min_lr`` at the last step;
            the budget is ``max_steps``, or ``epochs`` times the steps per epoch). A cosine run
            ends on a plateau by construction: the rate is ~``min_lr`` for its last steps.
        warmup_steps: steps of linear warmup from ``lr / 100`` (``cosine`` only).
        ema_decay: exponential moving average of the weights (0: off). Validation, ``best.pt``'s
            inference weights and ``model.pt`` use the average; training continues on the raw
            weights. The decay ramps up as ``min(ema_decay, (1 + step) / (10 + step))``.
        lr_factor, lr_patience, lr_cooldown, lr_threshold: ReduceLROnPlateau on the smoothed
            validation loss (patience and cooldown count validations; relative threshold).
        lr_smoothing: alpha of the exponential smoothing of the validation loss fed to the
            scheduler (1: no smoothing; DeepH-E3 uses 0.1).
        min_lr: ``plateau``: training stops when the learning rate falls below this;
            ``cosine``: the final learning rate.
        trace_lambda: lambda of the paper's eq. 11, mu = lambda * no_grad(loss_Q / loss_T).
        grad_clip: clip the gradient norm to this (0: no clipping).
        val_every: validate every this many epochs.
        checkpoint_every: also save ``last.pt`` every this many steps (0: after validations).
        early_stopping: stop after this many validations without improvement (0: off).
        monitor: the validation metric that picks ``best.pt`` (hence ``model.pt`` and the
            reported metrics) and that early stopping watches: ``val_loss`` (the MSE of H,
            DeepH-E3's choice), ``val_mae_all`` (meV), ``val_band_max`` or ``val_band_mean``
            (meV; need ``band_error_every``). The plateau schedule always watches the loss.
        band_error_every: compute the band error (max and mean within E_F +- 2 eV, meV) of the
            validation structures every this many validations (0: off); logged in
            metrics.jsonl as ``val_band_max`` / ``val_band_mean``. Needs the source DeepH
            directories (overlaps, Fermi level), so not for a cache passed as ``data.path``
            whose sources moved.
        log_every: log the training loss every this many steps (reading it syncs the GPU).
        progress: show a tqdm progress bar.
        tensorboard: write TensorBoard scalars when the tensorboard package is installed.
        num_threads: CPU threads of torch during the run (0: leave torch's default). The
            tensors of small models are too small for intra-op threads to pay off; on a busy
            machine, 2 OpenMP threads measured up to 15x slower per step than 1.
        compile: run the training step's edge-frame products and TraceGrad modules through
            ``torch.compile`` (:meth:`tgkit.nn.HamiltonianModel.compile_training`; validation
            stays eager). Steps measured 1.05-1.07x (baseline) and 1.11-1.12x (+TraceGrad)
            faster on a 2-core CPU, after 4-35 s of compiling (inductor keeps an on-disk
            cache; ``bench/bench_compile.py``, ``bench/results/compile_1206.txt``), so it pays
            off for long runs only; falls back to eager, with a warning, where compiling fails.
    """

    out_dir: str = "runs/train"
    seed: int = 42
    device: str = "auto"
    dtype: str = "float32"
    epochs: int = 100
    max_steps: int = 0
    batch_size: int = 1
    lr: float = 0.002
    lr_schedule: str = "plateau"
    warmup_steps: int = 0
    ema_decay: float = 0.0
    lr_factor: float = 0.5
    lr_patience: int = 120
    lr_cooldown: int = 40
    lr_threshold: float = 0.05
    lr_smoothing: float = 0.1
    min_lr: float = 3e-5
    trace_lambda: float = 0.3
    grad_clip: float = 0.0
    val_every: int = 1
    checkpoint_every: int = 0
    early_stopping: int = 0
    monitor: str = "val_loss"
    band_error_every: int = 1
    log_every: int = 10
    progress: bool = True
    tensorboard: bool = True
    num_threads: int = 0
    compile: bool = False

    def __post_init__(self) -> None:
        _check(self.dtype in ("float32", "float64"), "train", "dtype",
               f"must be float32 or float64, got {self.dtype!r}")
        _check(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
               "train", "device", f"must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        for name in ("epochs", "batch_size", "val_every", "log_every"):
            _check(getattr(self, name) >= 1, "train", name, "must be >= 1")
        _check(self.lr_schedule in ("plateau", "cosine"), "train", "lr_schedule",
               f"must be plateau or cosine, got {self.lr_schedule!r}")
        _check(0 <= self.ema_decay < 1, "train", "ema_decay", "must be in [0, 1)")
        monitors = ("val_loss", "val_mae_all", "val_band_max", "val_band_mean")
        _check(self.monitor in monitors, "train", "monitor",
               f"must be one of {', '.join(monitors)}, got {self.monitor!r}")
        _check(self.monitor in monitors[:2] or self.band_error_every > 0, "train", "monitor",
               f"{self.monitor} needs band_error_every > 0")
        for name in ("max_steps", "lr_patience", "lr_cooldown", "checkpoint_every",
                     "early_stopping", "num_threads", "warmup_steps", "band_error_every"):
            _check(getattr(self, name) >= 0, "train", name, "must be >= 0")
        _check(self.lr > 0, "train", "lr", "must be > 0")
        _check(0 < self.lr_factor < 1, "train", "lr_factor", "must be in (0, 1)")
        _check(0 < self.lr_smoothing <= 1, "train", "lr_smoothing", "must be in (0, 1]")
        _check(self.min_lr >= 0, "train", "min_lr", "must be >= 0")
        _check(self.trace_lambda >= 0, "train", "trace_lambda", "must be >= 0")
        _check(self.grad_clip >= 0, "train", "grad_clip", "must be >= 0")


@dataclass(frozen=True)
class Config:
    """All sections of a tgkit configuration file."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tracegrad: TraceGradConfig = field(default_factory=TraceGradConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# section name -> dataclass (a new section goes here and into Config)
SECTIONS: dict[str, type] = {
    "model": ModelConfig, "tracegrad": TraceGradConfig, "data": DataConfig, "train": TrainConfig,
}


def section_from_dict(cls: type, data: Mapping[str, Any], section: str) -> Any:
    """Build one section's dataclass, with a ConfigError for unknown keys or bad types."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{section}: expected a mapping of settings, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"known keys: {', '.join(known)}")
    values = {}
    for key, value in data.items():
        default = known[key].default
        if default is not dataclasses.MISSING and default is not None:
            kind = type(default)
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"{section}.{key}: expected {kind.__name__}, got {value!r}")
            if kind is float and not math.isfinite(value):  # YAML .inf / .nan
                raise ConfigError(f"{section}.{key}: must be a finite number, got {value!r}")
        values[key] = value
    return cls(**values)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from nested dicts (missing sections take their defaults)."""
    if not isinstance(data, Mapping):
        raise ConfigError("config: expected a mapping of sections")
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"config: unknown section(s) {', '.join(map(str, unknown))}; "
                          f"known sections: {', '.join(SECTIONS)}")
    return Config(**{k: section_from_dict(SECTIONS[k], v or {}, k) for k, v in data.items()})


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Nested plain dicts of every section (YAML- and JSON-safe)."""
    return {f.name: dataclasses.asdict(getattr(config, f.name)) for f in fields(config)}


def load_config(path: str | Path) -> Config:
    """Read a YAML config file; errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where} ({problem})") from None
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(config: Config, path: str | Path) -> None:
    """Write a config as YAML (sections in declaration order)."""
    write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
