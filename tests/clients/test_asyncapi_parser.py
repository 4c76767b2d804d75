"""docs/asyncapi.json in AsyncAPI's own parser (npm @asyncapi/parser, installed from the lock file in
tests/clients/node): the document loads with no error diagnostic, every `$ref` resolved, and the nested
models pydantic generates (TransitionRecord in a history correction's `added`) are where the document's
references point. The JSON Schema side of the same document: tests/unit/test_contracts.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from lifecycle_shared.topics import Topics

from tests.support.client_libraries import NODE_DIR

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
ERROR = 0  # the parser's DiagnosticSeverity: 0 error, 1 warning, 2 information, 3 hint


def parse(node_modules: Path, document: Path) -> dict:
    """What @asyncapi/parser reported on `document` (parse-asyncapi.js)."""
    node = shutil.which("node")
    assert node, "Node.js 20+ is needed for @asyncapi/parser"
    assert (node_modules / "@asyncapi" / "parser").is_dir()
    result = subprocess.run([node, "parse-asyncapi.js", str(document)], cwd=NODE_DIR, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip(), f"node failed: {result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_asyncapi_document_loads_in_asyncapis_own_parser(node_modules):
    report = parse(node_modules, DOCUMENT)
    errors = [d for d in report["diagnostics"] if d["severity"] == ERROR]
    assert errors == [], json.dumps(errors, indent=2)
    assert report["document"] and report["version"] == "3.0.0", report
    assert set(report["channels"]) == set(Topics().all_with_dlq()), report["channels"]
    # The model pydantic nests in HistoryCorrectedData is a component, resolved where `added` refers to it.
    assert "TransitionRecord" in report["schemas"], report["schemas"]
    assert report["historyAddedItems"]["title"] == "TransitionRecord"
    assert "to_stage" in report["historyAddedItems"]["required"]


def test_the_parser_reports_a_reference_to_nested_defs_as_an_error(node_modules, tmp_path):
    """What the test above guards against: a `$ref` into a `$defs` inside a schema (pydantic's default)."""
    document = json.loads(DOCUMENT.read_text())
    history = document["components"]["schemas"]["HistoryCorrectedData"]
    history["$defs"] = {"TransitionRecord": document["components"]["schemas"].pop("TransitionRecord")}
    history["properties"]["added"]["items"] = {"$ref": "#/$defs/TransitionRecord"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(document))
    report = parse(node_modules, broken)
    assert [d["code"] for d in report["diagnostics"] if d["severity"] == ERROR] == ["invalid-ref"], report
