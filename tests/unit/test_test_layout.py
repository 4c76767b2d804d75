"""The tests' own layout: helpers they share live in tests/support, and no module imports a test module or a
conftest (pytest imports those itself, and a test module imported elsewhere runs its import-time code twice
and couples unrelated tests). Fixtures come from the conftest.py of the test's folder or from a tests/support
plugin listed in tests/conftest.py."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
SUPPORT = TESTS / "support"
# Not Python of ours: the npm packages the Node.js client tests install (node_modules may hold .py files).
NOT_OURS = (TESTS / "clients" / "node",)
IMPORTERS = {"import_module", "__import__"}  # importlib.import_module("...") and __import__("...")


def is_test_or_conftest(module: str) -> bool:
    """A dotted module name that is a test module or a conftest (tests.x.test_y, tests.x.conftest, conftest)."""
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def module_name(path: Path, root: Path) -> str:
    """The dotted name `path` is imported as, `root` being the directory that holds the tests package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolved(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module an ImportFrom names (relative forms resolved against `module`)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, node.module] if node.module else base)


def offending_imports(source: str, *, module: str = "tests.example.helper", is_package: bool = False,
                      filename: str = "<snippet>") -> list[tuple[int, str]]:
    """(line, what) for every import of a test module or a conftest in `source`, wherever it stands (module
    level, inside a function, a multi-line import, relative forms, importlib, pytest_plugins)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if is_test_or_conftest(a.name)]
        elif isinstance(node, ast.ImportFrom):
            target = resolved(node, module, is_package)
            if is_test_or_conftest(target):
                found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import ... ({target})"))
            else:  # from tests.x import test_y / from . import conftest: the names are modules
                found += [(node.lineno, f"from {'.' * node.level}{node.module or ''} import {a.name} "
                                        f"({target}.{a.name})")
                          for a in node.names if is_test_or_conftest(a.name) and target.split(".")[0] == "tests"]
        elif isinstance(node, ast.Call):
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if function in IMPORTERS and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str) and is_test_or_conftest(node.args[0].value):
                found.append((node.lineno, f"{function}({node.args[0].value!r})"))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytest_plugins"
                                                  for t in node.targets):
            found += [(node.lineno, f"pytest_plugins names {c.value}") for c in ast.walk(node.value)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str) and is_test_or_conftest(c.value)]
    return sorted(found)


def python_files(tests: Path) -> Iterator[Path]:
    not_ours = [tests / p.relative_to(TESTS) for p in NOT_OURS]
    for path in sorted(tests.rglob("*.py")):
        if not any(place in path.parents for place in not_ours):
            yield path


def misplaced_helpers(tests: Path) -> list[Path]:
    """Python modules under `tests` that are neither tests, conftests nor package markers and are not in
    tests/support: helpers the tests share belong there."""
    return [path for path in python_files(tests)
            if not (path.name.startswith("test_") or path.name in ("conftest.py", "__init__.py"))
            and tests / "support" not in path.parents]


def test_no_module_imports_a_test_module_or_a_conftest():
    offences = [f"{path.relative_to(TESTS.parent)}:{line}: {what}"
                for path in python_files(TESTS)
                for line, what in offending_imports(path.read_text(), module=module_name(path, TESTS.parent),
                                                    is_package=path.name == "__init__.py", filename=str(path))]
    assert not offences, ("import the helper from tests/support (fixtures: the folder's conftest.py, or a "
                          "tests/support plugin in tests/conftest.py's pytest_plugins) instead of:\n"
                          + "\n".join(offences))


def test_every_helper_module_lives_in_tests_support():
    misplaced = [f"{path.relative_to(TESTS.parent)}:1" for path in misplaced_helpers(TESTS)]
    assert not misplaced, "helper modules outside tests/support (move them there):\n" + "\n".join(misplaced)


@pytest.mark.parametrize(("snippet", "module", "line"), [
    ("from tests.integration.test_consumer_runner import record\n", "tests.integration.test_x", 1),
    ("from tests.e2e.conftest import Pipeline, bearer\n", "tests.clients.test_x", 1),
    ("import tests.unit.test_timeline\n", "tests.unit.test_x", 1),
    ("import os\nfrom tests.clients.conftest import (\n    GROUP_NAME,\n    NODE_DIR,\n)\n", "tests.clients.test_x", 2),
    ("def f():\n    from tests.integration.test_consumer_runner import record\n", "tests.integration.test_x", 2),
    ("from tests.integration import test_analytics_sql\n", "tests.integration.test_x", 1),
    ("from .test_timeline import T0, orders_on\n", "tests.unit.test_x", 1),
    ("from . import conftest\n", "tests.e2e.test_x", 1),
    ("from ..e2e.conftest import bearer\n", "tests.clients.test_x", 1),
    ("from .conftest import running\n", "tests.integration.helper", 1),
    ("from conftest import running\n", "tests.integration.test_x", 1),
    ("import importlib\nhelpers = importlib.import_module('tests.integration.test_ingest_api')\n",
     "tests.integration.test_x", 2),
    ("pytest_plugins = ['tests.e2e.conftest']\n", "tests.conftest", 1),
])
def test_the_detector_flags_an_import_of_a_test_module_or_a_conftest(snippet, module, line):
    assert [found_line for found_line, _ in offending_imports(snippet, module=module)] == [line]


@pytest.mark.parametrize("snippet", [
    "from tests.support.kafka_records import record\n",
    "from tests.support import shops\n",
    "import tests.support.stage_engine\n",
    "from lifecycle_shared.testing import eventually, read_topic\n",
    "from .support.browser import static_site\n",
    "pytest_plugins = ['tests.support.mail_sink']\n",
])
def test_the_detector_lets_helpers_and_libraries_be_imported(snippet):
    assert offending_imports(snippet, module="tests.test_x") == []


def test_the_detector_flags_a_helper_module_outside_tests_support(tmp_path):
    tests = tmp_path / "tests"
    for name in ("__init__.py", "conftest.py", "integration/__init__.py", "integration/conftest.py",
                 "integration/test_stage.py", "integration/stage_support.py", "clients/capture.py",
                 "support/__init__.py", "support/stage_engine.py", "clients/node/send-events.js",
                 "clients/node/node_modules/node-gyp/gyp/pylib/gyp/common.py", "data/cdnow_summary.csv"):
        (tests / name).parent.mkdir(parents=True, exist_ok=True)
        (tests / name).write_text("")
    assert misplaced_helpers(tests) == [tests / "clients/capture.py", tests / "integration/stage_support.py"]
