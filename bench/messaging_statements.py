"""Messaging's SQL statements per consumed batch, by handler run, on the knee's mix (issue 20).

    .venv/bin/python bench/messaging_statements.py [--visitors 400] [--batches 3] [--batch 500] [--endpoints 0]

Starts the embedded PostgreSQL the tests use, migrates a messaging database, and feeds batches of the events
messaging reads from the knee's journeys (bench/journeys.py: sign-ups with their identity merge and first
transition, carts, orders and their transition, refunds; the page and product views it skips undecoded) through
the real consumer runner and the service's routes (`routes_and_webhooks`), one transaction a batch. Counts the
statements sent (an executemany is one) by the handler run they were sent in (named by its first event's type),
and the runner's own (inbox, offsets) apart. Counts do not depend on the machine; also printed, for paired
before/after runs back to back only: the counted batches' wall time and this process's CPU time per event.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.structs import ConsumerRecord
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.handlers import routes_and_webhooks
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import (
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    IdentityMergedData,
    StageChangedData,
    TouchpointData,
    touchpoint_type,
)
from lifecycle_shared.kafka.registry import Route, Typed
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import event as sa_event
from sqlalchemy import text

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
_RUN: ContextVar[str] = ContextVar("run", default="runner (inbox, offsets)")


def _touchpoint(name: str | None, *, user: str | None, anonymous: str | None, at: datetime,
                **fields: Any) -> CloudEvent:
    message_id = str(uuid.uuid4())
    call = "track" if name else "page"
    data = TouchpointData(type=call, event=name, userId=user, anonymousId=anonymous, messageId=message_id,
                          timestamp=at, receivedAt=at, **fields)
    return CloudEvent(id=f"shop/{message_id}", source="/sources/shop", type=touchpoint_type(call, name), time=at,
                      subject=user or anonymous, data=data.model_dump(mode="json"))


def _transition(user: str, anonymous: list[str], to_stage: str, at: datetime, *, orders: int = 0) -> CloudEvent:
    data = StageChangedData(customer_id=user, user_id=user, anonymous_ids=anonymous, from_stage=None,
                            to_stage=to_stage, reason="r", rule_version="v", cause_event_ids=[str(uuid.uuid4())],
                            event_time=at, processed_at=at, traits={"email": f"{user}@example.com"}, orders=orders)
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=at, subject=user,
                      data=data.model_dump(mode="json"))


def _merge(user: str, anonymous: str, at: datetime) -> CloudEvent:
    data = IdentityMergedData(survivor_id=user, absorbed_id=anonymous, absorbed_ids=[anonymous], user_id=user,
                              reason="identify", cause_event_ids=[str(uuid.uuid4())], event_time=at,
                              processed_at=at)
    return CloudEvent(id=str(uuid.uuid4()), source="/profiles", type=IDENTITY_MERGED_TYPE, time=at, subject=user,
                      data=data.model_dump(mode="json"))


def journey(rng: random.Random, at: datetime) -> list[CloudEvent]:
    """One visitor's events messaging reads, in order (the knee's journeys and weights)."""
    kind = rng.choices(["browse", "returning_browse", "sign_up", "sign_up_and_buy", "returning_buy",
                        "buy_and_refund"], weights=[62, 15, 10, 6, 6, 1])[0]
    anonymous, user = f"a-{uuid.uuid4().hex[:10]}", f"u-{uuid.uuid4().hex[:10]}"
    returning = kind.startswith("returning")
    ids = {"user": user, "anonymous": None} if returning else {"user": None, "anonymous": anonymous}
    events = [_touchpoint(None, at=at, **ids), _touchpoint("Product Viewed", at=at, **ids)]
    if kind in ("sign_up", "sign_up_and_buy", "buy_and_refund"):
        events += [_touchpoint("Signed Up", user=user, anonymous=anonymous, at=at,
                               traits={"email": f"{user}@example.com"}),
                   _merge(user, anonymous, at), _transition(user, [anonymous], "awareness", at)]
        ids = {"user": user, "anonymous": None}
    if kind != "browse" and kind != "sign_up":
        events.append(_touchpoint("Product Added", at=at, properties={"name": "tee"}, **ids))
    if kind in ("sign_up_and_buy", "returning_buy", "buy_and_refund"):
        order = str(uuid.uuid4())
        events += [_touchpoint("Order Completed", at=at, properties={"order_id": order, "revenue": 20}, **ids),
                   _transition(user, [], "purchase", at + timedelta(seconds=1), orders=1)]
        if kind == "buy_and_refund":
            events.append(_touchpoint("Order Refunded", at=at, properties={"order_id": order}, **ids))
    return events


def interleaved(rng: random.Random, visitors: int) -> list[CloudEvent]:
    """The visitors' journeys interleaved at random, each one's events in order."""
    pending = [journey(rng, NOW) for _ in range(visitors)]
    out: list[CloudEvent] = []
    while pending:
        one = rng.randrange(len(pending))
        out.append(pending[one].pop(0))
        if not pending[one]:
            pending.pop(one)
    return out


class Counts:
    def __init__(self, engine: Any) -> None:
        self.statements: Counter = Counter()  # (run, statement kind) -> n
        self.runs: Counter = Counter()  # run -> n
        sa_event.listen(engine.sync_engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements[_RUN.get(), " ".join(statement.split()[:3])[:48] + (" [many]" if executemany else "")] += 1

    def counting(self, router: Any) -> Any:
        wrapped: dict[str, Route] = {}

        def route(event_type: str) -> Route | None:
            found = router(event_type)
            if found is None:
                return None
            if event_type not in wrapped:
                async def handle(conn: Any, events: list[Typed[Any]], inner=found.handler) -> Any:
                    name = events[0].event.type
                    self.runs[name] += 1
                    token = _RUN.set(name)
                    try:
                        return await inner(conn, events)
                    finally:
                        _RUN.reset(token)
                wrapped[event_type] = Route(found.model, handle)
            return wrapped[event_type]

        return route

    def report(self, batches: int) -> str:
        lines = [f"{'run (first event type)':<34}{'runs':>6}{'stmts/run':>10}  by statement (per run)"]
        for run in sorted({r for r, _ in self.statements}, key=lambda r: -sum(
                n for (rr, _), n in self.statements.items() if rr == r)):
            kinds = {k: n for (r, k), n in self.statements.items() if r == run}
            per = max(self.runs.get(run, 0), 1)
            detail = "; ".join(f"{k} {n / per:.2g}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
            lines.append(f"{run:<34}{self.runs.get(run, 0):>6}{sum(kinds.values()) / per:>10.1f}  {detail}")
        lines.append(f"total statements per batch: {sum(self.statements.values()) / batches:.1f}")
        return "\n".join(lines)


async def measure(database_url: str, args: argparse.Namespace) -> str:
    engine = create_engine(database_url, pool_size=4)
    settings = MessagingSettings(environment="development")
    freshness = Freshness(clock=lambda: NOW, window=settings.freshness)
    rng = random.Random(args.seed)
    try:
        if args.endpoints:
            async with engine.begin() as conn:
                for n in range(args.endpoints):
                    await conn.execute(text(
                        "INSERT INTO webhook_endpoints (id, url, secret, event_types, status) VALUES "
                        "(:id, 'http://127.0.0.1:9/hook', 'whsec_x', ARRAY['lifecycle.stage_changed'], 'active')"),
                        {"id": f"ep-{n}"})
        counts = Counts(engine)
        runner = ConsumerRunner(name="bench", consumer=None, producer=None, engine=engine,
                                route=counts.counting(routes_and_webhooks(brand="Shop", freshness=freshness)))
        events = interleaved(rng, args.visitors)
        offset = 0
        warm = events[:args.batch]  # untimed, uncounted: the first batch fills the caches
        await runner.process([_record(e, offset + i) for i, e in enumerate(warm)])
        offset += len(warm)
        counts.statements.clear()
        counts.runs.clear()
        done, counted = 0, 0
        wall, cpu = time.perf_counter(), time.process_time()
        for first in range(args.batch, len(events), args.batch):
            chunk = events[first:first + args.batch]
            await runner.process([_record(e, offset + i) for i, e in enumerate(chunk)])
            offset += len(chunk)
            done, counted = done + 1, counted + len(chunk)
            if done == args.batches:
                break
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        types = Counter(e.type for e in events)
        return (f"events by type: {dict(types.most_common())}\n{done} batches of {args.batch}: "
                f"{wall / done:.3f} s a batch, {1e6 * cpu / counted:.0f} CPU us an event (this process)\n"
                + counts.report(done))
    finally:
        await engine.dispose()


def _record(event: CloudEvent, offset: int) -> ConsumerRecord:
    value, key = event.to_bytes(), (event.subject or "").encode()
    return ConsumerRecord(topic="bench", partition=0, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=[])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visitors", type=int, default=600)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    infra = Infra.start()
    try:
        config = infra.stack_config()
        infra.prepare(config, services=[BY_NAME["messaging"]])
        print(asyncio.run(measure(config.database_url(BY_NAME["messaging"]), args)))
    finally:
        infra.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
