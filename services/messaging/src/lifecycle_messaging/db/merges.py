"""Identity merges: aliases of absorbed keys, and moving their messages and address to the survivor.
Functions take the caller's connection and never commit.

Only what may follow moves (`domain.people.follows`, computed in SQL as in Python): messages and an
address of nobody known, or of the survivor's user. Every statement is idempotent, so a merge
applied twice changes nothing the second time.
"""

from __future__ import annotations

from sqlalchemy import Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import gateway, last_events, latest
from lifecycle_messaging.db.contacts import MESSAGE_OWNER_SQL, REPEATS_SQL
from lifecycle_messaging.db.models import aliases
from lifecycle_messaging.domain.people import Alias, person_of


async def aliases_of(conn: AsyncConnection, ids: list[str]) -> dict[str, Alias]:
    if not ids:
        return {}
    rows = await conn.execute(select(aliases).where(aliases.c.absorbed_id.in_(ids)))
    return {row.absorbed_id: Alias(survivor_id=row.survivor_id, user_id=row.user_id) for row in rows}


# `domain.people.follows`: a message of nobody known, or of the survivor's user.
_FOLLOWING = f"m.customer_id = ANY(:absorbed) AND COALESCE({MESSAGE_OWNER_SQL}, :user) IS NOT DISTINCT FROM :user"
_ABSORBED, _IDS = bindparam("absorbed", type_=ARRAY(Text)), bindparam("ids", type_=ARRAY(Text))
_USER, _PERSON = bindparam("user", type_=Text), bindparam("person", type_=Text)
# One statement: a waiting message that repeats what the person has queued or sent is superseded as it moves (the
# repeat judged on the messages as they were before the move, as a supersede run first would judge it).
_move_messages = text(
    "UPDATE messages m SET customer_id = :survivor, user_id = COALESCE(:user, m.user_id), "
    "linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || :ids)), "
    f"status = CASE WHEN m.status = 'awaiting_contact' AND {REPEATS_SQL.format(person=':person')} "
    "THEN 'superseded' ELSE m.status END "
    f"WHERE {_FOLLOWING}"
).bindparams(_ABSORBED, _IDS, _USER, _PERSON)


async def move_messages(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    """The absorbed keys' messages become the survivor's (linked to every id of theirs); waiting ones
    that repeat what the survivor has queued or sent are superseded."""
    person = person_of(survivor.survivor_id, owner=survivor.user_id)
    await conn.execute(_move_messages, {"absorbed": absorbed, "ids": [*absorbed, survivor.survivor_id],
                                        "user": survivor.user_id, "person": person,
                                        "survivor": survivor.survivor_id})


# What follows the messages, in one statement (each part writes a table no other part reads or writes; the
# aliases' two parts and the messages' three write disjoint rows):
# - absorbed -> survivor, and whatever pointed at an absorbed key now points at the survivor; an alias to one known
#   user is never re-pointed to another (the re-pointing leaves out the absorbed keys' own aliases: those the first
#   part set point at the survivor, and those it left alone it leaves alone for the same reason);
# - the survivor gets the latest address of an absorbed key, unless they have one of their own; only an address
#   of the same owner: one given anonymously never becomes a known user's (`known`: the survivor's address now);
# - the latest transition, the holdout groups and the last events the cancelling reads (`db.latest`,
#   `db.gateway`, `db.last_events`);
# - the survivor's queued emails (a guest's moved in, held by quiet hours or the caps) go to the address known for
#   the survivor now, not to the one the guest had when they were queued;
# - the messages waiting for that address are released as `db.contacts.release` releases them (those repeating
#   what the owner has queued or sent superseded).
_WAITING = (f"m.status = 'awaiting_contact' AND m.linked_ids && k.ids AND {MESSAGE_OWNER_SQL} "
            "IS NOT DISTINCT FROM k.user_id")
_REPEATS = REPEATS_SQL.format(person="k.user_id")
_hand_over = text(
    "WITH aliased AS (INSERT INTO aliases (absorbed_id, survivor_id, user_id) "
    "SELECT a, :survivor, :user FROM unnest(CAST(:absorbed AS text[])) a ON CONFLICT (absorbed_id) DO UPDATE "
    "SET survivor_id = excluded.survivor_id, user_id = excluded.user_id "
    "WHERE aliases.user_id IS NULL OR aliases.user_id = excluded.user_id), "
    "repointed AS (UPDATE aliases SET survivor_id = :survivor, user_id = COALESCE(:user, user_id) "
    "WHERE survivor_id = ANY(:absorbed) AND absorbed_id <> ALL(:absorbed) AND (user_id IS NULL OR user_id = :user)), "
    "copied AS (INSERT INTO contacts (customer_id, email, linked_ids, user_id) "
    "SELECT :survivor, c.email, ARRAY(SELECT DISTINCT unnest(c.linked_ids || :ids)), c.user_id FROM contacts c "
    "WHERE c.customer_id = ANY(:absorbed) AND c.user_id IS NOT DISTINCT FROM :user "
    "ORDER BY c.updated_at DESC, c.customer_id LIMIT 1 "
    "ON CONFLICT (customer_id) DO NOTHING RETURNING email, linked_ids, user_id), "
    "known AS (SELECT email, ARRAY[CAST(:survivor AS text)] || linked_ids AS ids, user_id FROM ("
    "SELECT email, linked_ids, user_id FROM copied UNION ALL "
    "SELECT email, linked_ids, user_id FROM contacts WHERE customer_id = :survivor) k LIMIT 1), "
    f"latest AS ({latest.HAND_OVER_SQL}), holdout AS ({gateway.HAND_OVER_SQL}), "
    f"cancelling AS ({last_events.HAND_OVER_SQL}), "
    "readdressed AS (UPDATE messages SET recipient = k.email FROM known k WHERE customer_id = :survivor "
    "AND status = 'queued' AND channel = 'email' AND recipient IS DISTINCT FROM k.email), "
    f"superseded AS (UPDATE messages m SET status = 'superseded' FROM known k WHERE {_WAITING} AND {_REPEATS}), "
    "released AS (UPDATE messages m SET status = 'queued', recipient = k.email, next_attempt_at = now(), "
    "linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || k.ids)) "
    f"FROM known k WHERE {_WAITING} AND ({_REPEATS}) IS NOT TRUE) "
    "SELECT 1"
).bindparams(_ABSORBED, _IDS, _USER)


async def hand_over(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    """The absorbed keys become the survivor's aliases; the survivor takes their address, latest transition,
    holdout groups and last events; its queued emails go to its address, and the messages waiting for one are
    released (one statement)."""
    await conn.execute(_hand_over, {"absorbed": absorbed, "ids": [*absorbed, survivor.survivor_id],
                                    "user": survivor.user_id, "survivor": survivor.survivor_id})
