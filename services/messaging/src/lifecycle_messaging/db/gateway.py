"""The gateway's SQL (`gateway.py`): holdout assignments, the sends the caps count, holding a message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, text, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import holdout_assignments, messages


async def assignments(conn: AsyncConnection, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The recorded group of each (campaign, person) that has one."""
    keys = sorted(set(pairs))
    if not keys:
        return {}
    table = holdout_assignments
    rows = await conn.execute(select(table.c.campaign, table.c.person, table.c.group)
                              .where(tuple_(table.c.campaign, table.c.person).in_(keys)))
    return {(row.campaign, row.person): row.group for row in rows}


Groups = Mapping[tuple[str, str], str]


async def assign(conn: AsyncConnection, groups: Groups, *, at: datetime) -> dict[tuple[str, str], str]:
    """Record these first assignments (append-only: one already there stands) and return the recorded groups."""
    if groups:
        rows = [{"campaign": c, "person": p, "group": g, "assigned_at": at} for (c, p), g in groups.items()]
        await conn.execute(insert(holdout_assignments).on_conflict_do_nothing(), rows)
    return await assignments(conn, groups)


# A merge (`db.merges.hand_over`): the survivor keeps its own assignments and takes, for campaigns it had none in,
# the absorbed keys' earliest (the absorbed keys' rows stay: append-only).
HAND_OVER_SQL = (
    "INSERT INTO holdout_assignments (campaign, person, \"group\", assigned_at) "
    "SELECT DISTINCT ON (h.campaign) h.campaign, :survivor, h.\"group\", h.assigned_at FROM holdout_assignments h "
    "WHERE h.person = ANY(:absorbed) ORDER BY h.campaign, h.assigned_at, h.person "
    "ON CONFLICT (campaign, person) DO NOTHING")


# The class of the advisory locks the gateway takes per customer (the other key: a hash of the customer key).
_CAPS_LOCK = 0x6D736763  # "msgc"


async def lock_customers(conn: AsyncConnection, customers: list[str]) -> None:
    """Take each customer's caps lock until the transaction ends, in one order (no deadlock between workers):
    a second worker judging the same customer's messages waits for this one's allotment, and counts it."""
    for customer in sorted(set(customers)):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:class, hashtext(:customer))"),
                           {"class": _CAPS_LOCK, "customer": customer})


async def sent_since(conn: AsyncConnection, customers: list[str], *, since: datetime,
                     judging: Iterable[str] = ()) -> dict[str, list[tuple[str, datetime]]]:
    """Each customer's sent messages (template, instant on the service's clock) from `since` on - and those a
    worker let go and is sending now (allotted, under an unexpired lease; the instant it let them go), other
    than the messages being judged (`judging`)."""
    if not customers:
        return {}
    m, judged = messages.c, sorted(judging)
    sending = and_(m.status == "queued", m.allotted_at >= since, m.next_attempt_at > func.now(),
                   m.id.not_in(judged) if judged else true())
    at = func.coalesce(m.sent_clock_at, m.allotted_at).label("at")
    rows = await conn.execute(select(m.customer_id, m.template, at).where(
        m.customer_id.in_(customers), or_(and_(m.status == "sent", m.sent_clock_at >= since), sending)))
    sent: dict[str, list[tuple[str, datetime]]] = {}
    for row in rows:
        sent.setdefault(row.customer_id, []).append((row.template, row.at))
    return sent


async def allot(conn: AsyncConnection, message_ids: Iterable[str], *, at: datetime) -> None:
    """Claimed messages the gateway lets go now: counted towards the caps while they are being sent."""
    if ids := sorted(message_ids):
        await conn.execute(update(messages).where(messages.c.id.in_(ids)).values(allotted_at=at))


async def hold(conn: AsyncConnection, until: dict[str, datetime], *, now: datetime) -> list[str]:
    """Hold claimed messages until their opening: due again then, the claim's attempt given back (a hold is
    no attempt), and - on their first hold - `due_at` moved to `now`, when the gateway first had them. The ids held."""
    held: list[str] = []
    for message_id, at in sorted(until.items()):
        held += (await conn.execute(
            update(messages).where(messages.c.id == message_id, messages.c.status == "queued")
            .values(next_attempt_at=at, held_until=at, attempts=messages.c.attempts - 1,
                    due_at=case((messages.c.held_until.is_(None), now), else_=messages.c.due_at))
            .returning(messages.c.id))).scalars().all()
    return held
