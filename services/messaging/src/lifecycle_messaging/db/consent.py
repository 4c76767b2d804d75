"""Consent per address, channel and purpose, and the append-only log of its changes (`domain.consent`).
Functions take the caller's connection and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import consent_changes, consents, messages


@dataclass(frozen=True)
class Applied:
    """A change that stands: what the address's consent became, and from what."""

    address: str
    state: str
    previous: str | None
    source: str
    reference: str | None
    customer_id: str | None


async def states_of(conn: AsyncConnection, addresses: list[str], *, channel: str, purpose: str,
                    lock: bool = False) -> dict[str, str]:
    """address -> state, for those with one; `lock`: held until the transaction ends (changes to the
    same address then apply one after another)."""
    if not addresses:
        return {}
    query = select(consents.c.address, consents.c.state).where(
        consents.c.address.in_(sorted(set(addresses))), consents.c.channel == channel, consents.c.purpose == purpose)
    if lock:
        query = query.order_by(consents.c.address).with_for_update()
    return {row.address: row.state for row in await conn.execute(query)}


async def record(conn: AsyncConnection, applied: list[Applied], *, channel: str, purpose: str,
                 at: datetime) -> None:
    """The new states, and each change appended to the log (two statements)."""
    if not applied:
        return
    final = {change.address: change for change in applied}  # the last change of an address stands
    stmt = insert(consents)
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["address", "channel", "purpose"], set_={
            "state": stmt.excluded.state, "source": stmt.excluded.source, "changed_at": stmt.excluded.changed_at}),
        [{"address": c.address, "channel": channel, "purpose": purpose, "state": c.state, "source": c.source,
          "changed_at": at} for _, c in sorted(final.items())])
    await conn.execute(insert(consent_changes), [
        {"address": c.address, "channel": channel, "purpose": purpose, "state": c.state,
         "previous_state": c.previous, "source": c.source, "reference": c.reference,
         "customer_id": c.customer_id, "at": at} for c in applied])


async def history(conn: AsyncConnection, address: str, *, channel: str, purpose: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(consent_changes).where(consent_changes.c.address == address, consent_changes.c.channel == channel,
                                      consent_changes.c.purpose == purpose).order_by(consent_changes.c.seq))
    return [dict(row) for row in rows.mappings()]


async def message_recipient(conn: AsyncConnection, message_id: str) -> tuple[str | None, str] | None:
    """The address a message went (or goes) to and its customer; None: no such message."""
    row = (await conn.execute(select(messages.c.recipient, messages.c.customer_id)
                              .where(messages.c.id == message_id))).first()
    return None if row is None else (row.recipient, row.customer_id)
