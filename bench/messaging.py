"""Messaging: stage transitions turned into queued or suppressed sends, and delivery to a local SMTP server,
each next to a raw baseline measured in the same run. Ratios, not timed assertions.

Starts an embedded PostgreSQL (and the broker `Infra` starts; unused: the consumer runner is fed records as the
Kafka consumer would hand them over, as bench/webhooks.py does), migrates a messaging database, and an aiosmtpd
server in a process of its own (accepts everything). Then:

1. queue: N first transitions (-> awareness, a marketing welcome) through messaging's real consumer runner and
   routes in batches of B (the consumer's batch), each batch one transaction -> transitions/s turned into queued
   messages (the consent, holdout, quiet-hours and cap decisions are the delivery worker's: phase 2);
   baseline: the same message rows (id, customer, template, subject, body, status) as a plain batched INSERT
   of B rows per transaction into an unindexed table of the same database -> rows/s;
2. deliver: the delivery worker's rounds (`deliver_once`: claim, consent, gateway - holdout 10%, quiet hours off,
   no caps -, build, send, record) until nothing is left -> messages sent or suppressed per second;
   baseline: the same emails (`delivery.build_email` of the same rows) sent one after another with
   `aiosmtplib.send` (a connection each, as the worker does) -> emails/s.

    .venv/bin/python bench/messaging.py [--transitions 3000] [--batch 500]

Writes bench/messaging.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiosmtplib
from lifecycle_devstack.infra import Infra
from lifecycle_devstack.services import BY_NAME
from lifecycle_messaging.db.models import messages
from lifecycle_messaging.delivery import build_email, deliver_once
from lifecycle_messaging.handlers import routes
from lifecycle_messaging.settings import MessagingSettings
from lifecycle_messaging.suppressing import Freshness
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE, CloudEvent
from lifecycle_shared.kafka.runner import ConsumerRunner
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import code_version  # noqa: E402
from webhooks import record  # noqa: E402


def _smtp_sink(port_out: Any) -> None:
    from aiosmtpd.controller import Controller
    from lifecycle_devstack.ports import free_port

    class Accept:
        async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook
            return "250 OK"

    port = free_port()
    controller = Controller(Accept(), hostname="127.0.0.1", port=port)
    controller.start()
    port_out.put(port)
    time.sleep(3600)


def transition(now: datetime) -> CloudEvent:
    customer = f"m-{uuid.uuid4().hex[:10]}"
    data = {"customer_id": customer, "user_id": customer, "anonymous_ids": [], "from_stage": None,
            "to_stage": "awareness", "reason": "signed_up", "rule_version": "default-v2",
            "cause_event_ids": [str(uuid.uuid4())], "event_time": now.isoformat(), "processed_at": now.isoformat(),
            "traits": {"email": f"{customer}@example.com", "firstName": "Ann"}}
    return CloudEvent(id=str(uuid.uuid4()), source="/stage-engine", type=STAGE_CHANGED_TYPE, time=now,
                      subject=customer, data=data)


async def queue(engine, settings: MessagingSettings, freshness: Freshness, *, count: int, batch: int) -> dict:
    runner = ConsumerRunner(name="bench", consumer=None, producer=None, engine=engine,
                            route=routes(brand="Shop", freshness=freshness))
    records = [record(transition(freshness.clock()), offset) for offset in range(count)]
    started = time.perf_counter()
    for first in range(0, count, batch):
        await runner.process(records[first:first + batch])
    elapsed = time.perf_counter() - started
    async with engine.connect() as conn:
        made = (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one()
    return {"transitions": count, "messages": made, "seconds": round(elapsed, 3),
            "transitions_per_s": round(count / elapsed, 1)}


async def baseline_insert(engine, *, batch: int) -> dict:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS bench_raw_messages (id uuid, customer_id text, "
                                "template text, subject text, body text, status text)"))
        rows = [dict(row._mapping) for row in await conn.execute(select(
            messages.c.customer_id, messages.c.template, messages.c.subject, messages.c.body, messages.c.status))]
    insert = text("INSERT INTO bench_raw_messages (id, customer_id, template, subject, body, status) "
                  "VALUES (CAST(:id AS uuid), :customer_id, :template, :subject, :body, :status)")
    for row in rows:
        row["id"] = str(uuid.uuid4())
    started = time.perf_counter()
    for first in range(0, len(rows), batch):
        async with engine.begin() as conn:
            await conn.execute(insert, rows[first:first + batch])
    elapsed = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(elapsed, 3), "rows_per_s": round(len(rows) / elapsed, 1)}


async def deliver(engine, settings: MessagingSettings, freshness: Freshness) -> dict:
    runtime = SimpleNamespace(engine=engine)
    started = time.perf_counter()
    while await deliver_once(runtime, settings, freshness):
        pass
    elapsed = time.perf_counter() - started
    async with engine.connect() as conn:
        outcome = dict((await conn.execute(text("SELECT status, count(*) FROM messages GROUP BY status"))).all())
    done = outcome.get("sent", 0) + outcome.get("suppressed", 0)
    return {"outcomes": outcome, "seconds": round(elapsed, 3), "messages_per_s": round(done / elapsed, 1),
            "sent_per_s": round(outcome.get("sent", 0) / elapsed, 1)}


async def baseline_smtp(engine, settings: MessagingSettings) -> dict:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(messages).where(messages.c.status == "sent"))).all()
    emails = [build_email(row, settings=settings) for row in rows]
    started = time.perf_counter()
    for email in emails:
        await aiosmtplib.send(email, hostname=settings.smtp_host, port=settings.smtp_port,
                              timeout=settings.smtp_timeout_s)
    elapsed = time.perf_counter() - started
    return {"emails": len(emails), "seconds": round(elapsed, 3), "emails_per_s": round(len(emails) / elapsed, 1)}


async def measure(database_url: str, smtp_port: int, args: argparse.Namespace) -> dict:
    engine = create_engine(database_url, pool_size=10)
    settings = MessagingSettings(environment="development", smtp_port=smtp_port, quiet_hours="off",
                                 cap_per_day=0, cap_per_week=0, holdout_share=0.10)
    now = datetime.now(UTC)
    freshness = Freshness(clock=lambda: now, window=settings.freshness)
    try:
        product = await queue(engine, settings, freshness, count=args.transitions, batch=args.batch)
        raw = await baseline_insert(engine, batch=args.batch)
        product["baseline_insert"] = raw
        product["ratio_to_baseline"] = round(product["transitions_per_s"] / raw["rows_per_s"], 3)
        print(f"queue: {product['transitions_per_s']} transitions/s vs {raw['rows_per_s']} raw INSERT rows/s "
              f"(x{product['ratio_to_baseline']})", file=sys.stderr)
        sent = await deliver(engine, settings, freshness)
        raw_smtp = await baseline_smtp(engine, settings)
        sent["baseline_smtp"] = raw_smtp
        sent["ratio_to_baseline"] = round(sent["sent_per_s"] / raw_smtp["emails_per_s"], 3)
        print(f"deliver: {sent['sent_per_s']} sent/s ({sent['messages_per_s']} sent or suppressed/s) vs "
              f"{raw_smtp['emails_per_s']} raw aiosmtplib emails/s (x{sent['ratio_to_baseline']}); "
              f"{sent['outcomes']}", file=sys.stderr)
    finally:
        await engine.dispose()
    return {"queue": product, "deliver": sent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transitions", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "messaging.json")
    args = parser.parse_args()
    ports: Any = multiprocessing.Queue()
    sink = multiprocessing.Process(target=_smtp_sink, args=(ports,), daemon=True)
    sink.start()
    smtp_port = ports.get(timeout=30)
    infra = Infra.start()
    try:
        config = infra.stack_config()
        infra.prepare(config, services=[BY_NAME["messaging"]])
        report = {"code": code_version(), "parameters": {k: v for k, v in vars(args).items() if k != "out"},
                  **asyncio.run(measure(config.database_url(BY_NAME["messaging"]), smtp_port, args))}
    finally:
        infra.stop()
        sink.terminate()
        sink.join(5)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
