"""The demo shop (`python3 dev.py demo`): deterministic, in time order within its window, every event one
ingest accepts, and a shop whose customers reach every stage of the journey. Pure, no I/O."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from lifecycle_devstack.demo import generate
from lifecycle_ingest.api.deps import Caller
from lifecycle_ingest.api.receive import MAX_ENVELOPE_DEPTH, accept_batch, batch_envelope
from lifecycle_ingest.domain.imports import encoded, prepared
from lifecycle_ingest.domain.json_values import parse_checked
from lifecycle_ingest.importer import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, Line, batches
from lifecycle_ingest.keys import ApiKey
from lifecycle_ingest.settings import IngestSettings
from lifecycle_shared.events import snake_name
from lifecycle_stage_engine.domain.stages import Stage, Touch, decide_stage, fold_history

END = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
YEARS = 2.0


@pytest.fixture(scope="module")
def shop() -> list[dict]:
    return list(generate(3000, years=YEARS, end=END, seed=7))


def person(call: dict) -> str:
    """The visitor a call is about (their anonymous and user ids share a prefix)."""
    return str(call.get("anonymousId") or call["userId"]).rsplit("-", 1)[0]


def events(shop: list[dict], name: str) -> list[dict]:
    return [call for call in shop if call.get("event") == name]


def orders_by_person(shop: list[dict]) -> Counter:
    return Counter(person(call) for call in events(shop, "Order Completed"))


def test_the_same_seed_gives_the_same_shop_and_another_seed_another():
    first = list(generate(150, end=END, seed=3))
    assert first == list(generate(150, end=END, seed=3))
    assert first != list(generate(150, end=END, seed=4))
    # Each visitor has their own draws: a smaller shop is the larger one's first visitors.
    smaller = {call["messageId"] for call in generate(60, end=END, seed=3)}
    assert smaller == {call["messageId"] for call in first if int(person(call).rsplit("-", 1)[1]) < 60}


def test_events_are_in_timestamp_order_within_the_window(shop):
    times = [datetime.fromisoformat(call["timestamp"]) for call in shop]
    assert all(call["timestamp"].endswith("Z") for call in shop)
    assert times == sorted(times)
    assert END - timedelta(days=365.25 * YEARS) <= times[0] and times[-1] <= END
    assert times[-1] - times[0] > timedelta(days=700)  # the whole window is used


def test_every_event_is_one_ingest_accepts_in_the_batches_the_importer_sends(shop):
    """Through ingest's own batch handling (what /v1/import runs for a server key): nothing refused."""
    caller = Caller(key=ApiKey("k1", "demo-shop", "server", frozenset(), None), key_text="lc_sk_demo", headers={})
    max_record_bytes = IngestSettings.model_fields["max_record_bytes"].default
    lines = [Line(number, encoded(prepared(call))) for number, call in enumerate(shop, start=1)]
    assert max(len(line.body) for line in lines) < min(1024, MAX_EVENT_BYTES)  # small events
    accepted = 0
    for batch in batches(lines, max_events=MAX_BATCH_EVENTS):
        assert isinstance(batch, list)
        body = b'{"batch":[' + b",".join(line.body for line in batch) + b"]}"
        assert len(body) <= MAX_BATCH_BYTES
        parsed, storable = parse_checked(body, max_depth=MAX_ENVELOPE_DEPTH)
        items, context, sent_at = batch_envelope(parsed, max_events=MAX_BATCH_EVENTS, storable=storable,
                                                 max_context_bytes=MAX_EVENT_BYTES)
        records, rejected = accept_batch(items, caller, max_record_bytes=max_record_bytes, storable=storable,
                                         context=context, sent_at=sent_at, historical=True)
        assert rejected == []
        accepted += len(records)
    assert accepted == len(shop)


def test_ids_are_unique_and_refunds_follow_an_order_of_the_same_customer(shop):
    assert len({call["messageId"] for call in shop}) == len(shop)
    orders = {call["properties"]["order_id"]: call for call in events(shop, "Order Completed")}
    assert len(orders) == len(events(shop, "Order Completed"))
    refunds = events(shop, "Order Refunded")
    assert 0.015 < len(refunds) / len(orders) < 0.045
    for refund in refunds:
        order = orders[refund["properties"]["order_id"]]
        assert order["userId"] == refund["userId"] and order["timestamp"] < refund["timestamp"]


def test_orders_have_margins_and_their_products_add_up(shop):
    for order in events(shop, "Order Completed"):
        properties = order["properties"]
        assert properties["currency"] == "USD" and properties["revenue"] > 0
        assert 0.55 * properties["revenue"] - 0.01 <= properties["cost"] <= 0.70 * properties["revenue"] + 0.01
        assert properties["revenue"] == round(sum(p["price"] * p["quantity"] for p in properties["products"]), 2)


def test_visitors_arrive_through_campaigns_referrals_and_search(shop):
    first_pages = {}
    for call in shop:
        first_pages.setdefault(person(call), call)
    assert all(call["type"] == "page" for call in first_pages.values())
    channels = Counter(call["context"].get("campaign", {}).get("medium")
                       or ("referral" if "referrer" in call["context"] else "organic") for call in first_pages.values())
    assert set(channels) == {"cpc", "social", "email", "referral", "organic"}
    assert all(count > 0.05 * len(first_pages) for count in channels.values())
    identified = events(shop, "Signed Up")
    assert all(call["userId"].endswith("-user") for call in identified)
    assert all(call["traits"]["email"].endswith("@example.com") for call in shop if call["type"] == "identify")


def test_the_shop_has_customers_at_every_stage_of_the_journey(shop):
    visitors = {person(call) for call in shop}
    orders = orders_by_person(shop)
    assert 0.30 <= 1 - len(orders) / len(visitors) <= 0.40  # visitors who never buy
    assert sum(1 for n in orders.values() if n == 1) > 0.4 * len(orders)  # most buy once...
    assert sum(1 for n in orders.values() if n >= 3) > 0.1 * len(orders)  # ...some often
    last_order = {person(call): datetime.fromisoformat(call["timestamp"]) for call in events(shop, "Order Completed")}
    assert sum(1 for time in last_order.values() if time < END - timedelta(days=180)) > 0.1 * len(orders)
    assert events(shop, "Product Reviewed") and events(shop, "Referral Sent")
    # The stage engine's own rules over each visitor's history, as of `end`: every stage is reached.
    touches = defaultdict(list)
    for call in shop:
        name = snake_name(call["event"]) if call["type"] == "track" else f"{call['type']}_viewed"
        touches[person(call)].append(Touch(call["messageId"], name, datetime.fromisoformat(call["timestamp"]),
                                           call.get("properties", {})))
    stages = Counter(decide_stage(fold_history(history), at=END)[0] for history in touches.values())
    assert set(stages) == set(Stage)
    assert min(stages.values()) > 0.03 * len(visitors)
