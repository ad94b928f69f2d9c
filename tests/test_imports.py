"""The package's import graph has no cycle, counting every import (function-level and
``TYPE_CHECKING`` ones included): data flows one way, record/walk -> model -> analysis -> render
-> report -> cli -> the console entry.

The scan reads the source with :mod:`ast`, so a lazy ``from .x import y`` inside a function
counts like a top-level one. Importing ``a.b.c`` runs the packages ``a.b`` on the way, so
those are edges too; an import of a module's own parent package is not: the parent is always
imported first.
"""
from __future__ import annotations

import ast
from pathlib import Path

import graphprobe

PACKAGE = Path(graphprobe.__file__).resolve().parent


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Every module of the package under ``package_dir`` -> the package's modules it imports.

    Complexity: O(size of the source).
    """
    root = package_dir.parent
    paths = {_module_name(root, p): p for p in sorted(package_dir.rglob("*.py"))}
    edges: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        is_pkg = path.name == "__init__.py"
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # `from . import walk` imports the submodule walk; `from .x import name` imports x
                subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in paths]
                targets += subs or [target]
            elif isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
        for t in targets:
            # importing a.b.c runs a/__init__ and a/b/__init__ first: those are edges too
            parts = t.split(".")
            for k in range(2, len(parts) + 1):
                up = ".".join(parts[:k])
                if up in paths and up != mod and not mod.startswith(up + "."):
                    edges[mod].add(up)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``edges`` as ``[a, b, ..., a]``, or None; an iterative depth-first search.

    Complexity: O(V + E).
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(edges):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(edges[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(edges[nxt])))
    return None


def test_the_package_import_graph_has_no_cycle():
    edges = import_graph(PACKAGE)
    assert len(edges) > 30  # the scan found the package's modules
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_layers_import_one_way():
    edges = import_graph(PACKAGE)
    render = {m for m in edges if m.startswith("graphprobe.render")}
    assert render
    for m in render:
        assert "graphprobe.report" not in edges[m], m  # render takes the model's ReportData
    assert not {t for t in edges["graphprobe.cli"] if t == "graphprobe._entry"}
    layer = {"errors": -1, "io": -1, "locations": -1, "progress": -1, "model": 0, "record": 1, "walk": 1, "analysis": 2, "render": 3, "report": 4, "probing": 5,
             "run": 6, "assertions": 6, "pytest_plugin": 7, "cli": 7}
    for m, targets in edges.items():
        mine = layer.get(m.split(".")[1]) if m.count(".") else None
        for t in targets:
            theirs = layer.get(t.split(".")[1]) if t.count(".") else None
            if mine is not None and theirs is not None and m.split(".")[1] != t.split(".")[1]:
                # the one exception: the recorder raises the stack limit the walk's nodes need
                if t == "graphprobe.walk.stack":
                    continue
                assert theirs <= mine, f"{m} (layer {mine}) imports {t} (layer {theirs})"
    model = {m for m in edges if m.startswith(("graphprobe.model", "graphprobe.walk"))}
    for m in model:  # the model and the walk import nothing above them
        assert not {t for t in edges[m] if t.startswith(("graphprobe.analysis", "graphprobe.render",
                    "graphprobe.run", "graphprobe.record")) or t in ("graphprobe.report", "graphprobe.probing")}, m


def test_no_package_name_shadows_one_of_its_submodules():
    # `graphprobe.probe` is the function and no submodule is called probe; a package that exported
    # a function named like its own submodule would hand out the module or the function depending
    # on what was imported first (the import system binds a loaded submodule on its package).
    import importlib
    import pkgutil
    import types

    seen = 0
    for info in pkgutil.walk_packages(graphprobe.__path__, "graphprobe."):
        if info.name.endswith(("pytest_plugin", "__main__")):
            continue  # a plugin pytest loads itself; running __main__ would start the CLI
        mod = importlib.import_module(info.name)
        parent = importlib.import_module(info.name.rpartition(".")[0])
        bound = getattr(parent, info.name.rpartition(".")[2], mod)
        assert bound is mod, f"{parent.__name__}.{info.name.rpartition('.')[2]} is {bound!r}, not the submodule"
        seen += 1
    assert seen > 30
    for name in graphprobe.__all__:  # the public names are what they say, not modules
        assert not isinstance(getattr(graphprobe, name), types.ModuleType), name
    assert callable(graphprobe.probe) and callable(graphprobe.trace)


def test_the_scan_sees_function_level_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\n")
    (pkg / "sub" / "c.py").write_text("from . import d\nimport pkg.a\n")
    (pkg / "sub" / "d.py").write_text("from .. import sub\n")  # its own parent: no edge
    edges = import_graph(pkg)
    assert edges["pkg.a"] == {"pkg.b"}
    assert edges["pkg.b"] == {"pkg.sub", "pkg.sub.c"}  # the package's __init__ runs first
    assert edges["pkg.sub"] == {"pkg.a"}
    assert edges["pkg.sub.c"] == {"pkg.sub.d", "pkg.a"}
    assert edges["pkg.sub.d"] == set()
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert {"pkg.a", "pkg.b"} <= set(cycle)  # through pkg.sub's __init__ or through pkg.sub.c
    (pkg / "a.py").write_text("def f():\n    return 1\n")
    assert find_cycle(import_graph(pkg)) is None


def test_the_command_line_loads_no_renderer_before_it_renders():
    # The CLI checks an output path against the registry before the script runs; the registry's
    # package must not pull the DOT writer, the engine and the data model in with it.
    import subprocess
    import sys

    code = ("import sys, graphprobe.cli, graphprobe.render.registry as r; r.renderer_for('x.svg'); "
            "print(sorted(m for m in ('graphprobe.render.dot', 'graphprobe.render.engine', "
            "'graphprobe.model.report', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
