"""Addresses and whose they are: contacts, claims on anonymous ids, and the release of messages
that waited for an address. Functions take the caller's connection and never commit.

A message and an address meet only when they have the same owner: the known user of the message
(its userId, or the user who claimed one of its anonymous ids) and the userId the address came
with. An address given without a userId belongs to no known user - a claim says whose a device
is, not who typed an address on it - so it reaches only anonymous messages nobody has claimed.
So the next person on a shared device gets the messages of nobody else.

A waiting message from another key of the owner (an anonymous profile they claimed) that the owner
already has queued or sent is superseded instead of released (`domain.people`): one person, one copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Text, bindparam, func, null, select, text, union_all
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.models import claims, contacts
from lifecycle_messaging.domain.people import DELIVERED


@dataclass(frozen=True)
class Contact:
    email: str
    linked_ids: list[str]  # every id the address came with
    user_id: str | None  # the userId it came with, if any: its owner


async def claim(conn: AsyncConnection, owners: dict[str, str], *, authoritative: bool) -> None:
    """Record anonymous id -> user. `authoritative` (the stage engine's view) overrides an earlier
    claim; otherwise the first claim stands."""
    if not owners:
        return
    stmt = insert(claims)
    stmt = (stmt.on_conflict_do_update(index_elements=["anonymous_id"], set_={"user_id": stmt.excluded.user_id})
            if authoritative else stmt.on_conflict_do_nothing(index_elements=["anonymous_id"]))
    await conn.execute(stmt, [{"anonymous_id": anonymous_id, "user_id": user_id}
                              for anonymous_id, user_id in sorted(owners.items())])


async def remember(conn: AsyncConnection, found: dict[str, Contact], *, replace: bool = True) -> None:
    """Record customer id -> contact, the latest one winning (`replace`), or only for ids that have none (an
    unverified address, `lifecycle_shared.trust`); one statement."""
    if found:
        stmt = insert(contacts)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["customer_id"], set_={
                "email": stmt.excluded.email, "linked_ids": stmt.excluded.linked_ids,
                "user_id": stmt.excluded.user_id, "updated_at": func.now()})
            if replace else stmt.on_conflict_do_nothing(index_elements=["customer_id"]),
            [{"customer_id": customer_id, "email": c.email, "linked_ids": c.linked_ids, "user_id": c.user_id}
             for customer_id, c in sorted(found.items())])


async def known(conn: AsyncConnection, customer_ids: list[str]) -> dict[str, Contact]:
    if not customer_ids:
        return {}
    rows = await conn.execute(select(contacts).where(contacts.c.customer_id.in_(customer_ids)))
    return {row.customer_id: Contact(email=row.email, linked_ids=list(row.linked_ids), user_id=row.user_id)
            for row in rows}


async def known_and_owners(conn: AsyncConnection, ids: list[str]) -> tuple[dict[str, Contact], dict[str, str]]:
    """The addresses known for these ids (`known`) and who claimed those of them that are anonymous ids: one
    statement."""
    if not ids:
        return {}, {}
    rows = await conn.execute(union_all(
        select(contacts.c.customer_id.label("id"), contacts.c.email, contacts.c.linked_ids, contacts.c.user_id)
        .where(contacts.c.customer_id.in_(ids)),
        select(claims.c.anonymous_id, null(), null(), claims.c.user_id).where(claims.c.anonymous_id.in_(ids))))
    known, owners = {}, {}
    for row in rows:
        if row.email is None:  # a claim (an address is never NULL)
            owners[row.id] = row.user_id
        else:
            known[row.id] = Contact(email=row.email, linked_ids=list(row.linked_ids), user_id=row.user_id)
    return known, owners


# The owner of a waiting message: its user, else the user who claimed its first claimed id (byte
# order, as `message_owner` has it).
MESSAGE_OWNER_SQL = ("COALESCE(m.user_id, (SELECT cl.user_id FROM claims cl "
                  'WHERE cl.anonymous_id = ANY(m.linked_ids) ORDER BY cl.anonymous_id COLLATE "C" LIMIT 1))')


def message_owner(user_id: str | None, linked_ids: list[str], claimed: dict[str, str]) -> str | None:
    """The owner of a message, as MESSAGE_OWNER_SQL computes it in SQL."""
    return user_id or next((claimed[i] for i in sorted(linked_ids, key=str.encode) if i in claimed), None)


_QUEUE = ("SET status = 'queued', recipient = {email}, next_attempt_at = now(), "
          "linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || {ids}))")
_SUPERSEDE = "SET status = 'superseded'"
# A waiting message of another key of `person` whose campaign the person already has queued or sent (`domain.people`).
REPEATS_SQL = ("(m.customer_id <> {person} AND EXISTS (SELECT 1 FROM messages o WHERE o.customer_id = {person} "
               f"AND o.campaign = m.campaign AND o.status IN ({', '.join(map(repr, DELIVERED))})))")
_WAITING_FOR = ("WHERE m.status = 'awaiting_contact' AND m.linked_ids && :ids "
                f"AND {MESSAGE_OWNER_SQL} IS NOT DISTINCT FROM :owner")
_ids_and_owner = (bindparam("ids", type_=ARRAY(Text)), bindparam("owner", type_=Text))
_supersede = text(f"UPDATE messages m {_SUPERSEDE} {_WAITING_FOR} AND {REPEATS_SQL.format(person=':owner')}"
                  ).bindparams(*_ids_and_owner)
_release = text(f"UPDATE messages m {_QUEUE.format(email=':email', ids=':ids')} {_WAITING_FOR}"
                ).bindparams(*_ids_and_owner)


async def release(conn: AsyncConnection, found: list[Contact]) -> None:
    """Queue the messages waiting for an address: for each contact, the waiting messages of the
    same owner linked to any of its ids (those repeating what the owner has are superseded first)."""
    if found:
        await conn.execute(_supersede, [{"ids": c.linked_ids, "owner": c.user_id} for c in found])
        await conn.execute(_release, [{"email": c.email, "ids": c.linked_ids, "owner": c.user_id} for c in found])


_RECENT = ("FROM contacts c WHERE c.updated_at > now() - make_interval(secs => :within_s) "
           "AND m.status = 'awaiting_contact' AND m.linked_ids @> ARRAY[c.customer_id] "
           f"AND {MESSAGE_OWNER_SQL} IS NOT DISTINCT FROM c.user_id")
_sweep_repeats = text(f"UPDATE messages m {_SUPERSEDE} {_RECENT} AND {REPEATS_SQL.format(person='c.user_id')}")
_sweep = text(f"UPDATE messages m {_QUEUE.format(email='c.email', ids='c.linked_ids')} {_RECENT}")


async def release_for_recent(conn: AsyncConnection, *, within_s: float) -> int:
    """Queue waiting messages of customers whose address was recorded in the last `within_s`.

    The handlers release messages as addresses arrive; this sweep closes the one gap they leave:
    a message and its address written by two concurrent transactions, neither seeing the other.
    """
    await conn.execute(_sweep_repeats, {"within_s": within_s})
    return (await conn.execute(_sweep, {"within_s": within_s})).rowcount
