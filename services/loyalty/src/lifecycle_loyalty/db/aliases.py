"""Which customer an id belongs to after identity merges, and the locks that keep merges and the
handlers that resolve ids through them apart. Never commits.

Every handler locks the ids it is given (shared), resolves them, and locks what they resolve to; a merge
takes the same locks exclusively. So an event for an id either lands before a merge of that id (and the
merge moves it) or after it (and resolves to the survivor): never in between, where nobody moves it.
Handlers' shared locks never wait for each other; only a merge racing an event of an id it absorbs (or
two merges of one chain) can deadlock, which PostgreSQL detects and the runner retries, record by record.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Text, bindparam, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db.models import customer_aliases

# The advisory-lock key space of customer locks (the two-int form: (space, hashtext(id))).
LOCK_SPACE = 7301


async def lock(conn: AsyncConnection, ids: Iterable[str], *, exclusive: bool) -> None:
    """Transaction-scoped locks on `ids`, taken in one statement and one order (by key)."""
    wanted = sorted(set(ids))
    if wanted:
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        await conn.execute(text(
            f"SELECT {function}(:space, k) FROM (SELECT DISTINCT hashtext(id) AS k FROM unnest(:ids) AS id "
            "ORDER BY k) AS keys").bindparams(bindparam("ids", type_=ARRAY(Text)), space=LOCK_SPACE),
            {"ids": wanted})


async def resolve(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, str]:
    """Each id -> the customer it belongs to now (itself unless it was merged into another)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await conn.execute(select(customer_aliases.c.alias_id, customer_aliases.c.survivor_id)
                              .where(customer_aliases.c.alias_id.in_(wanted)))
    survivors = dict(rows.all())
    return {id_: survivors.get(id_, id_) for id_ in wanted}


async def lock_and_resolve(conn: AsyncConnection, ids: Iterable[str], *, exclusive: bool = False) -> dict[str, str]:
    """Lock `ids` and the customers they resolve to, then resolve them: what they resolve to can no longer
    change before the transaction ends (a merge that committed while we waited is seen: re-resolved)."""
    given = set(ids)
    wanted, locked, resolved = set(given), set[str](), {}
    while not wanted <= locked:
        await lock(conn, wanted - locked, exclusive=exclusive)
        locked |= wanted
        resolved = await resolve(conn, given)
        wanted = set(resolved.values())
    return resolved


async def absorb(conn: AsyncConnection, absorbed: list[str], *, survivor_id: str, merge_event_id: str) -> list[str]:
    """Point `absorbed` (and the ids already merged into them) at `survivor_id`, which must be no alias.
    An id already merged into another customer stays with it. Returns the absorbed ids now the survivor's."""
    if not absorbed:
        return []
    await conn.execute(update(customer_aliases).where(customer_aliases.c.survivor_id.in_(absorbed))
                       .values(survivor_id=survivor_id))
    await conn.execute(insert(customer_aliases).on_conflict_do_nothing(index_elements=["alias_id"]), [
        {"alias_id": alias_id, "survivor_id": survivor_id, "merge_event_id": merge_event_id}
        for alias_id in sorted(absorbed)])
    rows = await conn.execute(select(customer_aliases.c.alias_id).where(
        customer_aliases.c.alias_id.in_(absorbed), customer_aliases.c.survivor_id == survivor_id)
        .order_by(customer_aliases.c.alias_id))
    return list(rows.scalars())


async def members(conn: AsyncConnection, survivor_ids: Iterable[str]) -> dict[str, str]:
    """Every id of these customers (each survivor and the ids merged into it) -> its survivor."""
    wanted = sorted(set(survivor_ids))
    rows = await conn.execute(select(customer_aliases.c.alias_id, customer_aliases.c.survivor_id)
                              .where(customer_aliases.c.survivor_id.in_(wanted)))
    return {**{id_: id_ for id_ in wanted}, **dict(rows.all())}


async def ids_of(conn: AsyncConnection, survivor_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each of these customers -> every id of theirs (itself, then the ids merged into it)."""
    wanted = sorted(set(survivor_ids))
    rows = await conn.execute(select(customer_aliases.c.alias_id, customer_aliases.c.survivor_id)
                              .where(customer_aliases.c.survivor_id.in_(wanted)))
    found: dict[str, list[str]] = {id_: [id_] for id_ in wanted}
    for alias_id, survivor_id in sorted(rows.all()):
        found[survivor_id].append(alias_id)
    return found
