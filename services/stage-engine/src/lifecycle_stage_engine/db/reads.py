"""The read side: profiles, their identities and stored history, lists by stage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from lifecycle_shared.db import fetch_row
from lifecycle_shared.events import TransitionRecord
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import UUID
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


# The profile API's lookup in one statement: the live profile owning the id (its userId before an anonymousId of
# the same value), all its identities (in (type, value) order) and its latest analytics scores (or nulls). Run on
# the driver's connection (`fetch_row`): uuids as text, as the table's columns give them.
_CUSTOMER = f"""
SELECT {", ".join(f"p.{c.name}::text AS {c.name}" if isinstance(c.type, UUID) else f"p.{c.name}" for c in profiles.c)},
       ids.types AS id_types, ids.values AS id_values, s.document AS scores, s.scored_at
FROM identities i
JOIN profiles p ON p.id = i.profile_id
CROSS JOIN LATERAL (SELECT array_agg(o.id_type ORDER BY o.id_type, o.id_value) AS types,
                           array_agg(o.id_value ORDER BY o.id_type, o.id_value) AS values
                    FROM identities o WHERE o.profile_id = p.id) ids
LEFT JOIN customer_scores s ON s.profile_id = p.id
WHERE i.id_value = $1 AND i.id_type IN ('user', 'anonymous') AND p.merged_into IS NULL
ORDER BY i.id_type DESC
LIMIT 1"""


@dataclass(frozen=True)
class Customer:
    """What `GET /v1/customers/{id}` answers with: the profile, its identities, its latest scores."""

    profile: Profile
    identities: list[dict[str, str]]
    scores: dict[str, Any] | None
    scored_at: datetime | None


async def find_customer(conn: AsyncConnection, *, customer_id: str) -> Customer | None:
    """As `find_profile`, with the latest scores, in one round trip."""
    found = await fetch_row(conn, _CUSTOMER, customer_id)
    if found is None:
        return None
    row = SimpleNamespace(**found)
    profile = profile_of(row)
    pairs = list(zip(row.id_types, row.id_values, strict=True))
    profile.anonymous_ids = [value for kind, value in pairs if kind == "anonymous"]
    return Customer(profile=profile, identities=[{"type": kind, "value": value} for kind, value in pairs],
                    scores=row.scores, scored_at=row.scored_at)


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

