"""The house: each room of `flywheel/` imports only from the rooms below it."""

from __future__ import annotations

import ast
from pathlib import Path

import flywheel

ROOT = Path(flywheel.__file__).parent

# A room may import from itself and from the rooms listed here, nothing else of flywheel.
ALLOWED: dict[str, set[str]] = {
    "ledger": set(),
    "workflows": {"ledger"},
    "registry": {"workflows", "ledger"},
    "learners": {"registry", "workflows", "ledger"},
    "sim": {"workflows", "ledger"},
    "eval": {"learners", "sim", "registry", "workflows", "ledger"},
    "services": {"eval", "learners", "sim", "registry", "workflows", "ledger"},
    "cli": {"services", "eval", "learners", "sim", "registry", "workflows", "ledger"},
}


def _imports(path: Path) -> set[str]:
    """The flywheel rooms a module imports (at any depth: lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "flywheel" and len(parts) > 1:
                found.add(parts[1])
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if len(rel.parts) < 2:
            continue
        room = rel.parts[0]
        if "migrations" in rel.parts:
            continue
        wrong = _imports(path) - ALLOWED[room] - {room}
        out += [f"{rel} imports flywheel.{w}" for w in sorted(wrong)]
    return out


def test_every_module_lives_in_a_known_room():
    rooms = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == set(ALLOWED)


def test_imports_point_one_way():
    assert _violations() == []


def test_the_check_sees_a_wrong_way_import(tmp_path, monkeypatch):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from flywheel.services.runtime import Runtime\n")
    assert "services" in _imports(bad)
