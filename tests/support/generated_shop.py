"""A generated shop: customers from three sources, orders over fourteen months, refunds, reviews, as
touchpoints in any arrival order; its data end at NOW."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tests.support.stage_engine import ev

NOW = datetime(2026, 3, 1, tzinfo=UTC)
START = NOW - timedelta(days=430)
SOURCES = ("google", "newsletter", None)


def shop(seed: int = 11, customers: int = 90) -> list:
    rng = random.Random(seed)
    events = []
    for n in range(customers):
        user, source = f"an-{seed}-{n}", SOURCES[n % 3]
        first = START + timedelta(days=rng.uniform(0, 380), hours=rng.uniform(0, 23))
        context = {"campaign": {"source": source, "medium": "cpc"}} if source else {}
        events.append(ev("page", first, userId=user, context=context))
        if rng.random() < 0.25:
            continue  # a visitor who never buys
        if rng.random() < 0.5:
            events.append(ev("track", first + timedelta(hours=1), event="Product Added", userId=user))
        at = first + timedelta(hours=2)
        for k in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
            if at >= NOW:
                break
            amount = round(rng.uniform(5, 200), 2)
            props = {"order_id": f"{user}-o{k}", "revenue": amount}
            if rng.random() < 0.7:
                props["cost"] = round(amount * 0.6, 2)
            events.append(ev("track", at, event="Order Completed", userId=user, properties=props))
            if rng.random() < 0.08:
                events.append(ev("track", at + timedelta(days=3), event="Order Refunded", userId=user,
                                 properties={"order_id": f"{user}-o{k}"}))
            if k == 1 and rng.random() < 0.5:
                events.append(ev("track", at + timedelta(days=1), event="Product Reviewed", userId=user,
                                 properties={"rating": 5}))
            at += timedelta(days=rng.uniform(5, 120))
    rng.shuffle(events)  # any arrival order
    return events
