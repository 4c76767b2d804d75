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
from lifecycle_shared.kafka.registry import Emitted, Typed, each
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import contacts, gateway, last_events, latest, merges
from lifecycle_messaging.domain.people import Alias


async def merge_identities(conn: AsyncConnection, typed: Typed[IdentityMergedData]) -> Emitted:
    merge = typed.data
    survivor = await survivor_of(conn, merge)
    absorbed = sorted({merge.absorbed_id, *merge.absorbed_ids} - {merge.survivor_id, survivor.survivor_id})
    if not absorbed:
        return []
    await merges.record_aliases(conn, absorbed, survivor)
    await merges.move_messages(conn, absorbed, survivor)
    await merges.move_contact(conn, absorbed, survivor)
    await latest.hand_over(conn, absorbed, survivor.survivor_id)
    await gateway.hand_over(conn, absorbed, survivor.survivor_id)  # holdout groups: the survivor's stand
    await last_events.hand_over(conn, absorbed, survivor.survivor_id)  # what cancels waiting messages
    if known := (await contacts.known(conn, [survivor.survivor_id])).get(survivor.survivor_id):
        await merges.readdress(conn, survivor.survivor_id, known.email)
        await contacts.release(conn, [contacts.Contact(
            email=known.email, linked_ids=[survivor.survivor_id, *known.linked_ids], user_id=known.user_id)])
    return []


async def survivor_of(conn: AsyncConnection, merge: IdentityMergedData) -> Alias:
    """The merge's survivor - or, when that key was itself merged into another already (merges of
    one person may arrive out of order), where it went, unless that is another known user."""
    merged_into = (await merges.aliases_of(conn, [merge.survivor_id])).get(merge.survivor_id)
    if merged_into is not None and merge.user_id in (None, merged_into.user_id):
        return merged_into
    return Alias(survivor_id=merge.survivor_id, user_id=merge.user_id)


handle_identity_merged = each(merge_identities)
