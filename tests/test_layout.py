"""The package layout: no import circle, no wrong-way arrow between the wings, no module over 600 lines."""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "kerasviz")
MAX_LINES = 600
# the wings in import order: a module may import its own wing and the ones before it, never a later one
WINGS = {
    "util": {"kerasviz.names", "kerasviz.images", "kerasviz.catalog"},
    "nets": "kerasviz.nets",
    "engine": "kerasviz.engine",
    "optimize": {"kerasviz.optimize"},
}


def _modules() -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def _imports(name: str, path: str, modules) -> set[str]:
    """The kerasviz modules `name` imports (at any depth of its code), resolved to module names."""
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in modules and m != name}


def _wing(module: str) -> str:
    for wing, members in WINGS.items():
        if isinstance(members, set) and module in members:
            return wing
        if isinstance(members, str) and (module == members or module.startswith(members + ".")):
            return wing
    return "apps"


ORDER = ["util", "nets", "engine", "optimize", "apps"]


def test_no_module_is_over_600_lines():
    long = {m: sum(1 for _ in open(p, encoding="utf-8")) for m, p in _modules().items()}
    assert {m: n for m, n in long.items() if n > MAX_LINES} == {}


def test_no_arrow_points_the_wrong_way():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name == "kerasviz":
            continue
        for target in _imports(name, path, modules):
            if target == "kerasviz":
                continue  # `from kerasviz import nets`: the package, whose names are the modules listed too
            if ORDER.index(_wing(target)) > ORDER.index(_wing(name)):
                wrong.append((name, target, f"{_wing(name)} imports {_wing(target)}"))
    assert wrong == []


def test_no_import_circle():
    modules = _modules()
    graph = {m: {t for t in _imports(m, p, modules) if not modules[t].endswith("__init__.py")}
             for m, p in modules.items() if not p.endswith("__init__.py")}
    circles = []

    def visit(node, path):
        for nxt in graph.get(node, ()):
            if nxt in path:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in seen:
                seen.add(nxt)
                visit(nxt, path + [nxt])

    seen: set = set()
    for m in sorted(graph):
        if m not in seen:
            seen.add(m)
            visit(m, [m])
    assert circles == []


def test_engine_runs_without_any_app_module():
    code = ("import sys, kerasviz.engine.render, kerasviz.optimize; "
            "apps = [m for m in sys.modules if m.startswith('kerasviz.') and m.split('.')[1] in "
            "('analysis', 'examples', 'inversion', 'weights', 'training', 'plot', 'plot_weights', 'atlas', 'cli')]; "
            "print(apps)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_module_file_is_a_module():
    """No file of the package only re-binds itself to another module (a compatibility shim)."""
    shims = [m for m, p in _modules().items() if "sys.modules[__name__]" in open(p, encoding="utf-8").read()]
    assert shims == []


@pytest.mark.parametrize("namespace, module", [
    ("objectives", "kerasviz.engine.objectives"), ("presets", "kerasviz.engine.presets"),
    ("transforms", "kerasviz.engine.transforms"), ("nets", "kerasviz.nets"), ("examples", "kerasviz.examples"),
    ("training", "kerasviz.training"),
])
def test_sub_namespaces_are_their_modules(namespace, module):
    import importlib

    import kerasviz as kv

    assert getattr(kv, namespace) is importlib.import_module(module)


@pytest.mark.parametrize("old", ["models", "data", "callbacks"])
def test_old_names_are_gone(old):
    import kerasviz as kv

    with pytest.raises(AttributeError, match=old):
        getattr(kv, old)
