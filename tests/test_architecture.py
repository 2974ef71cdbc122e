"""The floors of docs/architecture.md hold: no import climbs to a higher floor, no import circles, every
module has a floor, and the CLI talks only to the API (and its presentation helpers)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "harness"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _floors() -> dict[str, int]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layers: read by tests/test_architecture.py -->", 1)[1].split("```")[1]
    floors = {}
    for line in block.strip().splitlines():
        number, *names = line.split()
        floors |= dict.fromkeys(names, int(number))
    return floors


FLOORS = _floors()


def floor_of(module: str) -> int | None:
    """The floor of the longest name in the table that is the module or a package above it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in FLOORS:
            return FLOORS[name]
    return None


def _imports(module: str, path: Path) -> set[str]:
    """Every harness module `module` imports, anywhere in the file (also lazily or under TYPE_CHECKING)."""
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        targets |= {n for n in names if n in MODULES and n != module and not module.startswith(n + ".")}
    return targets - {"harness"}  # `import harness` (the version) is the foundation


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_module_has_a_floor() -> None:
    assert not [m for m in MODULES if floor_of(m) is None], "add new modules to the table in docs/architecture.md"


def test_no_import_climbs_to_a_higher_floor() -> None:
    climbs = [f"{m} (floor {floor_of(m)}) imports {t} (floor {floor_of(t)})"
              for m, targets in GRAPH.items() for t in sorted(targets) if floor_of(t) > floor_of(m)]
    assert not climbs, "\n".join(climbs)


def test_no_import_circles() -> None:
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, "\n".join(circles)


def test_the_cli_talks_only_to_the_api() -> None:
    assert GRAPH["harness.cli"] <= {"harness.api", "harness.presentation"}


def test_the_checker_sees_a_climb(tmp_path: Path) -> None:
    """The checker itself: lazy, relative and TYPE_CHECKING imports are edges, and a climb has a floor gap."""
    source = tmp_path / "store.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom . import planning\nif TYPE_CHECKING:\n"
                      "    import harness.execution\ndef f():\n    from harness.api import run\n")
    found = _imports("harness.store", source)
    assert found == {"harness.planning", "harness.execution", "harness.api"}
    assert all(floor_of(t) > floor_of("harness.store") for t in found)
    assert floor_of("harness.backbones.vision") == FLOORS["harness.backbones"]
    assert "harness.api" in GRAPH["harness.cli"] and "harness.planning" in GRAPH["harness.execution"]


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "\n".join(long)


def test_tasks_are_not_probed_with_hasattr() -> None:
    """The task contract is declared on the bases: no hasattr/getattr-with-default probing of tasks."""
    probe = re.compile(r"(hasattr|getattr)\((self\.)?(plan\.)?task(_cls|_obj)?\b")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in MODULES.values()
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if probe.search(line)]
    assert not found, found
