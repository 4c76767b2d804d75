"""All SQL of the stage engine. Functions take the caller's connection and never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from lifecycle_shared.orders import ZERO
from sqlalchemy import bindparam, func, select, tuple_, update
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
    facts_outdated: bool = False  # stored in an older shape: refold from the event log


FACTS_VERSION = 2


def _facts_from_json(data: dict[str, Any]) -> tuple[Facts, bool]:
    """The stored facts, and whether they predate FACTS_VERSION (then the handler refolds them
    from the event log the next time the customer is touched)."""
    if not data:
        return Facts(), False
    last = datetime.fromisoformat(data["last_event_time"]) if data.get("last_event_time") else None
    if data.get("v") != FACTS_VERSION:  # v1 kept order ids and a running revenue, not per-order amounts
        return Facts(touchpoints=data["touchpoints"], intent=data["intent"], advocacy=data["advocacy"],
                     orders=tuple((order_id, ZERO) for order_id in data["order_ids"]),
                     refunded_order_ids=tuple(data["refunded_order_ids"]), last_event_time=last), True
    return Facts(touchpoints=data["touchpoints"], intent=data["intent"], advocacy=data["advocacy"],
                 orders=tuple((order_id, Decimal(amount)) for order_id, amount in data["orders"]),
                 refunded_order_ids=tuple(data["refunded_order_ids"]), last_event_time=last), False


def _facts_to_json(facts: Facts) -> dict[str, Any]:
    return {"v": FACTS_VERSION, "touchpoints": facts.touchpoints, "intent": facts.intent,
            "advocacy": facts.advocacy, "orders": [[order_id, str(amount)] for order_id, amount in facts.orders],
            "refunded_order_ids": list(facts.refunded_order_ids),
            "last_event_time": facts.last_event_time.isoformat() if facts.last_event_time else None}


def _profile(row: Any) -> Profile:
    facts, outdated = _facts_from_json(row.facts)
    return Profile(id=row.id, customer_id=row.customer_id, user_id=row.user_id,
                   stage=Stage(row.stage) if row.stage else None, stage_since=row.stage_since,
                   facts=facts, traits=row.traits, first_seen_at=row.first_seen_at,
                   last_seen_at=row.last_seen_at, facts_outdated=outdated)


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


def new_profile(*, customer_id: str, user_id: str | None, seen_at: datetime) -> Profile:
    return Profile(id=str(uuid.uuid4()), customer_id=customer_id, user_id=user_id, stage=None,
                   stage_since=None, facts=Facts(), traits={}, first_seen_at=seen_at, last_seen_at=seen_at)


async def insert_profiles(conn: AsyncConnection, created: list[Profile]) -> None:
    if created:
        await conn.execute(profiles.insert(), [
            {"id": p.id, "customer_id": p.customer_id, "user_id": p.user_id, "facts": {}, "traits": {},
             "first_seen_at": p.first_seen_at, "last_seen_at": p.last_seen_at} for p in created])


async def link_identities(conn: AsyncConnection, links: list[tuple[str, str, str]]) -> None:
    """links: (id_type, id_value, profile_id)."""
    if links:
        stmt = insert(identities)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["id_type", "id_value"],
                                                      set_={"profile_id": stmt.excluded.profile_id}),
                           [{"id_type": k, "id_value": v, "profile_id": p} for k, v, p in links])


async def merge_profile(conn: AsyncConnection, *, source_id: str, target_id: str) -> None:
    """Move the source profile's identities, history and transitions into the target."""
    await conn.execute(update(identities).where(identities.c.profile_id == source_id).values(profile_id=target_id))
    await conn.execute(update(touchpoints).where(touchpoints.c.profile_id == source_id).values(profile_id=target_id))
    await conn.execute(update(transitions).where(transitions.c.profile_id == source_id).values(profile_id=target_id))
    await conn.execute(update(profiles).where(profiles.c.id == source_id)
                       .values(merged_into=target_id, customer_id=f"merged:{source_id}"))


async def insert_touchpoints(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """rows: event_id, profile_id, name, event_time, properties (one statement for all)."""
    if rows:
        await conn.execute(insert(touchpoints).on_conflict_do_nothing(index_elements=["event_id"]), rows)


async def history(conn: AsyncConnection, *, profile_id: str) -> list[Touch]:
    rows = (await conn.execute(
        select(touchpoints.c.event_id, touchpoints.c.name, touchpoints.c.event_time, touchpoints.c.properties)
        .where(touchpoints.c.profile_id == profile_id)
    )).all()
    return [Touch(event_id=r.event_id, name=r.name, time=r.event_time, properties=r.properties) for r in rows]


_save_profile = update(profiles).where(profiles.c.id == bindparam("b_id")).values(
    customer_id=bindparam("b_customer_id"), user_id=bindparam("b_user_id"), stage=bindparam("b_stage"),
    stage_since=bindparam("b_stage_since"), facts=bindparam("b_facts"), traits=bindparam("b_traits"),
    first_seen_at=bindparam("b_first_seen_at"), last_seen_at=bindparam("b_last_seen_at"), updated_at=func.now())


async def save_profiles(conn: AsyncConnection, changed: list[Profile]) -> None:
    if changed:
        await conn.execute(_save_profile, [{
            "b_id": p.id, "b_customer_id": p.customer_id, "b_user_id": p.user_id,
            "b_stage": p.stage.value if p.stage else None, "b_stage_since": p.stage_since,
            "b_facts": _facts_to_json(p.facts), "b_traits": p.traits,
            "b_first_seen_at": p.first_seen_at, "b_last_seen_at": p.last_seen_at} for p in changed])


async def add_transitions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await conn.execute(insert(transitions).on_conflict_do_nothing(index_elements=["id"]), rows)


async def anonymous_ids_of(conn: AsyncConnection, *, profile_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {profile_id: [] for profile_id in profile_ids}
    if profile_ids:
        rows = (await conn.execute(
            select(identities.c.profile_id, identities.c.id_value)
            .where(identities.c.profile_id.in_(profile_ids), identities.c.id_type == "anonymous"))).all()
        for row in rows:
            found[row.profile_id].append(row.id_value)
    return found


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
    profile.anonymous_ids = sorted((await anonymous_ids_of(conn, profile_ids=[profile.id]))[profile.id])
    return profile


async def transitions_of(conn: AsyncConnection, *, profile_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(
        select(transitions).where(transitions.c.profile_id == profile_id)
        .order_by(transitions.c.seq)
    )).mappings().all()
    return [dict(row) for row in rows]
