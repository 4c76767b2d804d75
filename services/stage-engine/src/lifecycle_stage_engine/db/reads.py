"""The read side: profiles, their identities and stored history, lists by stage."""

from __future__ import annotations

from typing import Any

from lifecycle_shared.events import TransitionRecord
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import identities, profiles, transitions
from lifecycle_stage_engine.db.repository import anonymous_ids_of, profile_of
from lifecycle_stage_engine.domain.profiles import Profile


async def find_profile(conn: AsyncConnection, *, customer_id: str) -> tuple[Profile, list[dict[str, str]]] | None:
    """By userId or anonymousId (a merged-away id finds its survivor), with all its identities."""
    row = (await conn.execute(
        select(profiles).join(identities, identities.c.profile_id == profiles.c.id)
        .where(identities.c.id_value == customer_id, identities.c.id_type.in_(("user", "anonymous")),
               profiles.c.merged_into.is_(None))
        .order_by(identities.c.id_type.desc())  # 'user' before 'anonymous'
        .limit(1))).first()
    if row is None:
        return None
    profile = profile_of(row)
    ids = (await conn.execute(select(identities.c.id_type, identities.c.id_value)
                              .where(identities.c.profile_id == profile.id)
                              .order_by(identities.c.id_type, identities.c.id_value))).all()
    profile.anonymous_ids = [i.id_value for i in ids if i.id_type == "anonymous"]
    return profile, [{"type": i.id_type, "value": i.id_value} for i in ids]


async def history_of(conn: AsyncConnection, *, profile_id: str) -> list[dict[str, Any]]:
    """The stored stage history in event-time order (superseded transitions left out), each transition with
    the fields of a `TransitionRecord`."""
    rows = (await conn.execute(
        select(*(transitions.c[name] for name in TransitionRecord.model_fields))
        .where(transitions.c.profile_id == profile_id, transitions.c.superseded_at.is_(None))
        # Ties in time go as the timeline orders them: by the causing event's id (byte-wise), then as stored.
        .order_by(transitions.c.event_time, transitions.c.cause_event_ids[1].collate("C"), transitions.c.seq)
    )).mappings().all()
    return [dict(row) for row in rows]


async def list_profiles(conn: AsyncConnection, *, stage: str | None, after: str | None, limit: int) -> list[Profile]:
    """Live profiles (in one stage, if given) in id order after the cursor."""
    query = select(profiles).where(profiles.c.merged_into.is_(None))
    if stage is not None:
        query = query.where(profiles.c.stage == stage)
    if after is not None:
        query = query.where(profiles.c.id > after)
    rows = (await conn.execute(query.order_by(profiles.c.id).limit(limit))).all()
    page = [profile_of(row) for row in rows]
    anonymous = await anonymous_ids_of(conn, [p.id for p in page])
    for profile in page:
        profile.anonymous_ids = sorted(anonymous[profile.id])
    return page


async def scores_of(conn: AsyncConnection, *, profile_id: str) -> Any:
    """The profile's row of the latest analytics refresh (document, scored_at), or None."""
    return (await conn.execute(text("SELECT document, scored_at FROM customer_scores WHERE profile_id = :id"),
                               {"id": profile_id})).first()
