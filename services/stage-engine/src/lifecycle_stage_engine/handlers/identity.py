"""Identity resolution: find, create or merge the profile a touchpoint belongs to.

Segment semantics: `anonymousId` before sign-up, `userId` after; an event carrying both (or an
`alias`) links them, and an anonymous-only profile is merged into the identified one. A profile
that already has a different userId is never merged (guardrail against shared devices).
"""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.db.repository import Profile


def _ids(touchpoint: TouchpointData) -> list[tuple[str, str]]:
    ids = []
    if touchpoint.userId:
        ids.append(("user", touchpoint.userId))
    if touchpoint.anonymousId:
        ids.append(("anonymous", touchpoint.anonymousId))
    if touchpoint.type == "alias" and touchpoint.previousId:
        ids.append(("anonymous", touchpoint.previousId))
    return ids


async def resolve_profile(conn: AsyncConnection, touchpoint: TouchpointData) -> tuple[Profile, list[Profile]]:
    """The profile to apply the touchpoint to, and the profiles merged into it now."""
    ids = _ids(touchpoint)
    found = await repo.profiles_for_ids(conn, ids=ids)
    user_profile = found.get(("user", touchpoint.userId)) if touchpoint.userId else None
    others = {p.id: p for key, p in found.items() if key[0] == "anonymous"}
    target = user_profile or next(iter(others.values()), None)
    if target is not None and touchpoint.userId and target.user_id not in (None, touchpoint.userId):
        target = None  # the anonymousId belongs to someone else: never merge two known users
    if target is None:
        target = await repo.create_profile(conn, customer_id=touchpoint.userId or touchpoint.anonymousId or "",
                                           user_id=touchpoint.userId, seen_at=touchpoint.timestamp)
    merged = []
    for other in others.values():
        if other.id == target.id or other.user_id is not None:
            continue
        await repo.merge_profile(conn, source_id=other.id, target_id=target.id)
        target.first_seen_at = min(target.first_seen_at, other.first_seen_at)
        target.traits = {**other.traits, **target.traits}
        merged.append(other)
    if touchpoint.userId and target.user_id is None:
        target.user_id = target.customer_id = touchpoint.userId
    # New ids join the target; ids of merged profiles were moved by the merge; others stay put.
    linkable = [key for key in ids if key not in found]
    await repo.link_identities(conn, profile_id=target.id, ids=linkable)
    return target, merged
