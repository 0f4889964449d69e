"""Names of the fields of a graph (a ``dict[str, Tensor]``), each with its shape and meaning.

N = atoms, E = directed edges (hoppings), G = graphs in a batch, B = universal orbitals of the
dataset's basis (see :class:`tgkit.irreps.OrbitalBasis`). Blocks are stored in e3nn order.
"""

from __future__ import annotations

# --- per graph -----------------------------------------------------------------------------
LATTICE = "lattice"  # (G, 3, 3) float | lattice vectors as rows, Angstrom
FERMI_LEVEL = "fermi_level"  # (G,) float | Fermi level in eV (NaN when unknown)
NUM_NODES = "num_nodes"  # (G,) int64 | atoms per graph
NUM_EDGES = "num_edges"  # (G,) int64 | edges per graph
STRUCTURE_ID = "structure_id"  # (G,) int64 | index of the structure in its dataset

# --- per node ------------------------------------------------------------------------------
POSITIONS = "positions"  # (N, 3) float | cartesian positions, Angstrom
ATOMIC_NUMBERS = "atomic_numbers"  # (N,) int64 | Z of each atom
SPECIES = "species"  # (N,) int64 | index of Z in the dataset's species list
BATCH = "batch"  # (N,) int64 | graph index of each atom

# --- per edge ------------------------------------------------------------------------------
EDGE_INDEX = "edge_index"  # (2, E) int64 | (i, j): block H_ij(R), rows i, columns j
CELL_SHIFT = "cell_shift"  # (E, 3) int64 | R in lattice units; atom j sits in cell R
EDGE_VEC = "edge_vec"  # (E, 3) float | tau_j + R.L - tau_i, cartesian Angstrom
REVERSE_EDGE = "reverse_edge"  # (E,) int64 | index of the (j, i, -R) partner edge
HAMILTONIAN = "hamiltonian"  # (E, B, B) float or (E, 2B, 2B) complex (SOC) | H blocks, eV
OVERLAP = "overlap"  # (E, B, B) float | S blocks (always spinless)

GRAPH_FIELDS = (LATTICE, FERMI_LEVEL, NUM_NODES, NUM_EDGES, STRUCTURE_ID)
NODE_FIELDS = (POSITIONS, ATOMIC_NUMBERS, SPECIES)
EDGE_FIELDS = (CELL_SHIFT, EDGE_VEC, HAMILTONIAN, OVERLAP)

# --- model outputs (tgkit.nn); P = shell pairs of the universal basis ----------------------
H_PRED = "h_pred"  # (E, B, B) float or (E, 2B, 2B) complex (SOC) | predicted H blocks, eV
H_MASK = "h_mask"  # (E, B, B) or (E, 2B, 2B) bool | orbital element exists for the edge's species
T_PRED = "t_pred"  # (E, P) float | predicted trace tr(H_b H_b^dagger) of each shell-pair block b
T_LABEL = "t_label"  # (E, P) float | tr(H_b H_b^dagger) from HAMILTONIAN (Theorem 1 label)
BLOCK_MASK = "block_mask"  # (E, P) bool | shell-pair block b exists for the edge's species
