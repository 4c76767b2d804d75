"""One trace from the POST at ingest to the loyalty ledger entry, and logs that carry trace, event and customer
ids but no email, key or token. Ingest, the stage engine and loyalty in-process (ASGI + lifespan, their real
consumers, outbox relays and runners) against the test namespace's PostgreSQL and broker; spans read from
OpenTelemetry's in-memory exporter, log lines as the services' JSON logging writes them."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack

from lifecycle_devstack.services import BY_NAME
from lifecycle_ingest.main import create_app as ingest_app
from lifecycle_loyalty.db.models import ledger_entries as ledger
from lifecycle_loyalty.main import create_app as loyalty_app
from lifecycle_loyalty.settings import LoyaltySettings
from lifecycle_shared.db import create_engine
from lifecycle_shared.events import STAGE_CHANGED_TYPE
from lifecycle_shared.testing import eventually
from lifecycle_stage_engine.main import create_app as stage_engine_app
from lifecycle_stage_engine.settings import StageEngineSettings
from opentelemetry.trace import SpanKind
from sqlalchemy import select

from tests.support.in_process import kafka_settings, running
from tests.support.ingest import ADMIN_TOKEN, settings_for
from tests.support.tracing import captured_logs, in_memory_tracing

API_TOKEN = "trace-test-api-token-4c8e1a7f0b2d"
STAGE_ADMIN_TOKEN = "trace-test-admin-token-9a3f5c1e7b0d"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _flow(customer: str, email: str) -> list[dict]:
    """Signed up, two orders and a five-star review: the stage engine makes the customer loyal, and loyalty
    pays the stage bonus for it."""
    ids = {"userId": customer}
    return [
        {"type": "track", "event": "Signed Up", "messageId": str(uuid.uuid4()), **ids,
         "context": {"traits": {"email": email, "firstName": "Ann"}}},
        {"type": "track", "event": "Order Completed", "messageId": str(uuid.uuid4()), **ids,
         "properties": {"order_id": f"{customer}-o1", "revenue": 40, "email": email}},
        {"type": "track", "event": "Order Completed", "messageId": str(uuid.uuid4()), **ids,
         "properties": {"order_id": f"{customer}-o2", "revenue": 60}},
        {"type": "track", "event": "Product Reviewed", "messageId": str(uuid.uuid4()), **ids,
         "properties": {"rating": 5, "review_id": f"{customer}-r1"}},
    ]


async def test_one_trace_from_the_post_at_ingest_to_the_loyalty_ledger_entry_and_logs_without_secrets(namespace):
    customer = f"ann-{uuid.uuid4().hex[:8]}"
    email = f"{customer}@example.com"
    common = {"environment": "production", "kafka": kafka_settings(namespace), "api_tokens": API_TOKEN}
    loyalty_engine = create_engine(namespace.database_url(BY_NAME["loyalty"]))
    with in_memory_tracing() as spans, captured_logs("lifecycle_shared.tracing") as logs:
        async with AsyncExitStack() as stack:
            ingest = await stack.enter_async_context(running(ingest_app(settings_for(namespace))))
            await stack.enter_async_context(running(stage_engine_app(StageEngineSettings(
                database_url=namespace.database_url(BY_NAME["stage-engine"]), admin_token=STAGE_ADMIN_TOKEN,
                **common))))
            await stack.enter_async_context(running(loyalty_app(LoyaltySettings(
                database_url=namespace.database_url(BY_NAME["loyalty"]), **common))))
            created = await ingest.post("/v1/admin/keys", json={"source": "trace-shop", "kind": "server"},
                                        headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
            assert created.status_code == 201
            server_key = created.json()["key"]
            # Secrets in play: a wrong admin token, an unknown key, a refused event naming the email.
            assert (await ingest.get("/v1/admin/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}x"})
                    ).status_code == 401
            assert (await ingest.post("/v1/track", auth=(server_key + "x", ""), json=_flow(customer, email)[0])
                    ).status_code == 401
            refused = await ingest.post("/v1/track", auth=(server_key, ""), json={
                "type": "track", "event": "Signed Up", "userId": email, "messageId": "m" * 101})
            assert refused.status_code == 400

            answer = await ingest.post("/v1/batch", auth=(server_key, ""), json={"batch": _flow(customer, email)},
                                       headers={"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"})
            assert answer.status_code == 200, answer.text

            async def bonus_entry():
                async with loyalty_engine.connect() as conn:
                    return (await conn.execute(select(ledger.c.cause_event_id).where(
                        ledger.c.customer_id == customer, ledger.c.kind == "bonus"))).first()

            entry = await eventually(bonus_entry, timeout_s=60, what="the stage bonus in the ledger")
    await loyalty_engine.dispose()

    finished = spans.get_finished_spans()
    posts = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /v1/batch"]
    assert len(posts) == 1, [s.name for s in finished if s.kind == SpanKind.SERVER]
    post = posts[0]
    trace_id = post.context.trace_id
    assert format(trace_id, "032x") == CALLER_TRACE  # the caller's traceparent continued
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in in_trace}
    stage_spans = [s for s in in_trace if s.kind == SpanKind.CONSUMER and s.name.startswith("stage-engine")]
    assert stage_spans and all(s.parent.span_id == post.context.span_id for s in stage_spans)
    # The only events in this namespace are this flow's: every record any consumer processed, the stage changes
    # loyalty paid the ledger entry for included, is in the POST's trace; a stage change's parent is the stage
    # engine's span of the touchpoint that caused it.
    consumed = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert {format(s.context.trace_id, "032x") for s in consumed} == {CALLER_TRACE}
    changes = [s for s in consumed if s.name.startswith("loyalty")
               and s.attributes["cloudevents.event_type"] == STAGE_CHANGED_TYPE]
    assert changes and all(by_id[s.parent.span_id] in stage_spans for s in changes)
    assert entry.cause_event_id == f"customer:{customer}"  # the stage bonus, once per person

    text = logs.text
    lines = logs.lines()
    change_ids = {s.attributes["messaging.message.id"] for s in changes}
    assert any(line.get("trace_id") == CALLER_TRACE and line.get("event_id") in change_ids
               and line.get("customer_id") == customer for line in lines), lines[-20:]
    assert any(line.get("trace_id") for line in lines if line.get("logger", "").startswith("lifecycle_ingest"))
    for secret in (email, server_key, ADMIN_TOKEN, API_TOKEN, STAGE_ADMIN_TOKEN, "@example.com"):
        assert secret not in text, secret
