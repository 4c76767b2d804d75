"""Loyalty's part of a GDPR erasure (docs/erasure.md), on real PostgreSQL through the real runner: a customer's
orders and points; the erasure, given only the keyed hashes of their ids, leaves no id in any column of any table
(found before: the positive control) and the ledger's sums unchanged; applying it again is a no-op."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_loyalty.db import erasure
from lifecycle_loyalty.main import create_app
from lifecycle_shared.erasure import id_hashes
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE, CloudEvent, ErasureRequestedData
from sqlalchemy import text

from tests.support.erasure import scan_database
from tests.support.in_process import running
from tests.support.loyalty import apply, loyalty_settings, order_event, stage_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PEPPER = b"erasure-test-pepper"
TOKEN = "erasure-test-api-token-5b2d7e"
_SUMS = text("SELECT (SELECT coalesce(sum(points), 0) FROM ledger_entries), "
             "(SELECT coalesce(sum(points), 0) FROM lots), (SELECT coalesce(sum(amount), 0) FROM orders), "
             "(SELECT count(*) FROM accounts)")


async def test_an_erased_customer_leaves_no_id_and_the_ledger_adds_up(loyalty_engine):
    h = uuid.uuid4().hex[:10]
    user, other = f"user-{h}", f"user-other-{h}"
    await apply(loyalty_engine, [order_event(user, "order_completed", f"o-{h}", at=T0, revenue=120),
                                 order_event(other, "order_completed", f"o2-{h}", at=T0, revenue=80),
                                 stage_event(user, at=T0 + timedelta(hours=1))])
    async with loyalty_engine.connect() as conn:
        sums_before = (await conn.execute(_SUMS)).first()
    before = await scan_database(loyalty_engine, [user])
    assert before[user] and "ledger_entries.customer_id" in before[user], before

    erasure_id = str(uuid.uuid4())
    hashes = id_hashes(PEPPER, [user, f"anon-{h}"])
    async with loyalty_engine.begin() as conn:
        counts = await erasure.erase(conn, erasure_id, hashes, pepper=PEPPER, now=T0 + timedelta(days=1))
    assert counts["ledger_entries"] >= 1 and counts["orders"] == 1 and counts["accounts"] == 1, counts

    assert (await scan_database(loyalty_engine, [user]))[user] == []
    assert (await scan_database(loyalty_engine, [other]))[other]  # someone else is untouched
    async with loyalty_engine.connect() as conn:
        assert (await conn.execute(_SUMS)).first() == sums_before

    async with loyalty_engine.begin() as conn:
        assert await erasure.erase(conn, erasure_id, hashes, pepper=PEPPER, now=T0 + timedelta(days=2)) == counts


def erasure_event(erasure_id: str, hashes: list[str], *, at: datetime) -> CloudEvent:
    data = ErasureRequestedData(erasure_id=erasure_id, id_hashes=hashes, requested_at=at)
    return CloudEvent(id=f"erasure/{erasure_id}", source="/stage-engine", type=ERASURE_REQUESTED_TYPE, time=at,
                      subject=erasure_id, data=data.model_dump(mode="json"))


async def test_the_erasure_event_through_the_runner_erases_once(loyalty_engine):
    """customer.erasure_requested as the consumer gets it (the real runner, inbox and route): erased; delivered
    again (a new id for the same erasure), nothing changes and the counts stay the first run's."""
    h = uuid.uuid4().hex[:10]
    user = f"user-{h}"
    await apply(loyalty_engine, [order_event(user, "order_completed", f"o-{h}", at=T0, revenue=50)])
    erasure_id = str(uuid.uuid4())
    event = erasure_event(erasure_id, id_hashes(PEPPER, [user]), at=T0 + timedelta(days=1))
    await apply(loyalty_engine, [event], erasure_pepper=PEPPER)
    assert (await scan_database(loyalty_engine, [user]))[user] == []
    async with loyalty_engine.connect() as conn:
        first = (await conn.execute(text("SELECT counts FROM erasures WHERE erasure_id = :e"),
                                    {"e": erasure_id})).scalar()
    assert first["orders"] == 1
    again = erasure_event(erasure_id, id_hashes(PEPPER, [user]), at=T0 + timedelta(days=2))
    again.id = f"erasure/{erasure_id}/again"
    await apply(loyalty_engine, [again], erasure_pepper=PEPPER)
    async with loyalty_engine.connect() as conn:
        assert (await conn.execute(text("SELECT counts FROM erasures WHERE erasure_id = :e"),
                                   {"e": erasure_id})).scalar() == first


async def test_the_report_is_served_with_the_read_api_token(namespace, loyalty_engine):
    """GET /v1/erasures/{erasure_id}: what the stage engine assembles its report from - the first run's
    counts once applied, 404 before (or for no such erasure)."""
    h = uuid.uuid4().hex[:10]
    user = f"user-{h}"
    await apply(loyalty_engine, [order_event(user, "order_completed", f"o-{h}", at=T0, revenue=30)])
    erasure_id = str(uuid.uuid4())
    settings = loyalty_settings(namespace, api_tokens=TOKEN)
    auth = {"authorization": f"Bearer {TOKEN}"}
    async with running(create_app(settings)) as client:
        assert (await client.get(f"/v1/erasures/{erasure_id}", headers=auth)).status_code == 404
        await apply(loyalty_engine, [erasure_event(erasure_id, id_hashes(PEPPER, [user]), at=T0)],
                    erasure_pepper=PEPPER)
        answer = await client.get(f"/v1/erasures/{erasure_id}", headers=auth)
        assert answer.status_code == 200, answer.text
        assert answer.json()["erasure_id"] == erasure_id and answer.json()["counts"]["orders"] == 1
        assert (await client.get(f"/v1/erasures/{erasure_id}")).status_code == 401
