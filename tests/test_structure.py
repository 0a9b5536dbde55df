"""The package's import structure (issue 15): the command line sits on top, and no modules import
each other.

Every module under src/lightsr is parsed with ``ast`` (nothing is imported); every ``import`` and
``from ... import`` statement counts, at module level or inside a function, with relative imports
resolved against the module's package. ``from pkg import name`` is an edge to ``pkg.name`` when that
is a module, else to ``pkg``. Edges to the parent packages Python imports implicitly are not added
(every submodule would otherwise "cycle" with its package).

* No module outside ``lightsr.cli`` imports ``lightsr.cli`` (``lightsr.__main__``, the
  ``python -m lightsr`` entry point, is on top of it and exempt).
* The import graph has no cycle; a cycle found is reported as ``a -> b -> ... -> a``.
* ``lightsr --help`` (and a command's ``--help``) imports no torch: the command modules import the
  library only when a command runs.

Every check was seen to fail: adding ``from .cli import parse_options`` inside
``evaluate.run_evaluation`` (broken on purpose, then restored) made
``test_no_library_module_imports_the_cli`` fail with ``lightsr.evaluate -> lightsr.cli (line 253)``
and ``test_no_import_cycles`` with ``lightsr.cli -> lightsr.cli.eval -> lightsr.evaluate ->
lightsr.cli``; restoring the file made both pass. The cycle test also caught two real cycles while
this was written (``lightsr.models`` <-> ``lightsr.models.loading`` through ``pick_device``, and
``lightsr.cli`` <-> ``lightsr.cli.train``), both fixed. ``import torch`` added at the top of ``cli/info.py`` made ``test_help_imports_no_torch`` fail
(``['torch', 'numpy']``).
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "lightsr"
ENTRY_POINTS = {f"{PACKAGE}.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(target: str) -> str | None:
    """The longest existing module prefix of a dotted name inside the package, or None outside it."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return None


def imports_of(name: str) -> dict[str, int]:
    """{imported module of the package: first line number} of one module, function-level included."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(target: str | None, line: int) -> None:
        if target is not None and target != name:
            found.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(_resolve(alias.name), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not (mod == PACKAGE or mod.startswith(PACKAGE + ".")):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(sub if sub in MODULES else _resolve(mod), node.lineno)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def _in_cli(name: str) -> bool:
    return name == f"{PACKAGE}.cli" or name.startswith(f"{PACKAGE}.cli.")


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None (iterative depth-first search)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for root in sorted(graph):
        if colour[root] != WHITE:
            continue
        stack = [(root, iter(sorted(graph[root])))]
        path = [root]
        colour[root] = GREY
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
            elif colour.get(child, BLACK) == GREY:
                return path[path.index(child):] + [child]
            elif colour.get(child) == WHITE:
                colour[child] = GREY
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_the_walk_sees_the_package():
    """The walk finds the modules and edges it must (so an empty graph cannot pass the checks)."""
    assert {f"{PACKAGE}.cli", f"{PACKAGE}.evaluate", f"{PACKAGE}.train.engine", f"{PACKAGE}.models.loading"} <= set(MODULES)
    assert f"{PACKAGE}.train.config" in GRAPH[f"{PACKAGE}.train.engine"]  # a module-level relative import
    assert f"{PACKAGE}.evaluate" in GRAPH[f"{PACKAGE}.cli.eval"]  # a function-level one, two dots up
    assert f"{PACKAGE}.cli._options" in GRAPH[f"{PACKAGE}.cli.eval"]


def test_no_library_module_imports_the_cli():
    bad = [f"{name} -> {target} (line {line})" for name, edges in GRAPH.items()
           if not _in_cli(name) and name not in ENTRY_POINTS
           for target, line in edges.items() if _in_cli(target)]
    assert not bad, "library modules import the command line: " + "; ".join(bad)


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    if cycle:
        steps = [f"{a} -> {b} (line {GRAPH[a][b]})" for a, b in zip(cycle, cycle[1:])]
        pytest.fail("import cycle: " + " -> ".join(cycle) + "\n  " + "\n  ".join(steps))


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}, ["a", "b", "c", "a"]),
    ({"a": {"b": 1}, "b": {"a": 1}}, ["a", "b", "a"]),
    ({"a": {"b": 1, "c": 1}, "b": {"c": 1}, "c": {}}, None),
])
def test_find_cycle_reports_cycles(graph, expected):
    assert find_cycle(graph) == expected


@pytest.mark.parametrize("argv", [["--help"], ["upscale", "--help"], ["train", "--help"]])
def test_help_imports_no_torch(argv):
    code = ("import sys\nfrom lightsr.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'numpy', 'PIL') if m in sys.modules]\n"
            "assert not heavy, heavy\n") % (argv,)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr[-800:]
    assert "usage: lightsr" in r.stdout


# ---------------------------------------------------------------------------------------------
# the descriptor is the interface: one front door into the models, no probing of a model
# ---------------------------------------------------------------------------------------------
BUILDERS = {"create_model", "build_model", "build"}  # what makes a model out of a name or a file
FRONT_DOOR = f"{PACKAGE}.models.resolve"


def _in_models(name: str) -> bool:
    return name == f"{PACKAGE}.models" or name.startswith(f"{PACKAGE}.models.")


def builder_imports(name: str) -> list[str]:
    """``name``'s imports of a model builder from lightsr.models (any depth, function-level included)."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            mod = ".".join((base[: len(base) - (node.level - 1)] if node.level > 1 else base) + [node.module or ""]) \
                if node.level else (node.module or "")
            if _in_models(mod.rstrip(".")):
                found += [f"{alias.name} from {mod} (line {node.lineno})" for alias in node.names
                          if alias.name in BUILDERS]
    return found


def test_commands_reach_the_models_through_resolve_only():
    """Outside lightsr.models no module builds a model: every command and library function gets one from
    ``lightsr.models.resolve.resolve`` (a Descriptor holding the module). ``lightsr/__init__`` only names
    ``create_model`` for users (a lazy attribute, no import). Broken on purpose once: ``from .models import
    build_model`` added inside ``profile.run_profile`` failed this test (``lightsr.profile: build_model
    from lightsr.models``), restored it passed."""
    bad = {name: found for name in MODULES if not _in_models(name) and (found := builder_imports(name))}
    assert not bad, f"modules build models themselves instead of calling {FRONT_DOOR}.resolve: {bad}"
    users = [name for name, edges in GRAPH.items() if FRONT_DOOR in edges and not _in_models(name)]
    assert {f"{PACKAGE}.api", f"{PACKAGE}.evaluate", f"{PACKAGE}.profile", f"{PACKAGE}.plots",
            f"{PACKAGE}.export", f"{PACKAGE}.train.engine"} <= set(users), users


def test_no_module_outside_models_probes_a_model():
    """What a model is and how to run it come from its Descriptor: no ``getattr(model, ...)`` /
    ``hasattr(model, ...)`` and no ``registry_name`` attribute outside lightsr.models."""
    import re

    probe = re.compile(r"registry_name|getattr\(model\b|hasattr\(model\b|getattr\(net\b|hasattr\(net\b")
    bad = [f"{name}:{i}" for name, path in MODULES.items() if not _in_models(name)
           for i, line in enumerate(path.read_text().splitlines(), 1) if probe.search(line)]
    assert not bad, "model probes outside lightsr.models: " + ", ".join(bad)


def test_no_module_imports_another_modules_private_name():
    """``from X import _name`` across modules: a private name is private to its module."""
    bad = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or node.level):
                bad += [f"{name}: {alias.name} (line {node.lineno})" for alias in node.names
                        if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not bad, "private names imported across modules: " + "; ".join(bad)
