"""Loyalty's part of a GDPR erasure (docs/erasure.md), on real PostgreSQL through the real runner: a customer's
orders and points; the erasure, given only the keyed hashes of their ids, leaves no id in any column of any table
(found before: the positive control) and the ledger's sums unchanged; applying it again is a no-op."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from lifecycle_loyalty.db import erasure
from lifecycle_shared.erasure import id_hashes
from sqlalchemy import text

from tests.support.erasure import scan_database
from tests.support.loyalty import apply, order_event, stage_event

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PEPPER = b"erasure-test-pepper"
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
