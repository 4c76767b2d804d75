"""`python -m lifecycle_devstack.demo [--customers N] [--seed S] [--url URL] [--write-key KEY] [--data-dir DIR]
[--stage-engine-url URL] [--admin-token TOKEN] [--no-refresh]`

Fills a running stack with a demo shop: two years of visitors arriving through ads, social, the
newsletter, referrals and search, browsing, signing up and buying - posted to ingest's `/v1/import`
(historical: recorded, nobody is messaged) with the importer's functions. Buyers repeat the BG/NBD
way: each has a purchase rate (Gamma) and, after every order, a chance of never ordering again
(Beta); an order's value is Gamma-distributed around the buyer's own mean. About 3% of orders are
refunded, some are reviewed, some repeat buyers refer friends: the shop has customers in every stage.

Deterministic: each visitor draws from their own generator (seed, index), at times counted back from
`end` (by default today's midnight, UTC), with messageIds from (seed, visitor, call): a run repeated the
same day is a retry, applied once; on a later day the ids come back with other times, and consumers keep
the first run's events (logging the rest as reused ids). Another --seed is another shop, alongside.
Ids and emails are obviously fake (`demo+s7c42@example.com`); nothing personal is printed.

Then the dashboard's figures: the stage engine scores customers every 15 minutes, and its last
refresh ran before the shop arrived. So the demo waits until the stage engine has applied what it
sent (its consumer lag is zero and the events it counts stand still), asks for a refresh
(POST /v1/admin/analytics/fits with the admin token `up` keeps in the data folder) and waits for it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from lifecycle_ingest.domain.imports import encoded, prepared
from lifecycle_ingest.importer import Line, Summary, import_lines

from lifecycle_devstack.figures import (
    RefreshRefused,
    answering,
    progress,
    refresh_figures,
    running_stage_engine,
    wait_until_applied,
)

DAY_S = 86400
BUYER_SHARE = 0.68  # visitors who mean to buy; those who arrive late may not get to it before `end`
PURCHASE_RATE = (0.9, 1 / 40)  # Gamma(shape, scale): a buyer's orders per day while still a customer
DROPOUT = (1.3, 2.2)  # Beta(a, b): the chance, after each order, of never ordering again
MEAN_SPEND = (3.0, 26.0)  # Gamma(shape, scale): a buyer's mean order value, about $78
ORDER_SPEND_SHAPE = 6.0  # an order's value: Gamma(shape, mean / shape)
REFUND_SHARE, REVIEW_SHARE, REFERRAL_SHARE = 0.03, 0.15, 0.2
RATINGS, RATING_WEIGHTS = (1, 2, 3, 4, 5), (4, 6, 12, 33, 45)


class Product(NamedTuple):
    product_id: str
    sku: str
    name: str
    price: float
    cost_share: float  # what the shop pays for it, as a share of its price


CATALOG = tuple(Product(f"p{n}", *item) for n, item in enumerate([
    ("TEE-WHT", "White tee", 24.0, 0.55), ("TEE-BLK", "Black tee", 26.0, 0.56), ("SOCKS-3", "Socks", 12.0, 0.55),
    ("CAP-NVY", "Navy cap", 19.0, 0.58), ("SCARF-WL", "Wool scarf", 34.0, 0.57), ("BELT-LT", "Belt", 39.0, 0.6),
    ("SHIRT-OX", "Oxford shirt", 54.0, 0.6), ("HOODIE-GR", "Hoodie", 64.0, 0.62), ("BAG-CV", "Bag", 79.0, 0.6),
    ("JEANS-SL", "Slim jeans", 89.0, 0.64), ("SNEAKER-W", "Sneakers", 119.0, 0.68),
    ("JACKET-RN", "Rain jacket", 179.0, 0.7)], start=1))
CHEAPEST = min(product.price for product in CATALOG)
NEWSLETTER = {"source": "newsletter", "medium": "email", "name": "weekly-picks"}
# Where visitors come from: (weight, campaign, referrer). Organic visitors carry neither.
ARRIVALS = ((28, {"source": "google", "medium": "cpc", "name": "brand-search"}, None),
            (8, {"source": "google", "medium": "cpc", "name": "winter-sale"}, None),
            (14, {"source": "facebook", "medium": "social", "name": "spring-lookbook"}, None),
            (6, {"source": "instagram", "medium": "social", "name": "creator-collab"}, None), (10, NEWSLETTER, None),
            (7, None, "https://www.reddit.com/r/malefashionadvice/"), (5, None, "https://blog.example.org/basics"),
            (22, None, None))
FIRST_NAMES = ("Alex", "Sam", "Robin", "Kim", "Jordan", "Taylor", "Charlie", "Jamie", "Noor", "Mika")


class Visitor:
    """One person's calls as they are made: their ids, their own random draws, and a clock (seconds
    since the window opened) that moves forward as they act."""

    def __init__(self, index: int, *, seed: int, start: datetime, span_s: int) -> None:
        self.rng = random.Random(f"{seed}:{index}")
        self.prefix = f"demo-{seed}-{index:05d}"
        self.anonymous_id = f"{self.prefix}-anon"
        self.user_id: str | None = None
        self.email = f"demo+s{seed}c{index}@example.com"
        self.start, self.span_s, self.clock = start, span_s, 0
        self.calls: list[dict[str, Any]] = []
        self.orders = 0

    def emit(self, fields: dict[str, Any], *, at: int | None = None, server: bool = False,
             context: dict[str, Any] | None = None) -> None:
        """A call a few seconds after the last (or `at`, leaving the clock), unless it would fall after `end`."""
        if at is None:
            self.clock = at = self.clock + self.rng.randint(5, 90)
        if at > self.span_s:
            return
        ids = {} if server else {"anonymousId": self.anonymous_id}
        ids |= {"userId": self.user_id} if self.user_id else {}
        stamp = self.start + timedelta(seconds=at)
        self.calls.append({"messageId": f"{self.prefix}-{len(self.calls)}", "timestamp": f"{stamp:%Y-%m-%dT%H:%M:%SZ}",
                           **ids, "context": context or {}, **fields})

    def track(self, event: str, properties: dict[str, Any], **options: Any) -> None:
        self.emit({"type": "track", "event": event, "properties": properties}, **options)

    def land(self, campaign: dict[str, str] | None = None, referrer: str | None = None) -> None:
        """A session's first page: where the visitor came from, if anywhere."""
        context: dict[str, Any] = {"page": {"path": "/"}}
        if campaign:
            context["campaign"] = campaign
        if referrer:
            context["page"]["referrer"] = referrer
            context["referrer"] = {"type": "link", "url": referrer}
        self.emit({"type": "page", "name": "Home", "properties": {"path": "/"}}, context=context)

    def browse(self, views: int) -> list[Product]:
        products = [self.rng.choice(CATALOG) for _ in range(views)]
        for product in products:
            self.track("Product Viewed", {"product_id": product.product_id, "sku": product.sku,
                                          "name": product.name, "price": product.price},
                       context={"page": {"path": f"/products/{product.sku.lower()}"}})
        return products

    def sign_up(self) -> None:
        self.user_id = f"{self.prefix}-user"
        self.emit({"type": "identify", "traits": {"email": self.email, "firstName": self.rng.choice(FIRST_NAMES)}})
        self.track("Signed Up", {"method": "email"})


def basket(rng: random.Random, spend: float) -> dict[Product, int]:
    """Products (and quantities) worth about `spend`: at least one item, at most eight."""
    items: dict[Product, int] = {}
    remaining = spend
    while not items or (remaining >= CHEAPEST and sum(items.values()) < 8):
        product = rng.choice([p for p in CATALOG if p.price <= remaining] or [CATALOG[0]])
        items[product] = items.get(product, 0) + 1
        remaining -= product.price
    return items


def order(visitor: Visitor, mean_spend: float) -> None:
    """Into the cart, the order (sent by the shop's server), and what may follow it: a refund, a review."""
    rng = visitor.rng
    items = basket(rng, rng.gammavariate(ORDER_SPEND_SHAPE, mean_spend / ORDER_SPEND_SHAPE))
    for product, quantity in items.items():
        visitor.track("Product Added", {"product_id": product.product_id, "sku": product.sku, "quantity": quantity})
    visitor.orders += 1
    order_id = f"{visitor.prefix}-o{visitor.orders}"
    revenue = round(sum(p.price * q for p, q in items.items()), 2)
    visitor.track("Order Completed", {
        "order_id": order_id, "revenue": revenue, "currency": "USD",
        "cost": round(sum(p.price * p.cost_share * q for p, q in items.items()), 2),
        "products": [{"product_id": p.product_id, "sku": p.sku, "price": p.price, "quantity": q}
                     for p, q in items.items()]}, server=True)
    placed = visitor.clock
    if rng.random() < REFUND_SHARE:
        visitor.track("Order Refunded", {"order_id": order_id, "revenue": revenue, "currency": "USD"},
                      at=placed + rng.randint(2 * DAY_S, 21 * DAY_S), server=True)
    if rng.random() < REVIEW_SHARE:
        rating = rng.choices(RATINGS, RATING_WEIGHTS)[0]
        visitor.track("Product Reviewed", {"product_id": next(iter(items)).product_id, "rating": rating},
                      at=placed + rng.randint(5 * DAY_S, 30 * DAY_S))
    if visitor.orders == 2 and rng.random() < REFERRAL_SHARE:
        visitor.track("Referral Sent", {"channel": "email"}, at=placed + rng.randint(DAY_S, 20 * DAY_S))


def come_back(visitor: Visitor, after_s: float) -> bool:
    """A new session `after_s` later, from the newsletter or typed in; False when that is after `end`."""
    visitor.clock += int(after_s)
    if visitor.clock > visitor.span_s:
        return False
    visitor.land(NEWSLETTER if visitor.rng.random() < 0.3 else None)
    return True


def buyer_journey(visitor: Visitor) -> None:
    """A first order soon after arriving, then repeat orders at the buyer's rate until they drop out."""
    rng = visitor.rng
    rate_per_s = rng.gammavariate(*PURCHASE_RATE) / DAY_S
    dropout = rng.betavariate(*DROPOUT)
    mean_spend = rng.gammavariate(*MEAN_SPEND)
    if rng.random() < 0.5 and not come_back(visitor, rng.expovariate(1 / (7 * DAY_S))):
        return
    visitor.browse(rng.randint(1, 3))
    visitor.sign_up()
    order(visitor, mean_spend)
    while rng.random() >= dropout and come_back(visitor, rng.expovariate(rate_per_s)):
        visitor.browse(rng.randint(1, 3))
        order(visitor, mean_spend)


def visitor_calls(index: int, *, seed: int, start: datetime, span_s: int) -> list[dict[str, Any]]:
    """One visitor's calls: arrival (more of them lately: the shop grows), then a browse, a sign-up or a journey."""
    visitor = Visitor(index, seed=seed, start=start, span_s=span_s)
    rng = visitor.rng
    visitor.clock = int(span_s * rng.random() ** 0.5)
    _, campaign, referrer = rng.choices(ARRIVALS, [weight for weight, *_ in ARRIVALS])[0]
    visitor.land(campaign, referrer)
    if rng.random() < BUYER_SHARE:
        buyer_journey(visitor)
    elif (kind := rng.random()) >= 0.45:  # over half of the others browse; the rest leave after one page
        viewed = visitor.browse(rng.randint(1, 4))
        if kind >= 0.8:  # an abandoned cart
            visitor.track("Product Added", {"product_id": viewed[0].product_id, "sku": viewed[0].sku, "quantity": 1})
        if kind >= 0.9:
            visitor.sign_up()
    return visitor.calls


def generate(customers: int = 3000, *, years: float = 2.0, end: datetime, seed: int = 7) -> Iterator[dict]:
    """The shop's Segment calls, in timestamp order, all within [end - years, end]."""
    if end.tzinfo is None:
        raise ValueError("end: give a timezone-aware time")
    end = end.astimezone(UTC).replace(microsecond=0)
    span_s = int(years * 365.25 * DAY_S)
    start = end - timedelta(seconds=span_s)
    calls = [call for index in range(customers) for call in visitor_calls(index, seed=seed, start=start, span_s=span_s)]
    return iter(sorted(calls, key=lambda call: (call["timestamp"], call["messageId"])))


def window_end() -> datetime:
    """The default `end`: today's midnight, UTC - the same all day, so a repeated run is a retry."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def send(calls: Iterator[dict], *, url: str, write_key: str) -> Summary:
    """Post the calls to ingest's `/v1/import` in batches, as the importer does (refusals reported by number)."""
    lines = (Line(number, encoded(prepared(call))) for number, call in enumerate(calls, start=1))
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        return await import_lines(lines, client=client, write_key=write_key)


def running_ingest() -> str | None:
    """The dev stack's ingest on `up`'s default ports (ingest first, at 8000), if it answers there."""
    return answering("ingest")


async def import_and_refresh(calls: Iterator[dict], args: argparse.Namespace) -> int:
    """The import, then (with a stage engine and its admin token) the wait and the refresh; the exit status."""
    started = time.monotonic()
    stage_engine = httpx.AsyncClient(base_url=args.stage_engine_url, timeout=30.0) if args.stage_engine_url else None
    try:
        baseline = (await progress(stage_engine))[0] if stage_engine else 0.0
        summary = await send(calls, url=args.url, write_key=args.write_key)
        stopped = f"; stopped: {summary.stopped}" if summary.stopped else ""
        print(f"demo shop ({args.customers} visitors, seed {args.seed}): {summary.sent} events sent, "
              f"{summary.accepted} accepted, {summary.refused} refused, {time.monotonic() - started:.1f} s{stopped}",
              flush=True)
        if stage_engine is None:
            print(f"figures not refreshed: {args.no_refresh_reason}; the dashboard shows them after the stage "
                  "engine's next scheduled refresh (or its \"Refresh figures\" button)", flush=True)
            return 0 if summary.complete else 1
        waited = time.monotonic()
        print("waiting for the stage engine to apply the events...", flush=True)
        if await wait_until_applied(stage_engine, baseline=baseline, sent=summary.accepted,
                                    timeout_s=args.wait_timeout):
            print(f"the stage engine has applied them ({time.monotonic() - waited:.1f} s)", flush=True)
        else:
            print(f"the stage engine was still applying events after {args.wait_timeout:.0f} s: refreshing anyway, "
                  "the figures may miss the latest", flush=True)
        refreshing = time.monotonic()
        print("refreshing the figures (RFM, CLV, churn)...", flush=True)
        try:
            fit = await refresh_figures(stage_engine, admin_token=args.admin_token, timeout_s=args.wait_timeout)
        except (RefreshRefused, TimeoutError, httpx.HTTPError) as error:
            print(f"figures not refreshed: {error}", flush=True)
            return 1
        if fit["status"] != "done":
            print(f"figures not refreshed: the refresh failed: {fit['result'].get('error')}", flush=True)
            return 1
        result = fit["result"]
        print(f"figures refreshed at {fit['finished_at']}: {result.get('scored_customers', 0)} buyers scored, "
              f"{result.get('repeat_buyers', 0)} repeat buyers ({time.monotonic() - refreshing:.1f} s); "
              f"dashboard: {args.stage_engine_url}/dashboard", flush=True)
        return 0 if summary.complete else 1
    finally:
        if stage_engine is not None:
            await stage_engine.aclose()


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 dev.py demo", description="Fill the running stack with a demo shop.")
    parser.add_argument("--customers", type=int, default=3000, help="visitors (about two in three buy)")
    parser.add_argument("--years", type=float, default=2.0, help="how far back the shop's history goes")
    parser.add_argument("--seed", type=int, default=7, help="another seed: another shop, alongside")
    parser.add_argument("--url", help="ingest's base URL; default: the dev stack's, if it answers")
    parser.add_argument("--write-key", help="a server key (orders need one); default: the dev stack's demo key")
    parser.add_argument("--data-dir", type=Path, default=Path(".lifecycle/data"), help="the dev stack's data folder")
    parser.add_argument("--stage-engine-url", help="the stage engine's base URL, to refresh the figures once the "
                                                   "events are applied; default: the dev stack's, if it answers "
                                                   "(and --url is not given)")
    parser.add_argument("--admin-token", help="the stage engine's admin token; default: "
                                              "$LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN, else the dev stack's")
    parser.add_argument("--no-refresh", action="store_true", help="import only: do not refresh the figures")
    parser.add_argument("--wait-timeout", type=float, default=600.0,
                        help="seconds to wait for the stage engine to apply the events, and for the refresh")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.years <= 0:
        parser.error("--customers and --years: more than 0")
    if not args.url and not args.no_refresh and not args.stage_engine_url:
        args.stage_engine_url = running_stage_engine()  # the dev stack's, beside its ingest
    args.url = args.url or running_ingest()
    if not args.url:
        parser.error("no ingest answers at the dev stack's default port: start `python3 dev.py up` or give --url")
    key_file = args.data_dir / "demo-server-key"  # what `up` creates (stack.demo_write_key)
    if not args.write_key and key_file.is_file():
        args.write_key = key_file.read_text().strip()
    if not args.write_key:
        parser.error(f"no {key_file} (`python3 dev.py up` creates it): give --write-key or --data-dir")
    args.no_refresh_reason = ""
    admin_file = args.data_dir / "admin-token"  # what `up` creates (stack.admin_tokens)
    args.admin_token = (args.admin_token or os.environ.get("LIFECYCLE_STAGE_ENGINE_ADMIN_TOKEN", "").strip()
                        or (admin_file.read_text().strip() if admin_file.is_file() else None))
    if args.no_refresh:
        args.stage_engine_url, args.no_refresh_reason = None, "--no-refresh"
    elif not args.stage_engine_url:
        args.no_refresh_reason = "no stage engine (give --stage-engine-url)"
    elif not args.admin_token:
        args.stage_engine_url = None
        args.no_refresh_reason = f"no admin token (give --admin-token, or {admin_file} as `up` keeps it)"
    if args.stage_engine_url:
        args.stage_engine_url = args.stage_engine_url.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    calls = generate(args.customers, years=args.years, end=window_end(), seed=args.seed)
    return asyncio.run(import_and_refresh(calls, args))


if __name__ == "__main__":
    sys.exit(main())
