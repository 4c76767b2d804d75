"""Identity every service follows, end to end: a guest's order earns points that move to the
account they sign up with (and a refund takes them back there); a person who reached loyalty on
two devices, as a guest and as a member, is paid the loyalty bonus once when the two are joined."""

from __future__ import annotations

import uuid

from lifecycle_shared.testing import eventually, make_touchpoint


async def _balance(pipeline, client, customer: str, expected: int):
    async def settled():
        balance = await pipeline.get(client, "loyalty", f"/v1/customers/{customer}/balance")
        return balance if balance and balance["balance"] == expected else None

    return await eventually(settled, timeout_s=60, what=f"{customer}'s balance of {expected}")


async def _stage(pipeline, client, customer: str, stage: str):
    async def reached():
        profile = await pipeline.get(client, "stage-engine", f"/v1/customers/{customer}")
        return profile if profile and profile["stage"] == stage else None

    return await eventually(reached, timeout_s=60, what=f"{customer} in {stage}")


async def _send(pipeline, client, *events) -> None:
    response = await pipeline.send(client, *events)
    assert response.status_code == 200, response.text


async def test_a_guests_points_follow_them_to_their_account_and_a_refund_reverses_them(pipeline):
    guest, user = f"guest-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    async with pipeline.client() as client:
        await _send(pipeline, client, make_touchpoint(event="Order Completed", anonymousId=guest,
                                                      properties={"order_id": f"{guest}-o1", "revenue": 80}))
        await _balance(pipeline, client, guest, 80)
        await _send(pipeline, client, make_touchpoint(type="identify", event=None, userId=user, anonymousId=guest,
                                                      traits={"email": f"{user}@example.com"}))
        balance = await _balance(pipeline, client, user, 80)  # the account's balance includes the guest order
        assert balance["customer_id"] == user
        ledger = await pipeline.get(client, "loyalty", f"/v1/customers/{user}/ledger")
        assert [e["order_id"] for e in ledger if e["points"] > 0] == [f"{guest}-o1"]

        # The shop refunds the order, now naming the account: exactly its points come back off.
        await _send(pipeline, client, make_touchpoint(event="Order Refunded", userId=user, anonymousId=None,
                                                      properties={"order_id": f"{guest}-o1"}))
        await _balance(pipeline, client, user, 0)
        profile = await _stage(pipeline, client, guest, "consideration")  # the guest id finds the account
        assert profile["customer_id"] == user and profile["orders"] == 0


async def test_the_loyalty_bonus_is_paid_once_per_person_across_a_merge(pipeline):
    guest, user = f"guest-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    async with pipeline.client() as client:
        # The member reaches loyalty on their laptop...
        await _send(pipeline, client, *_loyal_journey(f"{user}-", 10, userId=user, anonymousId=None))
        await _stage(pipeline, client, user, "loyalty")
        # ...and, before signing in there, as a guest on their phone.
        await _send(pipeline, client, *_loyal_journey(f"{guest}-", 5, anonymousId=guest))
        await _stage(pipeline, client, guest, "loyalty")
        await _balance(pipeline, client, user, 20 + 500)
        await _balance(pipeline, client, guest, 10 + 500)
        # Signing in on the phone joins the two: one person, four orders, one bonus.
        await _send(pipeline, client, make_touchpoint(type="identify", event=None, userId=user, anonymousId=guest))
        await _balance(pipeline, client, user, 20 + 10 + 500)
        profile = await _stage(pipeline, client, guest, "loyalty")
        assert (profile["customer_id"], profile["orders"]) == (user, 4)


def _loyal_journey(order_prefix: str, revenue: int, **ids) -> list[dict]:
    """Two orders and a referral: loyalty."""
    return [make_touchpoint(event="Order Completed", properties={"order_id": f"{order_prefix}1", "revenue": revenue},
                            **ids),
            make_touchpoint(event="Order Completed", properties={"order_id": f"{order_prefix}2", "revenue": revenue},
                            **ids),
            make_touchpoint(event="Referral Sent", **ids)]
