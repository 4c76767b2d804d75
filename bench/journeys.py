"""The knee phase's workload: storefront journeys, interleaved, as /v1/batch bodies due at an offered rate.

A journey is one visitor's touchpoints in order. Most visitors arrive anonymous (an `anonymousId`) and
most of those only browse; the ones who sign up send "Signed Up" with both ids and an email trait (the
stage engine merges the anonymous profile into the user's, messaging releases the messages that waited
for an address, loyalty links the ids) and from then on send as the user; returning customers are known
from their first event (a `userId`: no merge). Buyers order, a few refund the order. The weights give
about 4% sign-ups and 3% orders among the events (a shop converting a few percent of its visitors).

About `gap_s` apart per visitor on average: `rate * gap_s` journeys are under way at once, and each
next event goes to one of them at random (a journey that ends is replaced by a new visitor).
Events go out in requests of `rate * flush_s` events (at least one), as a server-side source that
flushes its queue every `flush_s` would send them; request i is due at i * size / rate.

No `timestamp`: ingest dates each event when it receives it (what a live storefront's clock says).
Built before the step starts; the load generator then only sends.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

# (journey, weight, its touchpoints in order); "returning" journeys are known (a userId) from the start.
JOURNEYS = (
    ("browse", 62, ("page", "Product Viewed", "Product Viewed", "page")),
    ("returning_browse", 15, ("page", "Product Viewed", "Product Added", "page")),
    ("sign_up", 10, ("page", "Product Viewed", "Signed Up", "Product Viewed")),
    ("sign_up_and_buy", 6, ("page", "Product Viewed", "Signed Up", "Product Added", "Order Completed")),
    ("returning_buy", 6, ("page", "Product Viewed", "Product Added", "Order Completed")),
    ("buy_and_refund", 1, ("page", "Product Viewed", "Signed Up", "Product Added", "Order Completed",
                           "Order Refunded")),
)
CATEGORIES = ("tees", "hoodies", "caps", "socks", "mugs")


@dataclass
class Request:
    due_s: float  # after the step's start
    body: bytes
    message_ids: list[str]


@dataclass
class _Visitor:
    anonymous_id: str
    steps: tuple[str, ...]
    user_id: str | None = None
    order_id: str | None = None
    done: int = 0


def _event(kind: str, visitor: _Visitor, rng: random.Random) -> dict:
    ids = {"userId": visitor.user_id} if visitor.user_id else {"anonymousId": visitor.anonymous_id}
    base = {"messageId": str(uuid.uuid4()), **ids}  # never a seed's: ingest and the inboxes drop a repeat
    sku = f"SKU-{rng.randrange(500):04d}"
    if kind == "page":
        path = rng.choice(("/", "/sale", *(f"/c/{c}" for c in CATEGORIES)))
        return {"type": "page", "name": path.strip("/") or "Home", **base,
                "properties": {"path": path, "title": "Shop"}}
    if kind == "Signed Up":
        visitor.user_id = f"knee-user-{visitor.anonymous_id.removeprefix('knee-anon-')}"
        return {"type": "track", "event": kind, **base, "anonymousId": visitor.anonymous_id,
                "userId": visitor.user_id,
                "context": {"traits": {"email": f"{visitor.user_id}@example.com", "firstName": "Bench"}}}
    if kind == "Order Completed":
        visitor.order_id = f"o-{uuid.uuid4()}"
        price = round(rng.uniform(5, 120), 2)
        return {"type": "track", "event": kind, **base, "properties": {
            "order_id": visitor.order_id, "revenue": price, "currency": "EUR",
            "products": [{"sku": sku, "quantity": 1, "price": price}]}}
    if kind == "Order Refunded":
        return {"type": "track", "event": kind, **base, "properties": {"order_id": visitor.order_id}}
    category = rng.choice(CATEGORIES)
    return {"type": "track", "event": kind, **base,
            "properties": {"product_id": sku.lower(), "sku": sku, "category": category,
                           "price": round(rng.uniform(5, 120), 2), "currency": "EUR"}}


def events(count: int, *, rate: float, gap_s: float, run: str, rng: random.Random) -> Iterator[dict]:
    """`count` touchpoints of interleaved journeys, in the order they are to be sent."""
    journeys = [(name, steps) for name, _, steps in JOURNEYS]
    weights = [weight for _, weight, _ in JOURNEYS]
    born = [0]

    def newcomer() -> _Visitor:
        born[0] += 1
        name, steps = rng.choices(journeys, weights)[0]
        visitor = _Visitor(f"knee-anon-{run}-{born[0]:07d}", steps)
        if name.startswith("returning"):
            visitor.user_id = f"knee-user-{run}-{born[0]:07d}"
        return visitor

    active = [newcomer() for _ in range(max(1, round(rate * gap_s)))]
    for _ in range(count):
        slot = rng.randrange(len(active))
        visitor = active[slot]
        yield _event(visitor.steps[visitor.done], visitor, rng)
        visitor.done += 1
        if visitor.done == len(visitor.steps):
            active[slot] = newcomer()


def requests(rate: float, duration_s: float, *, flush_s: float, gap_s: float, run: str, seed: int = 7
             ) -> tuple[list[Request], dict]:
    """The step's requests, and what they hold (events per kind, per request, journeys started)."""
    rng = random.Random(seed)
    size = max(1, round(rate * flush_s))
    count = int(rate * duration_s)
    touchpoints = events(count, rate=rate, gap_s=gap_s, run=run, rng=rng)
    context = {"library": {"name": "bench-knee", "version": "1"}, "locale": "en-GB"}
    out, kinds = [], Counter()
    for first in range(0, count, size):  # serialised a request at a time: only the bodies stay in memory
        chunk = list(islice(touchpoints, size))
        kinds.update(e.get("event") or e["type"] for e in chunk)
        body = json.dumps({"batch": chunk, "context": context}, separators=(",", ":")).encode()
        out.append(Request(first / rate, body, [e["messageId"] for e in chunk]))
    return out, {"events": count, "events_per_request": size, "requests": len(out),
                 "kinds": dict(kinds.most_common()),
                 "bytes_per_event": round(sum(len(r.body) for r in out) / max(1, count))}
