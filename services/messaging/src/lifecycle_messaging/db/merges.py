"""Identity merges: aliases of absorbed keys, and moving their messages and address to the survivor.
Functions take the caller's connection and never commit.

Only what may follow moves (`domain.people.follows`, computed in SQL as in Python): messages and an
address of nobody known, or of the survivor's user. Every statement is idempotent, so a merge
applied twice changes nothing the second time.
"""

from __future__ import annotations

from sqlalchemy import Text, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db.contacts import MESSAGE_OWNER_SQL, REPEATS_SQL
from lifecycle_messaging.db.models import aliases
from lifecycle_messaging.domain.people import Alias, person_of


async def aliases_of(conn: AsyncConnection, ids: list[str]) -> dict[str, Alias]:
    if not ids:
        return {}
    rows = await conn.execute(select(aliases).where(aliases.c.absorbed_id.in_(ids)))
    return {row.absorbed_id: Alias(survivor_id=row.survivor_id, user_id=row.user_id) for row in rows}


_repoint = text(
    "UPDATE aliases SET survivor_id = :survivor, user_id = COALESCE(:user, user_id) "
    "WHERE survivor_id = ANY(:absorbed) AND (user_id IS NULL OR user_id = :user)"
).bindparams(bindparam("absorbed", type_=ARRAY(Text)), bindparam("user", type_=Text))


async def record_aliases(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    """absorbed -> survivor, and whatever pointed at an absorbed key now points at the survivor. An
    alias to one known user is never re-pointed to another."""
    stmt = insert(aliases)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["absorbed_id"],
            set_={"survivor_id": stmt.excluded.survivor_id, "user_id": stmt.excluded.user_id},
            where=aliases.c.user_id.is_(None) | (aliases.c.user_id == stmt.excluded.user_id)),
        [{"absorbed_id": key, "survivor_id": survivor.survivor_id, "user_id": survivor.user_id} for key in absorbed])
    await conn.execute(_repoint, {"survivor": survivor.survivor_id, "user": survivor.user_id, "absorbed": absorbed})


# `domain.people.follows`: a message of nobody known, or of the survivor's user.
_FOLLOWING = f"m.customer_id = ANY(:absorbed) AND COALESCE({MESSAGE_OWNER_SQL}, :user) IS NOT DISTINCT FROM :user"
_ABSORBED, _IDS = bindparam("absorbed", type_=ARRAY(Text)), bindparam("ids", type_=ARRAY(Text))
_USER, _PERSON = bindparam("user", type_=Text), bindparam("person", type_=Text)
_supersede_repeats = text(
    f"UPDATE messages m SET status = 'superseded' WHERE {_FOLLOWING} AND m.status = 'awaiting_contact' "
    f"AND {REPEATS_SQL.format(person=':person')}"
).bindparams(_ABSORBED, _USER, _PERSON)
_move_messages = text(
    "UPDATE messages m SET customer_id = :survivor, user_id = COALESCE(:user, m.user_id), "
    f"linked_ids = ARRAY(SELECT DISTINCT unnest(m.linked_ids || :ids)) WHERE {_FOLLOWING}"
).bindparams(_ABSORBED, _IDS, _USER)


async def move_messages(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    """The absorbed keys' messages become the survivor's (linked to every id of theirs); waiting ones
    that repeat what the survivor has queued or sent are superseded."""
    person = person_of(survivor.survivor_id, owner=survivor.user_id)
    await conn.execute(_supersede_repeats, {"absorbed": absorbed, "user": survivor.user_id, "person": person})
    await conn.execute(_move_messages, {"absorbed": absorbed, "ids": [*absorbed, survivor.survivor_id],
                                        "user": survivor.user_id, "survivor": survivor.survivor_id})


_copy_contact = text(
    "INSERT INTO contacts (customer_id, email, linked_ids, user_id) "
    "SELECT :survivor, c.email, ARRAY(SELECT DISTINCT unnest(c.linked_ids || :ids)), c.user_id FROM contacts c "
    "WHERE c.customer_id = ANY(:absorbed) AND c.user_id IS NOT DISTINCT FROM :user "
    "ORDER BY c.updated_at DESC, c.customer_id LIMIT 1 "
    "ON CONFLICT (customer_id) DO NOTHING"
).bindparams(_ABSORBED, _IDS, _USER)


async def move_contact(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    """The survivor gets the latest address of an absorbed key, unless they have one of their own.
    Only an address of the same owner: one given anonymously never becomes a known user's."""
    await conn.execute(_copy_contact, {"absorbed": absorbed, "ids": [*absorbed, survivor.survivor_id],
                                       "user": survivor.user_id, "survivor": survivor.survivor_id})


_readdress = text(
    "UPDATE messages SET recipient = :email WHERE customer_id = :survivor AND status = 'queued' "
    "AND channel = 'email' AND recipient IS DISTINCT FROM :email"
).bindparams(bindparam("email", type_=Text), bindparam("survivor", type_=Text))


async def readdress(conn: AsyncConnection, survivor_id: str, email: str) -> None:
    """The survivor's queued emails - a guest's moved in by the merge, held by quiet hours or the caps - go to
    the address known for the survivor now, not to the one the guest had when they were queued."""
    await conn.execute(_readdress, {"email": email, "survivor": survivor_id})
