"""The model layers use the kernels only through public names: sphcnn.nn and
sphcnn.models import nothing private or backend-internal from sphcnn_kernels."""

from __future__ import annotations

import ast
import pathlib

import pytest

import sphcnn

ROOT = pathlib.Path(sphcnn.__file__).resolve().parent
# The public modules of sphcnn_kernels a layer may import from.
PUBLIC = {"sphcnn_kernels", "sphcnn_kernels.ops", "sphcnn_kernels.validation", "sphcnn_kernels.precision"}
LAYER_FILES = sorted([*ROOT.joinpath("nn").glob("*.py"), *ROOT.joinpath("models").glob("*.py")])


def _imports(path: pathlib.Path) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) of every import of sphcnn_kernels in a file,
    at any depth (inside functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.startswith("sphcnn_kernels")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sphcnn_kernels"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
    return found


def test_the_walk_sees_the_layer_files():
    assert len(LAYER_FILES) >= 15
    assert any(_imports(path) for path in LAYER_FILES)


@pytest.mark.parametrize("path", LAYER_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_layers_import_only_public_names_of_the_kernels(path):
    bad = []
    for module, name, line in _imports(path):
        if name is not None and f"{module}.{name}" in PUBLIC:
            continue  # a public module imported by name (from sphcnn_kernels import ops)
        if module not in PUBLIC or (name is not None and name.startswith("_")):
            bad.append(f"line {line}: {module}" + (f" import {name}" if name else ""))
    assert not bad, f"{path.name} imports non-public parts of sphcnn_kernels: {bad}"


def test_the_check_rejects_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from sphcnn_kernels.backends import ffi_backend\n")
    assert _imports(sample) == [("sphcnn_kernels.backends", "ffi_backend", 2)]
    assert "sphcnn_kernels.backends" not in PUBLIC
