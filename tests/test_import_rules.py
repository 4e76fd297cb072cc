"""The layer rules of DEVELOPERS.md, checked on every import of every module in the package:
import statements (including the lazy ones inside functions) and imports by name
(``importlib.import_module("torch")``, ``__import__("sqlalchemy")``, a leading constant part of
an f-string). And the GUI's side of the facade: GUI code never reaches for a database, engine,
session or model store through the services, and services never hand out ORM rows."""

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
    "export": ({"core", "config", "db", "export", "tracking"}, {"sqlalchemy", "PIL"}),
    "tracking": ({"core", "tracking"}, {"numpy", "scipy"}),
    "ml": ({"core", "config", "ml"},
           {"torch", "torchvision", "PIL", "numpy", "requests", "urllib3", "tenacity", "timm"}),
    "pipeline": ({"core", "config", "db", "scan", "ml", "export", "tracking", "pipeline"},
                 {"torch", "torchvision", "PIL", "numpy", "sqlalchemy", "tenacity",
                  # the cluster executor (pipeline/cluster_*.py), imported only when used
                  "dask", "distributed", "dask_jobqueue"}),
    "remote": ({"core", "config", "db", "scan", "ml", "pipeline", "remote"},
               {"requests", "urllib3", "tenacity", "PIL", "numpy", "torch", "sqlalchemy",
                "keyring"}),
    "services": ({"core", "config", "db", "scan", "ml", "pipeline", "remote", "export", "tracking",
                  "services"},
                 {"sqlalchemy", "torch", "PIL", "numpy", "requests"}),
    "cli": ({"core", "config", "db", "scan", "ml", "pipeline", "remote", "export", "tracking",
             "services", "cli"},
            {"sqlalchemy", "torch", "PIL", "numpy", "requests", "tqdm"}),
    # the GUI sees only the facade: never torch, SQLAlchemy or the layers below services
    "gui": ({"core", "config", "services", "gui"}, {"PySide6", "shiboken6", "numpy"}),
}
TOP_LEVEL_MODULES = {"app", "version", "__init__", "__main__"}  # app.py wires everything


_IMPORT_CALLS = {"import_module", "__import__"}


def _imported_name(call: ast.Call) -> str | None:
    """The module a call like ``importlib.import_module("x")`` or ``__import__("x")`` imports,
    when its name is written in the call (for an f-string: the package before the first
    placeholder, e.g. ``trapgui.gui`` for ``f"trapgui.gui.{name}"``)."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in _IMPORT_CALLS or not call.args:
        return None
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        prefix = str(arg.values[0].value)
        return prefix.rsplit(".", 1)[0] if "." in prefix else None
    return None


def _imports_in(tree: ast.AST, path: Path):
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
        elif isinstance(node, ast.Call):
            name = _imported_name(node)
            if name:
                yield node.lineno, name


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    yield from _imports_in(tree, path)


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


def test_rule_checker_sees_imports_by_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\n"
                   "def f(name):\n"
                   "    importlib.import_module('torch')\n"
                   "    __import__('sqlalchemy.orm')\n"
                   "    importlib.import_module(f'trapgui.db.{name}')\n"
                   "    importlib.import_module(name)\n")  # not written out: cannot be checked
    assert [name for _, name in _imports(bad)] == ["importlib", "torch", "sqlalchemy.orm",
                                                   "trapgui.db"]


# ---- what the GUI may hold -----------------------------------------------------------------
# Attributes that hand out a database, an engine, a session or a model store (torch): the GUI
# gets plain values from the services' methods, never these.
HEAVY_ATTRIBUTES = {"store", "engine", "session", "write_session", "model_catalogue"}
HEAVY_NAMES = {"ModelStore", "Database", "Engine", "Session", "RemoteWorker"}


def _mentions_services(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and "services" in n.id
               or isinstance(n, ast.Attribute) and "services" in n.attr
               for n in ast.walk(node))


def heavy_uses(source: str, filename: str = "<gui>") -> list[str]:
    """Places in GUI source that reach a database, torch or engine object."""
    problems = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Attribute):
            if node.attr in HEAVY_ATTRIBUTES or (node.attr in ("db", "_db")
                                                 and _mentions_services(node.value)):
                problems.append(f"{filename}:{node.lineno} .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in HEAVY_NAMES:
            problems.append(f"{filename}:{node.lineno} {node.id}")
    return problems


def test_gui_never_holds_a_database_engine_or_model_store():
    problems = []
    for path, layer in _modules():
        if layer == "gui":
            problems += heavy_uses(path.read_text(encoding="utf-8"),
                                   str(path.relative_to(PKG.parent)))
    assert not problems, "the GUI reaches past the services' plain values:\n" + \
        "\n".join(problems)


def test_heavy_use_checker_flags_bad_snippets():
    bad = ("def f(self, services):\n"
           "    services.db.session()\n"
           "    self._services.models.store.download('x')\n"
           "    with self.services.db.write_session() as s: pass\n"
           "    return Database\n")
    found = heavy_uses(bad)
    assert {p.split(" ", 1)[1] for p in found} == {".db", ".session", ".store",
                                                    ".write_session", "Database"}
    assert heavy_uses("def f(args):\n    return args.db, self.settings.db_path\n") == []


def _orm_classes() -> set[str]:
    tree = ast.parse((PKG / "db" / "tables.py").read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.ClassDef)
            and any(getattr(b, "id", None) == "Base" for b in n.bases)}


def orm_returns(source: str, orm: set[str], filename: str = "<services>") -> list[str]:
    """Public functions whose return annotation names an ORM class."""
    problems = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns and \
                not node.name.startswith("_"):
            names = {n.id for n in ast.walk(node.returns) if isinstance(n, ast.Name)}
            names |= {n.value for n in ast.walk(node.returns)
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            if names & orm:
                problems.append(f"{filename}:{node.lineno} {node.name} -> {names & orm}")
    return problems


def test_services_return_plain_values_not_orm_rows():
    orm = _orm_classes()
    assert {"Image", "Detection", "Night", "Deployment", "Job"} <= orm
    problems = []
    for path, layer in _modules():
        if layer == "services":
            problems += orm_returns(path.read_text(encoding="utf-8"), orm,
                                    str(path.relative_to(PKG.parent)))
    assert not problems, problems
    assert orm_returns("def rows(db) -> list[Detection]:\n    pass\n", orm) != []
