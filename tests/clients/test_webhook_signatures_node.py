"""Our webhook signatures in npm's `standardwebhooks` (installed from the lock file in tests/clients/node),
unmodified: a delivery's headers and body as the worker builds them verify with the endpoint's secret, both
secrets of a rotation verify the same request, and a changed body or another secret does not."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from lifecycle_messaging.domain.webhooks import new_secret, payload
from lifecycle_messaging.workers.webhooks import headers_for

from tests.support.client_libraries import NODE_DIR


def verify_in_node(node_modules: Path, secrets: list[str], requests: list[tuple[dict, bytes]]) -> list[list[dict]]:
    node = shutil.which("node")
    assert node and (node_modules / "standardwebhooks").is_dir()
    document = {"secrets": secrets, "requests": [{"headers": headers, "body_b64": base64.b64encode(body).decode()}
                                                 for headers, body in requests]}
    result = subprocess.run([node, "verify-webhooks.js"], cwd=NODE_DIR, input=json.dumps(document),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_npm_standardwebhooks_verifies_our_deliveries_and_both_secrets_of_a_rotation(node_modules):
    now = datetime.now(UTC)  # the library checks the timestamp against its own clock
    new, old, other = (new_secret(bytes([n]) * 32) for n in (1, 2, 3))
    body = payload("lifecycle.stage_changed", now, {"customer_id": "ann", "to_stage": "purchase",
                                                    "traits": {"firstName": "Zoë"}})
    delivery = SimpleNamespace(webhook_id="msg_node", payload=body)
    single = headers_for(SimpleNamespace(secret=new, previous_secret=None, previous_secret_until=None), delivery, now)
    rotating = headers_for(SimpleNamespace(secret=new, previous_secret=old, previous_secret_until=now.replace(
        year=now.year + 1)), delivery, now)
    results = verify_in_node(node_modules, [new, old, other],
                             [(single, body), (rotating, body), (single, body + b" ")])
    assert [r["verified"] for r in results[0]] == [True, False, False]
    assert [r["verified"] for r in results[1]] == [True, True, False]
    assert [r["verified"] for r in results[2]] == [False, False, False]
    assert results[0][0]["type"] == "lifecycle.stage_changed"
