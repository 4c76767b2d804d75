"""An anonymous visitor browses, signs up, buys, buys again and refers a friend: the five
transitions arrive in order, one email per stage they stand in when it goes out reaches the SMTP
server (the welcome, overtaken before they gave an address, is suppressed), points are right."""

from __future__ import annotations

import uuid

from lifecycle_shared.testing import eventually, make_touchpoint

STAGES = ["awareness", "consideration", "purchase", "retention", "loyalty"]
TEMPLATES = ["welcome", "consideration_nudge", "thank_you_feedback", "retention_offer", "referral_invite"]


async def _step(pipeline, client, event: dict, *, customer: str, expect_stage: str) -> None:
    response = await pipeline.send(client, event)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1

    async def stage_reached():
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}")
        return profile if profile and profile["stage"] == expect_stage else None

    await eventually(stage_reached, what=f"{customer} in stage {expect_stage}")


async def test_anonymous_visitor_becomes_a_loyal_advocate(pipeline):
    visitor, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    email = f"{user}@example.com"
    async with pipeline.client() as client:
        await _step(pipeline, client, make_touchpoint(type="page", event=None, name="Home", anonymousId=visitor),
                    customer=visitor, expect_stage="awareness")
        await _step(pipeline, client, make_touchpoint(event="Product Viewed", anonymousId=visitor,
                                                      properties={"sku": "TEE-1"}),
                    customer=visitor, expect_stage="consideration")

        async def both_waiting():  # messaging has both transitions before the address comes (another topic)
            log = await pipeline.get(client, "messaging", f"/v1/customers/{visitor}/messages")
            return log if log and len(log) == 2 else None

        await eventually(both_waiting, what="the visitor's two messages waiting for an address")
        await _step(pipeline, client, make_touchpoint(
            event="Signed Up", anonymousId=visitor, userId=user,
            context={"traits": {"email": email, "firstName": "Ann"}}), customer=user, expect_stage="consideration")
        # Signing up gives an address: the nudge that waited for it goes out now. The welcome waited too,
        # but the visitor had moved on to consideration before it could leave: it is not sent.
        early = await eventually(lambda: _emails(pipeline, email, count=1), what="the email waiting for an address")
        assert [m["X-Lifecycle-Template"] for m in early] == TEMPLATES[1:2]
        # From here on each email goes out before the customer's next move (they live their journey).
        await _step(pipeline, client, make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                                                      properties={"order_id": "o-1", "revenue": 42.50}),
                    customer=user, expect_stage="purchase")
        await eventually(lambda: _emails(pipeline, email, count=2), what="the thank-you")
        await _step(pipeline, client, make_touchpoint(event="Order Completed", userId=user, anonymousId=None,
                                                      properties={"order_id": "o-2", "revenue": 19.99}),
                    customer=user, expect_stage="retention")
        await eventually(lambda: _emails(pipeline, email, count=3), what="the retention offer")
        await _step(pipeline, client, make_touchpoint(event="Referral Sent", userId=user, anonymousId=None,
                                                      properties={"referee_email": "friend@example.com"}),
                    customer=user, expect_stage="loyalty")

        transitions = await pipeline.get(client, "stage-engine", f"/v1/customers/{user}/transitions")
        assert [t["to_stage"] for t in transitions] == STAGES
        assert [t["from_stage"] for t in transitions] == [None, *STAGES[:-1]]
        assert all(len(t["cause_event_ids"]) == 1 for t in transitions)

        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{visitor}")
        assert profile["customer_id"] == user and profile["anonymous_ids"] == [visitor]

        # 42 + 19 points for the orders, 500 for reaching loyalty.
        async def balance_settled():
            balance = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/balance")
            return balance if balance and balance["entries"] == 3 else None

        balance = await eventually(balance_settled, what="three ledger entries")
        assert balance["balance"] == 42 + 19 + 500

        emails = await eventually(lambda: _emails(pipeline, email, count=4), what="four emails")
        assert [m["X-Lifecycle-Template"] for m in emails] == TEMPLATES[1:]
        assert "Ann" in emails[1]["Subject"]

        # The feedback request the first order started waits three days: the repeat order came first.
        log = await pipeline.get(client, "messaging", f"/v1/customers/{user}/messages")
        assert sorted((m["template"], m["status"], m["suppressed_reason"]) for m in log) == sorted([
            ("welcome", "suppressed", "superseded"), ("feedback_request", "suppressed", "superseded"),
            *((t, "sent", None) for t in TEMPLATES[1:])])


async def _emails(pipeline, address: str, *, count: int):
    received = pipeline.mail.to(address)
    return received if len(received) >= count else None
