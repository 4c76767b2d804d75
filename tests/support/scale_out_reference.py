"""The scale-out tests' stream and their checker, written without the services' code.

`stream` makes a shop's traffic: customers of six kinds (a browser, a considerer, a buyer, a repeat
buyer, a repeat buyer who returns their second order, an advocate), each customer's events in event-time
order. `expected` computes from those Segment calls alone what the stage engine, messaging and loyalty
must hold in the end; `observed` reads what they hold from their databases with plain SQL; `differences`
names every customer whose rows are missing, doubled or wrong.

Nothing here imports `services/` or a `lifecycle_*` package: the rules are written down again, from the
default rule sets (services/stage-engine/.../rules/default.yaml, services/loyalty/.../rules/default.yaml):
- stages: any touchpoint -> awareness; a product view (intent) -> consideration; one order that counts ->
  purchase; two -> retention; two and a good review (rating 4+) -> loyalty; a refund takes its order back
  (retention -> purchase). Time moves nobody here: drift comes at the earliest 14 days after an order.
- messages: one per forward move, named by the stage reached (moves back send nothing); into purchase also
  the feedback request (a row written at once, due 72 h later).
- loyalty: an order earns floor(revenue) points (USD, 1 point per unit); a refund of the whole order,
  consumed after its order's points were booked, reverses them; reaching loyalty pays a 500-point bonus once.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg

KINDS = ("browser", "considerer", "buyer", "repeat", "refunder", "advocate")
RANK = {"awareness": 1, "consideration": 2, "purchase": 3, "retention": 4, "loyalty": 5}
TEMPLATE = {"awareness": "welcome", "consideration": "consideration_nudge", "purchase": "thank_you_feedback",
            "retention": "retention_offer", "loyalty": "referral_invite"}
LOYALTY_BONUS = 500


@dataclass(frozen=True)
class Stream:
    journeys: list[list[dict]]  # per customer, in event-time order: everything but the refunds
    refunds: list[dict]  # sent last, once the refunded orders' points are booked

    @property
    def events(self) -> list[dict]:
        return [event for journey in self.journeys for event in journey] + self.refunds


def stream(run: str, customers: int, start: datetime) -> Stream:
    """`customers` customers `<run>-<n>`, their kind by n; event times from `start`, a second apart."""
    journeys, refunds = [], []
    for n in range(customers):
        user, kind = f"{run}-{n}", KINDS[n % len(KINDS)]
        at = iter(start + timedelta(seconds=s) for s in range(10))

        def call(event: str | None, properties: dict | None = None, user: str = user, at=at) -> dict:
            body = {"type": "page" if event is None else "track", "userId": user, "messageId": str(uuid.uuid4()),
                    "timestamp": next(at).isoformat(), "properties": properties or {}}
            return body | ({"event": event} if event else {})

        journey = [call(None, {"path": "/"})]
        if kind != "browser":
            journey.append(call("Product Viewed", {"product_id": f"p{n % 7}"}))
        orders = {"browser": 0, "considerer": 0, "buyer": 1}.get(kind, 2)
        for o in range(orders):
            journey.append(call("Order Completed", {"order_id": f"{user}-o{o}", "revenue": 10 + n % 50 + o * 7.5}))
        if kind == "advocate":
            journey.append(call("Product Reviewed", {"product_id": f"p{n % 7}", "rating": 5}))
        if kind == "refunder":
            refunds.append(call("Order Refunded", {"order_id": f"{user}-o1"}))
        journeys.append(journey)
    return Stream(journeys, refunds)


@dataclass
class Customer:
    """What one customer's rows must be (or are): stage moves in order, message templates, ledger entries."""

    stages: list[str] = field(default_factory=list)
    templates: Counter[str] = field(default_factory=Counter)
    entries: Counter[tuple[str, str | None, int]] = field(default_factory=Counter)  # (kind, order id, points)
    touchpoints: int = 0

    @property
    def balance(self) -> int:
        return sum(points * n for (_, _, points), n in self.entries.items())


def expected(events: list[dict]) -> dict[str, Customer]:
    """Every customer's end state, from their events in the order sent (each customer's are in event time)."""
    state: dict[str, dict] = {}
    result: dict[str, Customer] = {}
    for event in events:
        user, props = event["userId"], event.get("properties", {})
        customer = result.setdefault(user, Customer())
        facts = state.setdefault(user, {"intent": False, "advocacy": False, "orders": {}, "refunded": set()})
        customer.touchpoints += 1
        name = event.get("event")
        if name == "Product Viewed":
            facts["intent"] = True
        elif name == "Product Reviewed" and props.get("rating", 0) >= 4:
            facts["advocacy"] = True
        elif name == "Order Completed" and props["order_id"] not in facts["orders"]:
            points = math.floor(Decimal(str(props["revenue"])))
            facts["orders"][props["order_id"]] = points
            customer.entries[("earn", props["order_id"], points)] += 1
        elif name == "Order Refunded" and props["order_id"] in facts["orders"]:
            points = facts["orders"].pop(props["order_id"])
            facts["refunded"].add(props["order_id"])
            customer.entries[("reverse", props["order_id"], -points)] += 1
        stage = _stage(facts)
        current = customer.stages[-1] if customer.stages else None
        if stage != current:
            customer.stages.append(stage)
            if current is None or RANK[stage] > RANK[current]:
                customer.templates[TEMPLATE[stage]] += 1
                if stage == "purchase":  # and the feedback request, written now, due 72 h later
                    customer.templates["feedback_request"] += 1
            if stage == "loyalty" and "loyalty" not in customer.stages[:-1]:
                customer.entries[("bonus", None, LOYALTY_BONUS)] += 1
    return result


def _stage(facts: dict) -> str:
    orders = len(facts["orders"])
    if orders >= 2:
        return "loyalty" if facts["advocacy"] else "retention"
    if orders == 1:
        return "purchase"
    return "consideration" if facts["intent"] or facts["refunded"] else "awareness"


async def observed(postgres_url: str, database_prefix: str, customers: set[str]) -> dict[str, Customer]:
    """The customers' rows as the three databases hold them (plain SQL, duplicates kept)."""
    server = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    found = {user: Customer() for user in customers}
    ids = sorted(customers)

    async def rows(database: str, sql: str) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(f"{server}/{database_prefix}{database}")
        try:
            return await conn.fetch(sql, ids)
        finally:
            await conn.close()

    for row in await rows("lifecycle_stage_engine",
                          "SELECT customer_id, to_stage FROM transitions WHERE customer_id = ANY($1) ORDER BY seq"):
        found[row["customer_id"]].stages.append(row["to_stage"])
    for row in await rows("lifecycle_stage_engine",
                          "SELECT p.customer_id, count(*) AS n FROM touchpoints t JOIN profiles p"
                          " ON p.id = t.profile_id WHERE p.customer_id = ANY($1) GROUP BY p.customer_id"):
        found[row["customer_id"]].touchpoints = row["n"]
    for row in await rows("lifecycle_messaging",
                          "SELECT customer_id, template FROM messages WHERE customer_id = ANY($1)"):
        found[row["customer_id"]].templates[row["template"]] += 1
    for row in await rows("lifecycle_loyalty", "SELECT customer_id, kind, order_id, points FROM ledger_entries"
                                               " WHERE customer_id = ANY($1)"):
        found[row["customer_id"]].entries[(row["kind"], row["order_id"], row["points"])] += 1
    return found


def differences(want: dict[str, Customer], got: dict[str, Customer]) -> dict[str, dict[str, tuple]]:
    """Per customer, each part that differs: (expected, observed)."""
    found: dict[str, dict[str, tuple]] = {}
    for user, customer in want.items():
        other = got.get(user, Customer())
        parts = {part: (getattr(customer, part), getattr(other, part))
                 for part in ("stages", "templates", "entries", "touchpoints", "balance")
                 if getattr(customer, part) != getattr(other, part)}
        if parts:
            found[user] = parts
    return found
