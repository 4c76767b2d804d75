"""History comes in without messaging anyone about the past, and rules can be re-run over it.

A shop imports two years of a customer's orders with the import CLI (through ingest's /v1/import):
the stage engine records their whole journey - time-based stages included - flagged historical, and
messaging sends them nothing, while a live customer in the same run is welcomed (the control that
proves messaging was working). Then the operator dry-runs a new rule set over the stored history
(a report, nothing stored or sent), replays the rules in force (nothing differs, nothing doubled),
puts the new rules in force and replays them (the profile moves; still nobody messaged)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_shared.testing import eventually, make_touchpoint

from tests.support.pipeline import bearer


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def _replay(pipeline, client, body: dict) -> dict:
    url = pipeline.url("stage-engine") + "/v1/admin/replays"
    response = await client.post(url, json=body, headers=bearer(pipeline.admin_token))
    assert response.status_code == 202, response.text

    async def finished():
        job = (await client.get(f"{url}/{response.json()['id']}", headers=bearer(pipeline.admin_token))).json()
        return job if job["status"] == "done" else None

    return await eventually(finished, timeout_s=60, what="the replay to finish")


async def test_imported_history_is_recorded_and_never_messaged_and_rules_replay_over_it(pipeline, tmp_path):
    imported, live = f"imported-{uuid.uuid4().hex[:8]}", f"live-{uuid.uuid4().hex[:8]}"
    lines = [{"type": "identify", "userId": imported, "timestamp": ago(400.1),
              "traits": {"email": f"{imported}@example.com", "firstName": "Old"}},
             {"type": "track", "event": "Order Completed", "userId": imported, "timestamp": ago(400),
              "properties": {"order_id": "h-1", "revenue": 25}},
             {"type": "track", "event": "Order Completed", "userId": imported, "timestamp": ago(380),
              "properties": {"order_id": "h-2", "revenue": 35}}]
    await pipeline.import_history(lines, tmp_path)

    async with pipeline.client() as client:
        # The whole journey, in event time: the orders, then (20 days apart) at-risk at 40 days, lapsed at 80.
        history = await pipeline.transitions(client, imported, at_least=5)
        assert [t["to_stage"] for t in history] == ["awareness", "purchase", "retention", "at_risk", "lapsed"]
        assert all(t["historical"] for t in history)

        # The control: a live customer in the same run gets their welcome...
        response = await pipeline.send(client, make_touchpoint(
            type="identify", event=None, userId=live, anonymousId=None, traits={"email": f"{live}@example.com"}))
        assert response.status_code == 200, response.text
        await eventually(lambda: pipeline.get(client, "messaging", f"/v1/customers/{live}/messages"),
                         timeout_s=60, what="the live customer's welcome")
        # ...and, messaging being up to date, the imported customer has none: nobody is messaged about the past.
        messages = await client.get(pipeline.url("messaging") + f"/v1/customers/{imported}/messages",
                                    headers=bearer(pipeline.api_token))
        assert messages.status_code == 404 or messages.json() == [], messages.text
        assert not pipeline.mail.to(f"{imported}@example.com")

        # A dry run of rules that judge drift by a far longer rhythm: a report, nothing stored.
        patient = {"version": f"e2e-patient-{uuid.uuid4().hex[:6]}", "drift": {"at_risk_factor": 50,
                                                                                "lapsed_factor": 100}}
        report = (await _replay(pipeline, client, {"scope": {"customer_id": imported}, "dry_run": True,
                                                   "rules": patient}))["result"]
        assert report["moves"] == {"lapsed->retention": 1} and report["examples"] == {"lapsed->retention": [imported]}
        assert report["transitions_superseded"] == 2  # at-risk and lapsed would go
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{imported}")
        assert profile["stage"] == "lapsed"

        # A replay of the rules in force changes nothing and doubles nothing.
        report = (await _replay(pipeline, client, {"scope": {"customer_id": imported}, "dry_run": False}))["result"]
        assert (report["transitions_added"], report["transitions_superseded"], report["moves"]) == (0, 0, {})
        assert len(await pipeline.transitions(client, imported, at_least=5)) == 5

        # The new rules in force, replayed: the profile moves, the history follows; still no message.
        admin = bearer(pipeline.admin_token)
        rules_url = pipeline.url("stage-engine") + "/v1/admin/rules"
        default = (await client.get(rules_url, headers=admin)).json()
        assert (await client.put(rules_url, json=patient, headers=admin)).status_code == 200
        try:
            report = (await _replay(pipeline, client, {"scope": {"customer_id": imported}, "dry_run": False}))
            assert report["rule_version"] == patient["version"] and report["result"]["moves"] == {
                "lapsed->retention": 1}
            profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{imported}")
            assert profile["stage"] == "retention"
            history = await pipeline.get(client, "stage-engine", f"/v1/customers/{imported}/transitions")
            assert [t["to_stage"] for t in history] == ["awareness", "purchase", "retention"]
        finally:
            restored = await client.put(rules_url, json=default, headers=admin)
            assert restored.status_code == 200, restored.text
        await asyncio.sleep(2)  # what a replay emits is relayed at once; give messaging its chance to (wrongly) act
        messages = await client.get(pipeline.url("messaging") + f"/v1/customers/{imported}/messages",
                                    headers=bearer(pipeline.api_token))
        assert messages.status_code == 404 or messages.json() == [], messages.text
