"""The house: rooms (top-level modules and packages of swirl_lite) import only rooms of their own
layer or below, no two rooms import each other (directly or round a circle), and no stage imports
another stage: stages talk through files; what two stages share lives in a library room.

Type-only imports (under `if TYPE_CHECKING:`) are not dependencies and are not counted."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "swirl_lite"

# Lowest first. A room may import rooms of its own layer or of a lower one.
LAYERS = [
    {"actions", "imports", "errors", "config", "console", "schema", "runs",
     "compat", "attention", "few_rows", "precision", "memory", "memory_estimate"},
    {"tools"},
    {"tasks"},
    {"models", "backends", "architectures"},
    {"judges", "rollout", "training", "report"},
    {"stages", "pipeline", "chat", "doctor", "checks", "plan", "sweep"},
    {"bench", "cli", "cli_helpers", "__main__", "notebook"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("swirl_lite"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("swirl_lite")}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(files)) for name, path in files.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(room: str) -> int:
    for n, rooms in enumerate(LAYERS):
        if room in rooms:
            return n
    raise AssertionError(f"room {room!r} has no layer in tests/test_layout.py: place it")


def test_every_room_has_a_layer_and_imports_only_downwards():
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            a, b = _room(module), _room(target)
            if a != b and _layer(b) > _layer(a):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_circle_between_rooms():
    edges: dict[str, set[str]] = defaultdict(set)
    for module, targets in _graph().items():
        edges[_room(module)] |= {_room(t) for t in targets} - {_room(module)}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            room = todo.pop()
            if room == goal:
                return True
            if room not in seen:
                seen.add(room)
                todo.extend(edges[room])
        return False

    circles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if reaches(b, a))
    assert circles == []


def test_no_stage_imports_another_stage():
    crossing = [f"{m} -> {t}" for m, targets in _graph().items() if m.startswith("swirl_lite.stages.")
                for t in targets if t.startswith("swirl_lite.stages.") and t != m]
    assert crossing == []


def test_the_checks_see_a_violation(tmp_path):
    """The graph reader finds a real import (else the tests above would pass on anything)."""
    graph = _graph()
    assert "swirl_lite.judges.build" in graph["swirl_lite.stages.filter"] or any(
        t.startswith("swirl_lite.judges") for t in graph["swirl_lite.stages.filter"])
    assert _room("swirl_lite.stages.filter") == "stages" and _layer("stages") > _layer("judges")
