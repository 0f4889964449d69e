"""Data layer: DeepH directories, periodic graphs, the HDF5 cache and splits."""

from tgkit.data.deeph import Structure, find_structures, read_structure, read_tree, write_structure

__all__ = ["Structure", "find_structures", "read_structure", "read_tree", "write_structure"]
