"""The layer rules of DEVELOPERS.md, checked on every import statement (including the lazy
ones inside functions) of every module in the package."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "trapgui"
STDLIB = set(sys.stdlib_module_names)

# layer -> (trapgui layers it may import, third-party top-level packages it may import)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "core": ({"core"}, {"numpy"}),
    "config": ({"core", "config"}, {"platformdirs"}),
    "db": ({"core", "config", "db"}, {"sqlalchemy"}),
    "scan": ({"core", "config", "db", "scan"}, {"PIL", "numpy", "sqlalchemy"}),
    "export": ({"core", "config", "db", "export"}, {"sqlalchemy", "PIL"}),
    "ml": ({"core", "config", "ml"},
           {"torch", "torchvision", "PIL", "numpy", "requests", "urllib3", "tenacity", "timm"}),
    "pipeline": ({"core", "config", "db", "scan", "ml", "export", "pipeline"},
                 {"torch", "torchvision", "PIL", "numpy", "sqlalchemy", "tenacity",
                  # the cluster executor (pipeline/cluster_*.py), imported only when used
                  "dask", "distributed", "dask_jobqueue"}),
    "remote": ({"core", "config", "db", "scan", "ml", "pipeline", "remote"},
               {"requests", "urllib3", "tenacity", "PIL", "numpy", "torch", "sqlalchemy",
                "keyring"}),
    "services": ({"core", "config", "db", "scan", "ml", "pipeline", "remote", "export", "services"},
                 {"sqlalchemy", "torch", "PIL", "numpy", "requests"}),
    "cli": ({"core", "config", "db", "scan", "ml", "pipeline", "remote", "export", "services", "cli"},
            {"sqlalchemy", "torch", "PIL", "numpy", "requests", "tqdm"}),
    # the GUI sees only the facade: never torch, SQLAlchemy or the layers below services
    "gui": ({"core", "config", "services", "gui"}, {"PySide6", "shiboken6", "numpy"}),
}
TOP_LEVEL_MODULES = {"app", "version", "__init__", "__main__"}  # app.py wires everything


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = path.relative_to(PKG.parent).with_suffix("").parts[: -node.level]
                if path.name == "__init__.py":
                    base = path.relative_to(PKG.parent).parts[: -node.level]
                yield node.lineno, ".".join(base + ((node.module,) if node.module else ()))
            elif node.module:
                yield node.lineno, node.module


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        layer = rel.parts[0].removesuffix(".py")
        yield path, layer


def test_every_module_belongs_to_a_known_layer():
    for path, layer in _modules():
        assert layer in RULES or layer in TOP_LEVEL_MODULES, f"{path}: unknown layer {layer!r}"


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports(layer):
    allowed_layers, allowed_third = RULES[layer]
    problems = []
    for path, mod_layer in _modules():
        if mod_layer != layer:
            continue
        for lineno, name in _imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(PKG.parent)}:{lineno} imports {name}"
            if top == "trapgui":
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "__init__"
                if target in ("version",):
                    continue
                if target not in allowed_layers:
                    problems.append(where)
            elif top in STDLIB or top == "__future__":
                continue
            elif top not in allowed_third:
                problems.append(where)
    assert not problems, "layer rule broken:\n" + "\n".join(problems)


def test_nothing_below_gui_imports_qt():
    offenders = []
    for path, layer in _modules():
        if layer in ("gui", "app"):
            continue
        for lineno, name in _imports(path):
            if name.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6"):
                offenders.append(f"{path}:{lineno} {name}")
    assert not offenders, offenders


def test_rule_checker_sees_lazy_imports(tmp_path):
    """The checker itself must be able to fail: it has to see imports hidden inside functions."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch\n    from sqlalchemy import select\n")
    assert [name for _, name in _imports(bad)] == ["torch", "sqlalchemy"]
