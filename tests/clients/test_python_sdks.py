"""segment-analytics-python and rudder-sdk-python, unchanged but for their host, against ingest: every call
type, plain and gzip, batched as they batch in production; nothing reported as an error, every event on
the touchpoints topic, and the customer's profile shows them (the person's traits, never the group's)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import rudderstack.analytics.request
import segment.analytics.request
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from tests.support.client_libraries import GROUP_NAME, PERSON_NAME, assert_person_profile, profile_when, published

LIBRARIES = {"segment": SegmentClient, "rudder": RudderClient}
# Each library posts through one module-level requests.Session: a response hook on it sees every answer.
SESSIONS = {"segment": segment.analytics.request._session, "rudder": rudderstack.analytics.request._session}


def drive(library: str, *, host: str, key: str, gzip: bool, user: str, visitor: str
          ) -> tuple[list, list[tuple[int, str]], dict[str, dict]]:
    """Every call type through the library's queue and consumer thread, batched as in production;
    (errors the library reported, every (status, body) ingest answered, messages sent by messageId)."""
    errors: list = []
    answers: list[tuple[int, str]] = []

    def answered(response, *args, **kwargs) -> None:
        answers.append((response.status_code, response.text))

    hooks = SESSIONS[library].hooks["response"]
    hooks.append(answered)
    client = LIBRARIES[library](write_key=key, host=host, gzip=gzip, max_retries=1, upload_interval=0.1,
                                on_error=lambda error, batch: errors.append((repr(error), batch)))
    sent: dict[str, dict] = {}

    def keep(result) -> None:
        queued, message = result
        assert queued, message
        sent[message["messageId"]] = message

    keep(client.page(anonymous_id=visitor, name="Home", properties={"path": "/"}))  # category: null on the wire
    keep(client.page(anonymous_id=visitor, category="Docs", name="Sizing", properties={"path": "/docs/sizing"}))
    keep(client.track(anonymous_id=visitor, event="Product Viewed", properties={"sku": "TEE-1", "price": 19.5}))
    keep(client.alias(previous_id=visitor, user_id=user))
    keep(client.identify(user_id=user, anonymous_id=visitor, traits={"email": f"{user}@example.com",
                                                                     "name": PERSON_NAME}))
    keep(client.group(user_id=user, group_id=f"{user}-company", traits={"name": GROUP_NAME, "employees": 40}))
    keep(client.screen(user_id=user, category="Checkout", name="Cart", properties={"items": 1}))
    keep(client.track(user_id=user, event="Order Completed",
                      properties={"order_id": f"{user}-o1", "revenue": 42.5, "currency": "USD"}))
    try:
        client.flush()
        client.join()
    finally:
        hooks.remove(answered)
    return errors, answers, sent


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("library", sorted(LIBRARIES))
async def test_library_events_reach_the_profile(clients_stack, server_key, library, gzip):
    user, visitor = f"py-{library}-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4().hex[:10]}"
    errors, answers, sent = await asyncio.to_thread(drive, library, host=clients_stack.url("ingest"), key=server_key,
                                           gzip=gzip, user=user, visitor=visitor)
    assert errors == [], f"{library} reported errors: {errors}"
    assert answers and all(status == 200 for status, _ in answers), answers
    assert all(json.loads(body).get("rejected") in (None, []) for _, body in answers), answers
    assert len(sent) == 8

    touchpoints = (await published(clients_stack, set(sent))).by_message_id
    for message_id, message in sent.items():
        touchpoint = touchpoints[message_id]
        assert touchpoint["type"] == message["type"]
        if message["type"] in ("page", "screen"):
            assert touchpoint.get("category") == message["category"], touchpoint  # null carried as null
            assert touchpoint["name"] == message["name"]
        if message["type"] == "group":
            assert touchpoint["traits"]["name"] == GROUP_NAME and touchpoint["groupId"] == f"{user}-company"

    profile = await profile_when(clients_stack, user, lambda p: p["orders"] == 1 and p["traits"].get("email"),
                                 what=f"{user}'s order and traits")
    assert_person_profile(profile, user_id=user, anonymous_id=visitor, email=f"{user}@example.com",
                          stage="purchase", orders=1, revenue=42.5)
    # The visitor's id leads to the same customer.
    merged = await profile_when(clients_stack, visitor, lambda p: p["customer_id"] == user, what="the merge")
    assert merged["customer_id"] == user
