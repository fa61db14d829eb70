"""The floor plan (docs/ARCHITECTURE.md), checked: layers import one way, no module imports itself in a loop, and
internal imports sit at the top of their module, where a reader sees them."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# A module may import its own package or any package of a lower rank (the core modules of rank 0 also each other);
# serving and evaluation share a rank and do not import each other (both only read what inference computes).
# `cli` reaches the recipes by name, lazily.
RANK = {"errors": 0, "config": 0, "emotions": 0, "provenance": 0, "runtime": 0, "data": 1, "models": 2, "inference": 3,
        "serving": 4, "evaluation": 4, "training": 5, "recipes": 6, "cli": 7}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted((SRC / "ecrs").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(imported ecrs module, line, at module top?) for every import statement of `tree`."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ecrs"):
            found.append((node.module, node.lineno, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names if a.name.startswith("ecrs")]
    return found


def _package(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def _allowed(src: str, target: str) -> bool:
    return src == target or RANK[target] < RANK[src] or RANK[target] == RANK[src] == 0


MODULES = _modules()


def test_every_package_has_a_rank():
    assert {_package(m) for m in MODULES if m != "ecrs"} <= RANK.keys()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    src = _package(module)
    wrong = [f"{module}:{line} imports {target}" for target, line, _ in _imports(MODULES[module])
             if not _allowed(src, _package(target))]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_internal_imports_are_at_module_top(module):
    inner = [f"{module}:{line} imports {target} inside a function" for target, line, top in _imports(MODULES[module])
             if not top]
    assert not inner, "\n".join(inner)


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in _imports(tree) if t in MODULES} for m, tree in MODULES.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(t):] + [m, t]))
            if t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_checks_catch_a_wrong_import():
    """The rules fail on a module that imports upward, inside a function (so the test above can fail)."""
    tree = ast.parse("def f():\n    from ecrs.serving.app import create_app\n")
    ((target, _, top),) = _imports(tree)
    assert not _allowed("models", _package(target)) and not top
    assert not _allowed("evaluation", "serving") and _allowed("evaluation", "inference")
