"""All SQL of the stage engine. Functions take the caller's connection and never commit."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import identities, profiles, touchpoints, transitions
from lifecycle_stage_engine.domain.stages import Facts, Stage, Touch


@dataclass
class Profile:
    id: str
    customer_id: str
    user_id: str | None
    stage: Stage | None
    stage_since: datetime | None
    facts: Facts
    traits: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime
    anonymous_ids: list[str] = field(default_factory=list)


def _facts_from_json(data: dict[str, Any]) -> Facts:
    if not data:
        return Facts()
    return Facts(**{**data, "order_ids": tuple(data["order_ids"]),
                    "refunded_order_ids": tuple(data["refunded_order_ids"]),
                    "last_event_time": datetime.fromisoformat(data["last_event_time"])
                    if data.get("last_event_time") else None})


def _facts_to_json(facts: Facts) -> dict[str, Any]:
    data = asdict(facts)
    data["last_event_time"] = facts.last_event_time.isoformat() if facts.last_event_time else None
    return data


def _profile(row: Any) -> Profile:
    return Profile(id=row.id, customer_id=row.customer_id, user_id=row.user_id,
                   stage=Stage(row.stage) if row.stage else None, stage_since=row.stage_since,
                   facts=_facts_from_json(row.facts), traits=row.traits,
                   first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at)


async def profiles_for_ids(conn: AsyncConnection, *, ids: list[tuple[str, str]]) -> dict[tuple[str, str], Profile]:
    """Live profiles linked to (id_type, id_value) pairs, locked for update."""
    if not ids:
        return {}
    rows = (await conn.execute(
        select(identities.c.id_type, identities.c.id_value, profiles)
        .join(profiles, profiles.c.id == identities.c.profile_id)
        .where(tuple_(identities.c.id_type, identities.c.id_value).in_(ids))
        .with_for_update(of=profiles)
    )).all()
    return {(row.id_type, row.id_value): _profile(row) for row in rows}


async def create_profile(conn: AsyncConnection, *, customer_id: str, user_id: str | None,
                         seen_at: datetime) -> Profile:
    profile_id = str(uuid.uuid4())
    await conn.execute(profiles.insert().values(
        id=profile_id, customer_id=customer_id, user_id=user_id, facts={}, traits={},
        first_seen_at=seen_at, last_seen_at=seen_at))
    return Profile(id=profile_id, customer_id=customer_id, user_id=user_id, stage=None,
                   stage_since=None, facts=Facts(), traits={}, first_seen_at=seen_at, last_seen_at=seen_at)


async def link_identities(conn: AsyncConnection, *, profile_id: str, ids: list[tuple[str, str]]) -> None:
    if ids:
        await conn.execute(
            insert(identities).values([{"id_type": k, "id_value": v, "profile_id": profile_id} for k, v in ids])
            .on_conflict_do_update(index_elements=["id_type", "id_value"], set_={"profile_id": profile_id}))


async def merge_profile(conn: AsyncConnection, *, source_id: str, target_id: str) -> None:
    """Move the source profile's identities and history into the target."""
    await conn.execute(update(identities).where(identities.c.profile_id == source_id).values(profile_id=target_id))
    await conn.execute(update(touchpoints).where(touchpoints.c.profile_id == source_id).values(profile_id=target_id))
    await conn.execute(update(profiles).where(profiles.c.id == source_id)
                       .values(merged_into=target_id, customer_id=f"merged:{source_id}"))


async def record_touchpoint(conn: AsyncConnection, *, profile_id: str, touch: Touch) -> None:
    await conn.execute(insert(touchpoints).values(
        event_id=touch.event_id, profile_id=profile_id, name=touch.name, event_time=touch.time,
        properties=touch.properties).on_conflict_do_nothing(index_elements=["event_id"]))


async def history(conn: AsyncConnection, *, profile_id: str) -> list[Touch]:
    rows = (await conn.execute(
        select(touchpoints.c.event_id, touchpoints.c.name, touchpoints.c.event_time, touchpoints.c.properties)
        .where(touchpoints.c.profile_id == profile_id)
    )).all()
    return [Touch(event_id=r.event_id, name=r.name, time=r.event_time, properties=r.properties) for r in rows]


async def save_profile(conn: AsyncConnection, profile: Profile) -> None:
    await conn.execute(update(profiles).where(profiles.c.id == profile.id).values(
        customer_id=profile.customer_id, user_id=profile.user_id,
        stage=profile.stage.value if profile.stage else None, stage_since=profile.stage_since,
        facts=_facts_to_json(profile.facts), traits=profile.traits,
        last_seen_at=profile.last_seen_at, first_seen_at=profile.first_seen_at))


async def add_transition(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(transitions).values(**values).on_conflict_do_nothing(index_elements=["id"]))


async def find_profile(conn: AsyncConnection, *, customer_id: str) -> Profile | None:
    """By userId or anonymousId, following merges."""
    row = (await conn.execute(
        select(profiles).join(identities, identities.c.profile_id == profiles.c.id)
        .where(identities.c.id_value == customer_id)
        .order_by(identities.c.id_type.desc())  # 'user' before 'anonymous'
        .limit(1)
    )).first()
    if row is None:
        return None
    profile = _profile(row)
    profile.anonymous_ids = await anonymous_ids(conn, profile_id=profile.id)
    return profile


async def anonymous_ids(conn: AsyncConnection, *, profile_id: str) -> list[str]:
    return list((await conn.execute(
        select(identities.c.id_value).where(identities.c.profile_id == profile_id,
                                            identities.c.id_type == "anonymous")
        .order_by(identities.c.id_value))).scalars())


async def transitions_of(conn: AsyncConnection, *, profile_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(transitions).where(transitions.c.profile_id == profile_id)
        .order_by(transitions.c.seq)
    )).mappings().all()
    return [dict(row) for row in rows]
