"""Error and trace-label tables of predicted Hamiltonians, the data behind the dashboards.

A *prediction* is ``{(Rx, Ry, Rz, i, j): block}`` in file (OpenMX) order, as returned by a
predictor ``Structure -> blocks`` (see :mod:`tgkit.physics.equivariance`). Tables are plain
numpy arrays (no pandas) so that they are cheap to filter in a widget callback.

Edge types: ``onsite`` (i = j, R = 0), ``intralayer`` and ``interlayer`` (layers are clusters
of atoms along z, :func:`tgkit.data.structures.layer_index` with its one documented gap).
A structure is *twisted* when its ``info['twist_angle']`` is above 0.01 deg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from tgkit.data.deeph import Key, Structure
from tgkit.data.structures import LAYER_GAP, layer_index
from tgkit.errors import TgkitError
from tgkit.irreps import OrbitalBasis, atom_shells, orbital_labels, shell_dims, shell_slices
from tgkit.nn.tracegrad import block_traces

EDGE_TYPES = ("onsite", "intralayer", "interlayer")
Pair = tuple[int, int]


def structure_layers(structure: Structure, gap: float = LAYER_GAP) -> np.ndarray:
    """(N,) layer index of each atom (``info['layer']`` if given, else clustering in z)."""
    if "layer" in structure.info:
        return np.asarray(structure.info["layer"], dtype=int)
    return layer_index(structure.positions[:, 2], gap)


def is_twisted(structure: Structure) -> bool:
    """Whether the structure is a twisted bilayer (``info['twist_angle']`` > 0.01 degree)."""
    return abs(float(structure.info.get("twist_angle", 0.0) or 0.0)) > 0.01


def edge_type(key: Key, layers: np.ndarray) -> str:
    """``onsite``, ``intralayer`` or ``interlayer`` for a block key."""
    if key[3] == key[4] and key[:3] == (0, 0, 0):
        return "onsite"
    return "intralayer" if layers[key[3]] == layers[key[4]] else "interlayer"


@dataclass
class ErrorTable:
    """Errors of one set of predictions over several structures.

    Attributes:
        abs_sum: ``{(structure, Z_i, Z_j, edge_type): (n_i, n_j)}`` summed |H_pred - H_true|
            per orbital element, eV (spinful: (2n_i, 2n_j)).
        counts: same keys, number of blocks summed.
        labels: ``{Z: orbital labels}`` in file order.
        twisted: ``{structure: bool}``.
        trace: per shell-pair block (flat arrays of equal length): ``structure`` (str),
            ``z_i``, ``z_j``, ``shell_i``, ``shell_j`` (int), ``block`` (str label such as
            ``C-C s1-p2``, :meth:`tgkit.irreps.OrbitalBasis.block_label`), ``edge_type`` (str),
            ``dist`` (A), ``t_true``, ``t_pred`` (||H_b||_F^2, eV^2, from
            :func:`tgkit.nn.tracegrad.block_traces`), ``mae`` (mean |dH| over the block, eV).
    """

    abs_sum: dict[tuple[str, int, int, str], np.ndarray] = field(default_factory=dict)
    counts: dict[tuple[str, int, int, str], int] = field(default_factory=dict)
    labels: dict[int, list[str]] = field(default_factory=dict)
    twisted: dict[str, bool] = field(default_factory=dict)
    trace: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def structures(self) -> list[str]:
        return sorted(self.twisted)

    @property
    def pairs(self) -> list[Pair]:
        return sorted({(k[1], k[2]) for k in self.abs_sum})

    def select(
        self, pair: Pair, structures: Sequence[str] | None = None,
        edge_types: Sequence[str] = EDGE_TYPES, twisted: bool | None = None,
    ) -> list[tuple[str, int, int, str]]:
        """Keys of :attr:`abs_sum` matching an element pair and the filters."""
        out = []
        for key in self.abs_sum:
            name, zi, zj, et = key
            if (zi, zj) != tuple(pair) or et not in edge_types:
                continue
            if structures is not None and name not in structures:
                continue
            if twisted is not None and self.twisted[name] != twisted:
                continue
            out.append(key)
        return out

    def mae_matrix(self, pair: Pair, **filters) -> np.ndarray | None:
        """(n_i, n_j) orbital-by-orbital MAE in eV over the selected blocks, or None if none."""
        keys = self.select(pair, **filters)
        if not keys:
            return None
        return sum(self.abs_sum[k] for k in keys) / sum(self.counts[k] for k in keys)

    def worst_structures(
        self, pair: Pair, row: int, col: int, top: int = 5, **filters
    ) -> list[tuple[str, float]]:
        """Structures with the largest MAE of orbital element (row, col), eV, worst first."""
        per: dict[str, list[float]] = {}
        for k in self.select(pair, **filters):
            acc = per.setdefault(k[0], [0.0, 0])
            acc[0] += float(self.abs_sum[k][row, col])
            acc[1] += self.counts[k]
        ranked = sorted(((n, s / c) for n, (s, c) in per.items()), key=lambda t: -t[1])
        return ranked[:top]


def error_table(
    structures: Sequence[Structure], predictions: Mapping[str, Mapping[Key, np.ndarray]]
) -> ErrorTable:
    """Build an :class:`ErrorTable` from true structures and predictions keyed by name.

    Only keys present in both the structure and its prediction are counted.

    Raises:
        TgkitError: a structure has no prediction, or none of its keys were predicted.
    """
    table = ErrorTable()
    rows: dict[str, list] = {k: [] for k in (
        "structure", "z_i", "z_j", "shell_i", "shell_j", "block", "edge_type", "dist",
        "t_true", "t_pred", "mae")}
    for st in structures:
        if st.name not in predictions:
            raise TgkitError(f"no prediction for structure {st.name!r}")
        pred = predictions[st.name]
        keys = sorted(set(st.hamiltonians) & set(pred))
        if not keys:
            raise TgkitError(f"{st.name}: the prediction shares no block key with the data")
        table.twisted[st.name] = is_twisted(st)
        layers = structure_layers(st)
        spin = 2 if st.spinful else 1
        for z, types in zip(st.numbers.tolist(), st.orbital_types, strict=True):
            lab = orbital_labels(types)
            table.labels.setdefault(z, lab if spin == 1 else
                                    [f"{s}{o}" for s in ("u:", "d:") for o in lab])
        shells = [shell_slices(t) for t in st.orbital_types]
        dims = [shell_dims(t) for t in st.orbital_types]
        shell_of = [atom_shells(t) for t in st.orbital_types]
        dist = np.linalg.norm(st.edge_vectors(keys), axis=1)
        for key, d in zip(keys, dist, strict=True):
            i, j = key[3], key[4]
            zi, zj = int(st.numbers[i]), int(st.numbers[j])
            et = edge_type(key, layers)
            true, guess = np.asarray(st.hamiltonians[key]), np.asarray(pred[key])
            if true.shape != guess.shape:
                raise TgkitError(f"{st.name} key {key}: predicted block {guess.shape} "
                                 f"!= true block {true.shape}")
            err = np.abs(guess - true)
            tkey = (st.name, zi, zj, et)
            table.abs_sum[tkey] = table.abs_sum.get(tkey, 0.0) + err
            table.counts[tkey] = table.counts.get(tkey, 0) + 1
            ni, nj = true.shape[0] // spin, true.shape[1] // spin
            t_true, t_pred = (block_traces(torch.as_tensor(b), dims[i], dims[j]).numpy()
                              for b in (true, guess))
            for si, ri in enumerate(shells[i]):
                for sj, cj in enumerate(shells[j]):
                    # spinful: the shell pair's four spin sub-blocks together
                    rr = np.r_[ri, ri.start + ni:ri.stop + ni] if spin == 2 else ri
                    cc = np.r_[cj, cj.start + nj:cj.stop + nj] if spin == 2 else cj
                    bt, bp = true[np.ix_(_idx(rr), _idx(cc))], guess[np.ix_(_idx(rr), _idx(cc))]
                    rows["structure"].append(st.name)
                    rows["z_i"].append(zi)
                    rows["z_j"].append(zj)
                    rows["shell_i"].append(si)
                    rows["shell_j"].append(sj)
                    rows["block"].append(OrbitalBasis.block_label(
                        zi, zj, shell_of[i][si], shell_of[j][sj]))
                    rows["edge_type"].append(et)
                    rows["dist"].append(d)
                    rows["t_true"].append(float(t_true[si, sj]))
                    rows["t_pred"].append(float(t_pred[si, sj]))
                    rows["mae"].append(float(np.mean(np.abs(bp - bt))))
    table.trace = {k: np.asarray(v) for k, v in rows.items()}
    return table


def _idx(s) -> np.ndarray:
    return np.arange(s.start, s.stop) if isinstance(s, slice) else np.asarray(s)


def _symbols(numbers: np.ndarray) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in numbers]


def atom_errors(structure: Structure, prediction: Mapping[Key, np.ndarray]) -> np.ndarray:
    """(N,) mean |H_pred - H_true| (eV) over all blocks whose row atom is i (on-site included).

    Atoms with no predicted block get NaN.
    """
    total = np.zeros(structure.num_atoms)
    count = np.zeros(structure.num_atoms)
    for key, true in structure.hamiltonians.items():
        if key in prediction:
            err = np.abs(np.asarray(prediction[key]) - np.asarray(true))
            total[key[3]] += err.sum()
            count[key[3]] += err.size
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
