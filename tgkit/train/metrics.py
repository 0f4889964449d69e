"""The paper's accuracy metrics (section 6), in meV.

* ``MAE_all``: mean absolute error over all existing elements of all blocks of all samples.
* ``MAE_sample``: the MAE of each sample; ``MAE_sample^cha`` is the MAE on the sample where
  the *baseline* is worst (:func:`challenge`; a single run reports its own worst sample).
* ``MAE_block``: for each basic block type, i.e. element pair x shell pair (``"C-C s1-p2"``,
  shells of the universal basis: ``p2`` is the second p shell), the MAE over all its elements in
  all samples; ``MAE_block^cha`` is the MAE on the block type where the baseline is worst.
* Orbital-by-orbital MAE per element pair, ``(S, S, B, B)`` arrays for heatmaps.

SOC (complex, spin-major ``(2B, 2B)``) blocks: the error of an element is the **complex
modulus** ``|H_pred - H_DFT|`` (DeepH-E3's analysis took the real part only). Orbital and
block statistics pool the four spin channels of each orbital pair.

Accumulation stays on the model's device without host synchronisation; :meth:`reduce` sums
the statistics over processes and :meth:`result` copies them to the host once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tgkit import keys as K
from tgkit.irreps import OrbitalBasis

MEV = 1000.0  # blocks are in eV
def block_types(basis: OrbitalBasis) -> list[tuple[int, int, int, int, str]]:
    """Every basic block type that exists: (species_i, species_j, shell_i, shell_j, label)."""
    omask = basis.orbital_mask().numpy()
    out = []
    for si, zi in enumerate(basis.species):
        for sj, zj in enumerate(basis.species):
            for a, sa in enumerate(basis.shells):
                oa = basis.shell_offset[sa]
                if not omask[si, oa]:
                    continue
                for b, sb in enumerate(basis.shells):
                    ob = basis.shell_offset[sb]
                    if not omask[sj, ob]:
                        continue
                    out.append((si, sj, a, b, basis.block_label(zi, zj, sa, sb)))
    return out


@dataclass
class EvalResult:
    """Metrics of one evaluated set (host values, meV unless stated).

    Attributes:
        mae_all: MAE over all elements.
        loss_q: MSE of the H blocks (eV^2), the ``loss_Q`` of the paper.
        loss_t: MSE of the trace labels (eV^4); NaN when the model has no trace branch.
        mae_sample: ``{structure name: MAE}``.
        mae_block: ``{block type label: MAE}`` (see :func:`block_types`).
        orbital_mae: (S, S, B, B) orbital-by-orbital MAE per element pair (NaN: no element).
        orbital_count: (S, S, B, B) number of elements behind each entry.
        species: atomic numbers of the S species.
    """

    mae_all: float
    loss_q: float
    loss_t: float
    mae_sample: dict[str, float]
    mae_block: dict[str, float]
    orbital_mae: np.ndarray
    orbital_count: np.ndarray
    species: tuple[int, ...] = field(default_factory=tuple)

    @property
    def worst_sample(self) -> str:
        return max(self.mae_sample, key=self.mae_sample.__getitem__)

    @property
    def worst_block(self) -> str:
        return max(self.mae_block, key=self.mae_block.__getitem__)

    def summary(self, sample: str | None = None, block: str | None = None) -> dict[str, float]:
        """MAE_all, MAE_sample^cha and MAE_block^cha; the challenge sample/block default to
        this run's own worst (pass the baseline's for the paper's definition)."""
        return challenge(self, sample, block)

    def to_json(self) -> dict[str, Any]:
        return {
            "mae_all": self.mae_all, "loss_q": self.loss_q, "loss_t": self.loss_t,
            "mae_sample": self.mae_sample, "mae_block": self.mae_block,
            "species": list(self.species),
        }


def challenge(result: EvalResult, sample: str | None = None, block: str | None = None
              ) -> dict[str, float]:
    """``{"mae_all", "mae_sample_cha", "mae_block_cha"}`` on the given challenge sample/block."""
    nan = float("nan")
    sample = sample if sample is not None else (result.worst_sample if result.mae_sample else None)
    block = block if block is not None else (result.worst_block if result.mae_block else None)
    return {
        "mae_all": result.mae_all,
        "mae_sample_cha": result.mae_sample.get(sample, nan) if sample else nan,
        "mae_block_cha": result.mae_block.get(block, nan) if block else nan,
    }


class MetricAccumulator:
    """Sums of absolute and squared errors, per sample and per (element pair, orbital pair).

    Args:
        basis: the dataset's universal basis.
        names: structure names indexed by ``STRUCTURE_ID`` (``GraphDataset.all_names``).
        device: where the sums live (the model's device).
    """

    def __init__(self, basis: OrbitalBasis, names: Sequence[str], device: torch.device | str = "cpu"
                 ) -> None:
        self.basis = basis
        self.names = list(names)
        ns, b = len(basis.species), basis.dim
        z = dict(dtype=torch.float64, device=device)
        self.orb_sum = torch.zeros(ns * ns, b, b, **z)
        self.orb_cnt = torch.zeros(ns * ns, b, b, **z)
        self.sample_sum = torch.zeros(len(self.names), **z)
        self.sample_cnt = torch.zeros(len(self.names), **z)
        self.sq = torch.zeros(4, **z)  # sum sq err Q, count Q, sum sq err T, count T
        self.has_trace = False

    @torch.no_grad()
    def update(self, graph: Mapping[str, torch.Tensor], out: Mapping[str, torch.Tensor]) -> None:
        """Add one batch (all tensors on the accumulator's device)."""
        b, ns = self.basis.dim, len(self.basis.species)
        diff = out[K.H_PRED] - graph[K.HAMILTONIAN]
        mask = out[K.H_MASK]
        err = torch.where(mask, diff.abs(), 0).to(torch.float64)  # complex: modulus
        sq = err.square()
        cnt = mask.to(torch.float64)
        e = err.shape[0]
        if err.shape[-1] == 2 * b:  # fold the spin channels onto orbital pairs
            err = err.view(e, 2, b, 2, b).sum((1, 3))
            cnt = cnt.view(e, 2, b, 2, b).sum((1, 3))
        src, dst = graph[K.EDGE_INDEX]
        spc = graph[K.SPECIES]
        pair = spc[src] * ns + spc[dst]
        self.orb_sum.index_add_(0, pair, err)
        self.orb_cnt.index_add_(0, pair, cnt)
        sid = graph[K.STRUCTURE_ID][graph[K.BATCH][src]]
        self.sample_sum.index_add_(0, sid, err.sum((1, 2)))
        self.sample_cnt.index_add_(0, sid, cnt.sum((1, 2)))
        stats = [sq.sum(), cnt.sum()]
        if K.T_PRED in out:
            self.has_trace = True
            dt = (out[K.T_PRED] - out[K.T_LABEL]).to(torch.float64)
            bm = out[K.BLOCK_MASK]
            stats += [torch.where(bm, dt.square(), 0).sum(), bm.sum().to(torch.float64)]
        else:
            stats += [self.sq.new_zeros(()), self.sq.new_zeros(())]
        self.sq += torch.stack(stats)

    def reduce(self, reducer: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Sum every statistic over processes (in one flat collective)."""
        parts = [self.orb_sum, self.orb_cnt, self.sample_sum, self.sample_cnt, self.sq]
        flat = reducer(torch.cat([p.reshape(-1) for p in parts]))
        offset = 0
        for p in parts:
            p.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def result(self) -> EvalResult:
        """Copy the sums to the host and compute the metrics."""
        ns, b = len(self.basis.species), self.basis.dim
        osum = self.orb_sum.cpu().numpy().reshape(ns, ns, b, b).copy()  # no aliasing on CPU
        ocnt = self.orb_cnt.cpu().numpy().reshape(ns, ns, b, b).copy()
        ssum, scnt = self.sample_sum.cpu().numpy(), self.sample_cnt.cpu().numpy()
        sq = self.sq.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            orbital = np.where(ocnt > 0, osum / ocnt, np.nan) * MEV
        total_cnt = ocnt.sum()
        mae_all = float(osum.sum() / total_cnt * MEV) if total_cnt else math.nan
        samples = {self.names[k]: float(ssum[k] / scnt[k] * MEV)
                   for k in range(len(self.names)) if scnt[k] > 0}
        blocks = {}
        for si, sj, a, c, label in block_types(self.basis):
            sa, sc = self.basis.shells[a], self.basis.shells[c]
            ra = slice(self.basis.shell_offset[sa], self.basis.shell_offset[sa] + sa.dim)
            rc = slice(self.basis.shell_offset[sc], self.basis.shell_offset[sc] + sc.dim)
            n = ocnt[si, sj, ra, rc].sum()
            if n > 0:
                blocks[label] = float(osum[si, sj, ra, rc].sum() / n * MEV)
        return EvalResult(
            mae_all=mae_all,
            loss_q=float(sq[0] / sq[1]) if sq[1] else math.nan,
            loss_t=float(sq[2] / sq[3]) if self.has_trace and sq[3] else math.nan,
            mae_sample=samples, mae_block=blocks, orbital_mae=orbital, orbital_count=ocnt,
            species=tuple(self.basis.species),
        )
