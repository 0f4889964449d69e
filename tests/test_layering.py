"""Dependencies run one way: data -> physics -> nn -> train -> viz and cli (dft above physics).

An AST scan of every ``import`` in the package, including the ones inside functions, so a
lazy import cannot hide a back edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tgkit

PACKAGE = Path(tgkit.__file__).resolve().parent

# subpackage -> the tgkit subpackages it must never import
FORBIDDEN = {
    "data": {"physics", "dft", "nn", "train", "viz", "cli"},
    "physics": {"dft", "nn", "train", "viz", "cli"},
    "dft": {"nn", "train", "viz", "cli"},
    "nn": {"dft", "train", "viz", "cli"},
    "train": {"dft", "viz", "cli"},
}


def tgkit_imports(path: Path) -> set[str]:
    """The ``tgkit.<sub>`` names a module imports (first component after ``tgkit``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for m in mods:
            parts = m.split(".")
            if parts[0] == "tgkit" and len(parts) > 1:
                names.add(parts[1])
    return names


@pytest.mark.parametrize("sub", sorted(FORBIDDEN))
def test_layering(sub):
    bad = []
    for path in sorted((PACKAGE / sub).rglob("*.py")):
        for name in sorted(tgkit_imports(path) & FORBIDDEN[sub]):
            bad.append(f"{path.relative_to(PACKAGE.parent)} imports tgkit.{name}")
    assert not bad, "\n".join(bad)


def test_scan_sees_lazy_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from tgkit.physics.bands import BandSolver\n    import tgkit.viz\n")
    assert tgkit_imports(f) == {"physics", "viz"}
