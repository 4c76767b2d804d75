"""SQL lives in each service's `db/` package (and its migrations): nowhere else in the services or shared code.

Found as SQL: calls of SQLAlchemy's `text`, `select`, `insert`, `update` and `delete`; `.execute(...)` with a
string; string constants that start (after whitespace) with an upper-case statement keyword and a space.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_SOURCES = sorted((ROOT / "services").glob("*/src"))
SHARED_SOURCE = ROOT / "shared" / "src"

# The shared db layer: plumbing every service uses, with the statements over its own tables.
SHARED_DB_LAYER = {
    "lifecycle_shared/db.py": "the engine, the inbox and outbox tables, claiming event ids, writing to the outbox",
    "lifecycle_shared/kafka/relay.py": "the outbox relay: reads, sets aside and deletes what it published",
}

STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|TRUNCATE) ")
BUILDERS = {"text", "select", "insert", "update", "delete"}


def _sqlalchemy(module: str | None) -> bool:
    return module is not None and (module == "sqlalchemy" or module.startswith("sqlalchemy."))


def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, what) of every piece of SQL in a module's source."""
    tree = ast.parse(source)
    builders: dict[str, str] = {}  # local name -> SQLAlchemy builder
    modules: set[str] = set()  # local names of imported SQLAlchemy modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _sqlalchemy(node.module):
            builders.update((alias.asname or alias.name, alias.name) for alias in node.names if alias.name in BUILDERS)
        elif isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if _sqlalchemy(alias.name))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name) and function.id in builders:
                found.append((node.lineno, f"sqlalchemy {builders[function.id]}()"))
            elif (isinstance(function, ast.Attribute) and function.attr in BUILDERS
                  and isinstance(function.value, ast.Name) and function.value.id in modules):
                found.append((node.lineno, f"sqlalchemy {function.attr}()"))
            elif (isinstance(function, ast.Attribute) and function.attr == "execute" and node.args
                  and (isinstance(node.args[0], ast.JoinedStr)
                       or isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str))):
                found.append((node.lineno, ".execute() with a string"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and STATEMENT.match(node.value):
            found.append((node.lineno, f"a statement: {node.value.strip()[:40]!r}"))
    return sorted(found)


def _allowed(path: Path, source_root: Path) -> bool:
    inside = path.relative_to(source_root)
    packages = inside.parts[:-1]
    if "migrations" in packages:
        return True
    if source_root == SHARED_SOURCE:
        return inside.as_posix() in SHARED_DB_LAYER
    return "db" in packages


def _modules() -> list[tuple[Path, Path]]:
    return [(path, root) for root in [*SERVICE_SOURCES, SHARED_SOURCE] for path in sorted(root.rglob("*.py"))]


def test_sql_only_in_db_layers():
    modules = _modules()
    assert len(SERVICE_SOURCES) == 4 and len(modules) > 100, "the walk found the services' and shared sources"
    misplaced = [f"{path.relative_to(ROOT)}:{line}: {what}"
                 for path, root in modules if not _allowed(path, root)
                 for line, what in sql_in(path.read_text())]
    assert not misplaced, "SQL outside a db/ package:\n" + "\n".join(misplaced)


def test_the_shared_db_layer_exists_and_holds_sql():
    for name, reason in SHARED_DB_LAYER.items():
        assert sql_in((SHARED_SOURCE / name).read_text()), f"{name} ({reason}) holds no SQL: drop it from the list"


SNIPPET = '''\
import sqlalchemy as sa
from sqlalchemy import select as pick, text
from sqlalchemy.dialects.postgresql import insert


async def everything(conn, table, name):
    await conn.execute(text(f"VACUUM {name}"))
    rows = await conn.execute(pick(table))
    await conn.execute(insert(table).values(n=1))
    await conn.execute(sa.delete(table))
    await conn.exec_driver_sql("x") or await conn.execute("VACUUM")
    return """
        WITH t AS (SELECT 1) SELECT * FROM t"""


def nothing(data, router, label):
    data.update(a=1)
    router.delete("/keys")
    label = "SELECTED" + "Select one" + "select 1" + "WITHOUT"
    return label
'''


def test_the_detector_finds_sql():
    assert [line for line, _ in sql_in(SNIPPET)] == [7, 8, 9, 10, 11, 12]
