"""All SQL of the stage engine's event path. Functions take the caller's connection, never commit."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import identities, profiles, touchpoints, transitions
from lifecycle_stage_engine.domain.identity import IdKey
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.stages import Facts, Order, Stage, Touch
from lifecycle_stage_engine.domain.timeline import Moved, State

STATE_VERSION = 3


def _key(value: list | None) -> tuple[datetime, str] | None:
    return (datetime.fromisoformat(value[0]), value[1]) if value else None


def state_from_json(data: dict[str, Any], stage: str | None, since: datetime | None) -> tuple[State, bool]:
    """The stored timeline state, and whether it predates STATE_VERSION (then it is rebuilt from
    the event log the next time the customer is touched)."""
    if data.get("v") != STATE_VERSION:
        return State(stage=Stage(stage) if stage else None, stage_since=since), bool(data)
    facts = Facts(touchpoints=data["touchpoints"], intent=data["intent"], advocacy=data["advocacy"],
                  orders=tuple(Order(o[0], Decimal(o[1]), datetime.fromisoformat(o[2]), o[3], o[4])
                               for o in data["orders"]),
                  refunded_order_ids=tuple(data["refunded_order_ids"]), last_event=_key(data["last_event"]))
    return State(facts=facts, stage=Stage(stage) if stage else None, stage_since=since,
                 as_of=_key(data["as_of"])), False


def state_to_json(state: State) -> dict[str, Any]:
    facts = state.facts
    return {"v": STATE_VERSION, "touchpoints": facts.touchpoints, "intent": facts.intent,
            "advocacy": facts.advocacy,
            "orders": [[o.order_id, str(o.amount), o.time.isoformat(), o.event_id, o.historical] for o in facts.orders],
            "refunded_order_ids": list(facts.refunded_order_ids),
            "last_event": [facts.last_event[0].isoformat(), facts.last_event[1]] if facts.last_event else None,
            "as_of": [state.as_of[0].isoformat(), state.as_of[1]] if state.as_of else None}


def profile_of(row: Any) -> Profile:
    state, outdated = state_from_json(row.facts, row.stage, row.stage_since)
    return Profile(id=row.id, customer_id=row.customer_id, user_id=row.user_id, state=state, traits=row.traits,
                   first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at, acquisition=row.acquisition,
                   acquired_at=row.acquired_at, previous_stage=row.previous_stage, merges=row.merges,
                   outdated=outdated)


async def lock_ids(conn: AsyncConnection, values: list[str]) -> None:
    """Serialise the transactions that touch the same id values (new ones included, which no row
    lock can cover) until commit: transaction-scoped advisory locks, taken in one fixed order so
    two batches never wait on each other in a circle."""
    if values:
        await conn.execute(_LOCK_IDS, {"keys": sorted({hash_id(v) for v in values})})


_LOCK_IDS = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


def hash_id(value: str) -> int:
    """A stable signed 64-bit key for an id value (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big", signed=True)


async def load_profiles(conn: AsyncConnection, ids: list[IdKey]) -> tuple[dict[str, Profile], dict[IdKey, str]]:
    """The live profiles owning these ids, locked (in id order), and who owns which id. A profile
    merged away by another transaction while this one waited for its lock is followed to its survivor."""
    if not ids:
        return {}, {}
    rows = (await conn.execute(
        select(identities.c.id_type, identities.c.id_value, profiles)
        .join(profiles, profiles.c.id == identities.c.profile_id)
        .where(tuple_(identities.c.id_type, identities.c.id_value).in_(ids))
        .order_by(profiles.c.id).with_for_update(of=profiles))).all()
    found = {row.id: row for row in rows}
    merged = {row.id: row.merged_into for row in rows if row.merged_into}
    while pending := sorted({target for target in merged.values() if target not in found}):
        for row in (await conn.execute(select(profiles).where(profiles.c.id.in_(pending))
                                       .order_by(profiles.c.id).with_for_update())).all():
            found[row.id] = row
            if row.merged_into:
                merged[row.id] = row.merged_into

    def live(profile_id: str) -> str:
        while profile_id in merged:
            profile_id = merged[profile_id]
        return profile_id

    loaded = {pid: profile_of(row) for pid, row in found.items() if pid not in merged}
    owner = {(row.id_type, row.id_value): live(row.id) for row in rows}
    for profile_id, values in (await anonymous_ids_of(conn, list(loaded))).items():
        loaded[profile_id].anonymous_ids = sorted(values)
    return loaded, owner


async def anonymous_ids_of(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {profile_id: [] for profile_id in profile_ids}
    if profile_ids:
        rows = (await conn.execute(
            select(identities.c.profile_id, identities.c.id_value)
            .where(identities.c.profile_id.in_(profile_ids), identities.c.id_type == "anonymous"))).all()
        for row in rows:
            found[row.profile_id].append(row.id_value)
    return found


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


async def merge_profiles(conn: AsyncConnection, merged_into: dict[str, str]) -> None:
    """Move each absorbed profile's identities, history and transitions to its survivor."""
    for source_id, target_id in sorted(merged_into.items()):
        for table in (identities, touchpoints, transitions):
            await conn.execute(update(table).where(table.c.profile_id == source_id).values(profile_id=target_id))
        await conn.execute(update(profiles).where(profiles.c.id == source_id)
                           .values(merged_into=target_id, customer_id=f"merged:{source_id}", user_id=None,
                                   due_at=None))


async def insert_touchpoints(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """rows: event_id, profile_id, name, event_time, properties, historical (one statement for all)."""
    if rows:
        await conn.execute(insert(touchpoints).on_conflict_do_nothing(index_elements=["event_id"]), rows)


async def histories(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, list[Touch]]:
    found: dict[str, list[Touch]] = defaultdict(list)
    if profile_ids:
        rows = (await conn.execute(
            select(touchpoints.c.profile_id, touchpoints.c.event_id, touchpoints.c.name, touchpoints.c.event_time,
                   touchpoints.c.properties, touchpoints.c.historical)
            .where(touchpoints.c.profile_id.in_(profile_ids)))).all()
        for r in rows:
            found[r.profile_id].append(Touch(event_id=r.event_id, name=r.name, time=r.event_time,
                                             properties=r.properties, historical=r.historical))
    return found


async def current_transition_ids(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    if profile_ids:
        rows = (await conn.execute(select(transitions.c.profile_id, transitions.c.id).where(
            transitions.c.profile_id.in_(profile_ids), transitions.c.superseded_at.is_(None)))).all()
        for row in rows:
            found[row.profile_id].add(row.id)
    return found


def transition_row(profile: Profile, moved: Moved, processed_at: datetime) -> dict[str, Any]:
    return {"id": moved.id, "profile_id": profile.id, "customer_id": profile.customer_id,
            "from_stage": moved.from_stage, "to_stage": moved.to_stage, "reason": moved.reason,
            "rule_version": moved.rule_version, "cause_event_ids": list(moved.cause_event_ids),
            "event_time": moved.time, "processed_at": processed_at, "historical": moved.historical}


async def add_transitions(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert, or bring back a row a recompute had superseded and a later one contains again."""
    if rows:
        stmt = insert(transitions)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["id"], set_={"superseded_at": None, "profile_id": stmt.excluded.profile_id},
            where=transitions.c.superseded_at.is_not(None)), rows)


async def supersede(conn: AsyncConnection, ids: list[str], at: datetime) -> None:
    if ids:
        await conn.execute(update(transitions).where(transitions.c.id.in_(ids)).values(superseded_at=at))


_save_profile = update(profiles).where(profiles.c.id == bindparam("b_id")).values(
    customer_id=bindparam("b_customer_id"), user_id=bindparam("b_user_id"), stage=bindparam("b_stage"),
    stage_since=bindparam("b_stage_since"), previous_stage=bindparam("b_previous_stage"),
    facts=bindparam("b_facts"), traits=bindparam("b_traits"), first_seen_at=bindparam("b_first_seen_at"),
    last_seen_at=bindparam("b_last_seen_at"), acquisition=bindparam("b_acquisition"),
    acquired_at=bindparam("b_acquired_at"), merges=bindparam("b_merges"), due_at=bindparam("b_due_at"),
    updated_at=func.now())


async def save_profiles(conn: AsyncConnection, changed: list[tuple[Profile, datetime | None]]) -> None:
    """(profile, when time alone moves it next)."""
    if changed:
        await conn.execute(_save_profile, [{
            "b_id": p.id, "b_customer_id": p.customer_id, "b_user_id": p.user_id,
            "b_stage": p.state.stage.value if p.state.stage else None, "b_stage_since": p.state.stage_since,
            "b_previous_stage": p.previous_stage, "b_facts": state_to_json(p.state), "b_traits": p.traits,
            "b_first_seen_at": p.first_seen_at, "b_last_seen_at": p.last_seen_at, "b_acquisition": p.acquisition,
            "b_acquired_at": p.acquired_at, "b_merges": p.merges, "b_due_at": due} for p, due in changed])


async def due_profiles(conn: AsyncConnection, *, now: datetime, limit: int) -> list[Profile]:
    """Profiles time has moved on (due at or before `now`), locked; ones another instance holds are skipped."""
    rows = (await conn.execute(
        select(profiles).where(profiles.c.due_at <= now, profiles.c.merged_into.is_(None))
        .order_by(profiles.c.due_at).limit(limit).with_for_update(skip_locked=True))).all()
    return [profile_of(row) for row in rows]
