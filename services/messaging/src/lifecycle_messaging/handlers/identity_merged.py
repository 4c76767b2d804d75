"""identity.merged -> the absorbed keys' messages and address become the survivor's.

A guest's welcome waiting for an address moves to the customer they turned out to be, shows in
their message log, and goes out when their address is known - now, if it already is; one already queued
(held by quiet hours or the caps) goes to the survivor's address when they have one. The merge is
remembered as aliases, so a transition of an absorbed key that arrives after it (the stage
engine's topics are read in no order relative to the touchpoints) goes to the survivor at once; and
the survivor's latest transition seen becomes the latest of its own and the absorbed keys'
(`domain.suppression`), so what follows is judged against the whole person.

Merges apply one at a time: one may build on the one before it (a guest merged into another guest
who then identifies). A merge applied again changes nothing.
"""

from __future__ import annotations

from lifecycle_shared.events import IdentityMergedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import merges
from lifecycle_messaging.domain.people import Alias


async def handle_identity_merged(conn: AsyncConnection, events: list[Typed[IdentityMergedData]]) -> Emitted:
    """The run's merges in order, each seeing the ones before it applied. Where each survivor went is read for
    the whole run at once, and read again only for a merge whose survivor an earlier merge of the run moved."""
    merged_into = await merges.aliases_of(conn, sorted({typed.data.survivor_id for typed in events}))
    moved: set[str] = set()  # keys the run's merges so far absorbed: their aliases (and those to them) changed
    for typed in events:
        merge = typed.data
        alias = merged_into.get(merge.survivor_id)
        if merge.survivor_id in moved or (alias is not None and alias.survivor_id in moved):
            alias = (await merges.aliases_of(conn, [merge.survivor_id])).get(merge.survivor_id)
        survivor = survivor_of(merge, alias)
        absorbed = sorted({merge.absorbed_id, *merge.absorbed_ids} - {merge.survivor_id, survivor.survivor_id})
        if absorbed:
            await merge_identities(conn, absorbed, survivor)
            moved.update(absorbed)
    return []


async def merge_identities(conn: AsyncConnection, absorbed: list[str], survivor: Alias) -> None:
    await merges.move_messages(conn, absorbed, survivor)
    await merges.hand_over(conn, absorbed, survivor)  # aliases, address, latest transition, holdout groups, ...


def survivor_of(merge: IdentityMergedData, merged_into: Alias | None) -> Alias:
    """The merge's survivor - or, when that key was itself merged into another already (`merged_into`: merges of
    one person may arrive out of order), where it went, unless that is another known user."""
    if merged_into is not None and merge.user_id in (None, merged_into.user_id):
        return merged_into
    return Alias(survivor_id=merge.survivor_id, user_id=merge.user_id)
