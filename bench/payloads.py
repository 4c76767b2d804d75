"""What the benchmark sends: storefront bodies for ingest, CloudEvents for the backlog, raw values.

Built before the clock starts, so the load generator spends its CPU on sending, not on building.
Bodies follow the Segment spec the way a storefront's analytics.js sends them (about 400 bytes
for a single track call); backlog records are built exactly as ingest builds them (`normalise`
then `to_cloud_event`), so the stage engine sees what it sees in production.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_ingest.domain.touchpoints import normalise
from lifecycle_ingest.publisher import to_cloud_event

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
CATEGORIES = ("tees", "hoodies", "caps", "socks", "mugs")
# (event kind, weight): mostly browsing, some intent, a few orders.
MIX = (("page", 40), ("Product Viewed", 35), ("Product Added", 10), ("Checkout Started", 5),
       ("Order Completed", 10))


def customer_id(index: int) -> str:
    return f"cust-{index:06d}"


def _context(path: str) -> dict:
    return {"library": {"name": "analytics.js", "version": "5.2.0"}, "locale": "en-GB",
            "page": {"path": path, "url": "https://shop.example" + path}, "userAgent": USER_AGENT}


def storefront_event(kind: str, user: str, *, rng: random.Random, at: datetime) -> dict:
    """One Segment call (`page` or `track`) by `user` at `at`."""
    sku = f"SKU-{rng.randrange(500):04d}"
    category = rng.choice(CATEGORIES)
    base = {"userId": user, "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": at.isoformat()}
    if kind == "page":
        path = rng.choice(("/", f"/c/{category}", "/sale", "/about"))
        return {"type": "page", "name": path.strip("/") or "Home", **base,
                "properties": {"path": path, "title": "Shop", "referrer": "https://search.example/"},
                "context": _context(path)}
    if kind == "Order Completed":
        price = round(rng.uniform(5, 120), 2)
        properties = {"order_id": f"o-{uuid.UUID(int=rng.getrandbits(128))}", "revenue": price,
                      "currency": "EUR", "products": [{"sku": sku, "quantity": 1, "price": price}]}
        return {"type": "track", "event": kind, **base, "properties": properties,
                "context": _context("/checkout/done")}
    properties = {"product_id": sku.lower(), "sku": sku, "category": category, "name": f"{category} {sku}",
                  "price": round(rng.uniform(5, 120), 2), "currency": "EUR"}
    return {"type": "track", "event": kind, **base, "properties": properties,
            "context": _context(f"/p/{sku.lower()}")}


def _kinds(rng: random.Random, count: int, *, track_only: bool = False) -> list[str]:
    mix = [(k, w) for k, w in MIX if not (track_only and k == "page")]
    return rng.choices([k for k, _ in mix], weights=[w for _, w in mix], k=count)


def single_bodies(count: int, *, customers: int, seed: int = 1) -> list[bytes]:
    """Bodies for POST /v1/track (track calls only: the endpoint rejects other types)."""
    rng, now = random.Random(seed), datetime.now(UTC)
    return [json.dumps(storefront_event(kind, customer_id(rng.randrange(customers)), rng=rng, at=now),
                       separators=(",", ":")).encode()
            for kind in _kinds(rng, count, track_only=True)]


def batch_bodies(count: int, *, size: int, customers: int, seed: int = 2) -> list[bytes]:
    """Bodies for POST /v1/batch, `size` events each, as analytics.js flushes its queue."""
    rng, now = random.Random(seed), datetime.now(UTC)
    bodies = []
    for _ in range(count):
        events = [storefront_event(kind, customer_id(rng.randrange(customers)), rng=rng, at=now)
                  for kind in _kinds(rng, size)]
        for event in events:
            event.pop("context")  # shared context goes in the envelope, as Segment's batch does
        bodies.append(json.dumps({"batch": events, "sentAt": now.isoformat(), "context": _context("/")},
                                 separators=(",", ":")).encode())
    return bodies


def order_body(user: str, *, revenue: float, rng: random.Random) -> bytes:
    event = storefront_event("Order Completed", user, rng=rng, at=datetime.now(UTC))
    event["properties"]["revenue"] = revenue
    return json.dumps(event, separators=(",", ":")).encode()


def backlog_records(count: int, *, customers: int, source: str = "bench", seed: int = 3, first_customer: int = 0
                    ) -> list[tuple[bytes, bytes]]:
    """(key, value) records for the touchpoints topic, built like ingest builds them, by customers
    `first_customer` .. `first_customer + customers - 1`.

    Each customer's events get increasing timestamps, so the stage engine folds them in order.
    """
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=1)
    records = []
    for index, kind in enumerate(_kinds(rng, count)):
        at = start + timedelta(milliseconds=index)
        raw = storefront_event(kind, customer_id(first_customer + rng.randrange(customers)), rng=rng, at=at)
        event = to_cloud_event(normalise(raw, received_at=at), source=source)
        records.append((event.subject.encode(), event.to_bytes()))
    return records


def producer_values(keys: int, *, size: int = 400) -> list[tuple[bytes, bytes]]:
    """One (key, value) per customer: a JSON object padded to exactly `size` bytes."""
    pairs = []
    for index in range(keys):
        key = customer_id(index)
        head = json.dumps({"customer": key, "event": "Product Viewed", "sku": f"SKU-{index % 500:04d}",
                           "pad": ""}, separators=(",", ":"))
        value = head[:-2] + "x" * (size - len(head)) + '"}'
        pairs.append((key.encode(), value.encode()))
    assert all(len(v) == size for _, v in pairs)
    return pairs


def body_stats(bodies: list[bytes]) -> dict:
    sizes = sorted(len(b) for b in bodies)
    return {"count": len(bodies), "bytes_min": sizes[0], "bytes_median": sizes[len(sizes) // 2],
            "bytes_max": sizes[-1]}
