"""The layers import one way (docs/ARCHITECTURE.md): ``pipeline`` (engine) <- ``wsss`` (library) <- ``stages``.

The engine imports neither the library nor the stages; the library never imports the stages and uses only the
engine modules listed in ``LIBRARY_MAY_USE``. Every import statement counts, including those inside functions.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the library may use from the engine: atomic writes, the per-item loop, distributed helpers, stack fixes,
# the user-error base class, and the stage context it is handed (pipeline.stage)
LIBRARY_MAY_USE = {"pipeline", "pipeline.cache", "pipeline.parallel", "pipeline.distributed", "pipeline.compat",
                   "pipeline.errors", "pipeline.stage"}


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Absolute module names imported anywhere in the file (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)
    return names


def _violations(layer: str, allowed, root: Path = ROOT) -> list[str]:
    bad = []
    for path in sorted((root / layer).rglob("*.py")):
        for name in sorted(imported_modules(path, root)):
            top = name.split(".")[0]
            if top in ("pipeline", "wsss", "stages", "tools") and top != layer and not allowed(name):
                bad.append(f"{path.relative_to(root)} imports {name}")
    return bad


def test_engine_imports_neither_library_nor_stages():
    assert _violations("pipeline", lambda name: False) == []


def test_library_never_imports_stages_and_only_named_engine_parts():
    def allowed(name: str) -> bool:
        if name.startswith(("stages", "tools")):  # tools (incl. the demo-data generator) sit above the library
            return False
        parts = name.split(".")
        return any(".".join(parts[:i]) in LIBRARY_MAY_USE for i in range(2, len(parts) + 1)) or name == "pipeline"

    assert _violations("wsss", allowed) == []


def test_stages_never_import_the_tools():
    assert _violations("stages", lambda name: not name.startswith("tools")) == []


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: a function-local ``from stages import ORDER`` in a library file is caught."""
    fake = tmp_path / "wsss" / "x.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from stages import ORDER\n    from .maps import save_seeds\n")
    assert imported_modules(fake, tmp_path) >= {"stages", "stages.ORDER", "wsss.maps", "wsss.maps.save_seeds"}
    assert _violations("wsss", lambda n: not n.startswith("stages"), tmp_path) == [
        "wsss/x.py imports stages", "wsss/x.py imports stages.ORDER"]
