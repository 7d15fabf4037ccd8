"""The package's shape: no import circles, and every dialect decision in its backend."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "oriza_toolkit"
# Where dialect names may be tested: each backend, and config.py (which vets URLs).
DIALECT_HOMES = ("backends/", "config.py")
DIALECT_NAMES = {"postgresql", "postgres", "sqlite", "asyncpg", "aiosqlite", "psycopg", "psycopg2"}
DRIVER_MODULES = {"asyncpg", "aiosqlite", "sqlite3", "oriza_toolkit.backends.postgresql",
                  "oriza_toolkit.backends.sqlite", "oriza_toolkit.backends.pgread", "oriza_toolkit.backends.pgwrite",
                  "oriza_toolkit.backends.asyncpg_private"}


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "templates" in path.parts:
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imports(module: str, path: Path, is_package: bool, known: set[str] | None = None) -> set[str]:
    """Every module ``module`` imports, anywhere in it (functions and TYPE_CHECKING blocks too).

    ``from x import y`` counts as importing ``x.y`` where that is a module in ``known``, else ``x``.
    """
    known = known or set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = ".".join([*base[: len(base) - node.level + 1], node.module or ""]).strip(".") \
                if node.level else node.module or ""
            for alias in node.names:
                names.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return names


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {module: {name for name in _imports(module, path, is_package, set(modules))
                      if name in modules and name != module}
             for module, (path, is_package) in modules.items()}

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    cycles = sorted(module for module in graph if module in reachable(module))
    assert cycles == [], f"modules in an import cycle: {cycles}"


def _outside_dialect_homes() -> list[Path]:
    return [path for path, _ in _modules().values()
            if not str(path.relative_to(PACKAGE)).startswith(DIALECT_HOMES)]


def test_no_dialect_name_tests_outside_the_backends() -> None:
    found = []
    for path in _outside_dialect_homes():
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Compare):
                constants = [n.value for part in (node.left, *node.comparators) for n in ast.walk(part)
                             if isinstance(n, ast.Constant) and isinstance(n.value, str)]
                if any(c.lower() in DIALECT_NAMES for c in constants):
                    found.append(f"{where}: compares with a dialect name")
            elif isinstance(node, ast.Attribute) and node.attr == "name" and (
                    isinstance(node.value, ast.Attribute) and node.value.attr == "dialect"):
                found.append(f"{where}: reads dialect.name")
            elif isinstance(node, ast.Attribute) and node.attr == "get_backend_name":
                found.append(f"{where}: reads the URL's backend name")
    assert found == []


def test_drivers_and_backend_modules_are_imported_only_by_the_backends() -> None:
    found = []
    for path in _outside_dialect_homes():
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        used = _imports(module, path, path.name == "__init__.py", DRIVER_MODULES) & DRIVER_MODULES
        found.extend(f"{path.relative_to(PACKAGE)} imports {name}" for name in sorted(used))
    assert found == []


def test_the_backend_protocol_imports_nothing_above_it() -> None:
    path = PACKAGE / "backends" / "base.py"
    above = {name for name in _imports("oriza_toolkit.backends.base", path, False, set(_modules()))
             if name.startswith("oriza_toolkit.") and name.split(".")[1] not in ("frames", "_sql")}
    assert above == set()


def test_the_checker_sees_a_cycle_and_a_dialect_test(tmp_path: Path) -> None:
    # The checks above must be able to fail: the same walk over a made-up module.
    source = "import asyncpg\ndef f(db):\n    from . import database\n    return db.dialect.name == 'postgresql'\n"
    module = tmp_path / "m.py"
    module.write_text(source)
    imported = _imports("oriza_toolkit.m", module, False, {"oriza_toolkit.database"})
    assert {"asyncpg", "oriza_toolkit.database"} <= imported
    tree = ast.parse(source)
    assert any(isinstance(n, ast.Compare) for n in ast.walk(tree))
