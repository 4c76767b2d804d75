"""The lifecycle moves both ways with time, end to end: a buyer whose days run out becomes at-risk,
then lapsed (the sweeper, no event), and buying again reactivates them - each with its message.
The clock is the services' own; the customers' orders are placed in the past (event time), which
is what makes their moments come: nothing in the test sleeps for days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_shared.testing import eventually, make_touchpoint


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


async def _templates(pipeline, client, customer: str, count: int) -> list[str]:
    async def enough():
        log = await pipeline.get(client, "messaging", f"/v1/customers/{customer}/messages")
        return [m["template"] for m in log] if log and len(log) >= count else None

    return await eventually(enough, timeout_s=60, what=f"{count} messages of {customer}")


async def test_a_buyer_drifts_to_at_risk_then_lapsed_and_buying_again_reactivates_them(pipeline):
    drifting, lapsing = f"user-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    async with pipeline.client() as client:
        for user, days in ((drifting, 100), (lapsing, 200)):
            ids = {"userId": user, "anonymousId": None}
            response = await pipeline.send(
                client,
                make_touchpoint(type="identify", event=None, timestamp=days_ago(days + 0.01),
                                traits={"email": f"{user}@example.com", "firstName": "Bo"}, **ids),
                make_touchpoint(event="Order Completed", timestamp=days_ago(days),
                                properties={"order_id": f"{user}-o1", "revenue": 30}, **ids))
            assert response.status_code == 200, response.text

        # 100 days after a one-time buyer's order (at-risk after 90): the sweeper moved them, at day 90.
        moved = await pipeline.transitions(client, drifting, at_least=3)
        assert [(t["from_stage"], t["to_stage"], t["reason"]) for t in moved] == [
            (None, "awareness", "first_touchpoint"), ("awareness", "purchase", "first_order"),
            ("purchase", "at_risk", "no_order_days")]
        order_time = datetime.fromisoformat(moved[1]["event_time"])
        assert datetime.fromisoformat(moved[2]["event_time"]) == order_time + timedelta(days=90)
        assert moved[2]["cause_event_ids"] == moved[1]["cause_event_ids"]  # the order whose days ran out

        # 200 days: at-risk at day 90, lapsed at day 180.
        lapsed = await pipeline.transitions(client, lapsing, at_least=4)
        assert [t["to_stage"] for t in lapsed] == ["awareness", "purchase", "at_risk", "lapsed"]

        # Buying again brings them back: a reactivation, to retention (their second order).
        response = await pipeline.send(client, make_touchpoint(
            event="Order Completed", userId=lapsing, anonymousId=None,
            properties={"order_id": f"{lapsing}-o2", "revenue": 20}))
        assert response.status_code == 200, response.text
        back = await pipeline.transitions(client, lapsing, at_least=5)
        assert (back[-1]["from_stage"], back[-1]["to_stage"], back[-1]["reason"]) == (
            "lapsed", "retention", "reactivated")
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{lapsing}")
        assert (profile["stage"], profile["previous_stage"], profile["orders"]) == ("retention", "lapsed", 2)
        assert profile["show"] == "member_offers"

        # Each move has its message: a come-back offer when at risk, a welcome back on return (and the first
        # order's feedback request, long stale, beside its thank-you).
        assert "come_back_offer" in await _templates(pipeline, client, drifting, 4)
        templates = await _templates(pipeline, client, lapsing, 6)
        assert {"come_back_offer", "we_miss_you", "welcome_back"} <= set(templates)
        assert "retention_offer" not in templates  # a return is welcomed back, not treated as a new repeat buyer
