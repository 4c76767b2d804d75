"""All SQL of the stage engine's event path. Functions take the caller's connection, never commit."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from lifecycle_shared.events import sent_with_server_key
from lifecycle_shared.stages import JOURNEY
from sqlalchemy import ARRAY, TextClause, any_, cast, select, text, update
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db.models import identities, profiles, touchpoints, transitions
from lifecycle_stage_engine.domain.identity import IdKey
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.stages import Facts, Order, Stage, Touch
from lifecycle_stage_engine.domain.timeline import State, Transition

STATE_VERSION = 3


def _key(value: list | None) -> tuple[datetime, str] | None:
    return (datetime.fromisoformat(value[0]), value[1]) if value else None


def state_from_json(data: dict[str, Any], stage: str | None, since: datetime | None) -> tuple[State, bool]:
    """The stored timeline state, and whether it predates STATE_VERSION (then it is rebuilt from
    the event log the next time the customer is touched)."""
    if data.get("v") != STATE_VERSION:
        return State(stage=Stage(stage) if stage else None, stage_since=since), bool(data)
    facts = Facts(touchpoints=data["touchpoints"], intent=data["intent"], advocacy=data["advocacy"],
                  orders=tuple(Order(o[0], Decimal(o[1]), datetime.fromisoformat(o[2]), o[3], o[4],
                                     # stored before orders kept it: as the event id tells (orders need a server key)
                                     o[5] if len(o) > 5 else sent_with_server_key(o[3]))
                               for o in data["orders"]),
                  refunded_order_ids=tuple(data["refunded_order_ids"]), last_event=_key(data["last_event"]),
                  doubted_at=datetime.fromisoformat(data["doubted_at"]) if data.get("doubted_at") else None)
    return State(facts=facts, stage=Stage(stage) if stage else None, stage_since=since,
                 as_of=_key(data["as_of"])), False


def state_to_json(state: State) -> dict[str, Any]:
    """The state as `json_text` writes it (times become RFC 3339 text, as `state_from_json` reads them)."""
    facts = state.facts
    return {"v": STATE_VERSION, "touchpoints": facts.touchpoints, "intent": facts.intent,
            "advocacy": facts.advocacy,
            "orders": [(o.order_id, str(o.amount), o.time, o.event_id, o.historical, o.verified)
                       for o in facts.orders],
            "refunded_order_ids": facts.refunded_order_ids, "last_event": facts.last_event, "as_of": state.as_of,
            "doubted_at": facts.doubted_at}


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
    rows = (await conn.execute(_OWNERS, {"kinds": [kind for kind, _ in ids],
                                         "values": [value for _, value in ids]})).all()
    found = {row.id: row for row in rows}
    merged = {row.id: row.merged_into for row in rows if row.merged_into}
    while pending := sorted({target for target in merged.values() if target not in found}):
        for row in (await conn.execute(_PROFILES_BY_ID, {"ids": pending})).all():
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


# Ids and profile ids go as arrays: one statement text whatever the batch holds (prepared once).
_PROFILE_COLUMNS = ("p.id::text AS id, p.customer_id, p.user_id, p.stage, p.stage_since, p.previous_stage, p.facts, "
                    "p.traits, p.first_seen_at, p.last_seen_at, p.acquisition, p.acquired_at, p.merges, "
                    "p.merged_into::text AS merged_into")
_OWNERS = text(
    f"SELECT i.id_type, i.id_value, {_PROFILE_COLUMNS} FROM identities i JOIN profiles p ON p.id = i.profile_id "
    "WHERE (i.id_type, i.id_value) IN (SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:values AS text[]))) "
    "ORDER BY p.id FOR UPDATE OF p")
_PROFILES_BY_ID = text(f"SELECT {_PROFILE_COLUMNS} FROM profiles p WHERE p.id = ANY(CAST(:ids AS uuid[])) "
                       "ORDER BY p.id FOR UPDATE")


async def anonymous_ids_of(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {profile_id: [] for profile_id in profile_ids}
    if profile_ids:
        for row in (await conn.execute(_ANONYMOUS_IDS, {"ids": profile_ids})).all():
            found[row.profile_id].append(row.id_value)
    return found


_ANONYMOUS_IDS = text("SELECT profile_id::text AS profile_id, id_value FROM identities "
                      "WHERE profile_id = ANY(CAST(:ids AS uuid[])) AND id_type = 'anonymous'")


async def execute_together(conn: AsyncConnection, statements: list[Statement | None]) -> None:
    """Writes to different tables in ONE round trip, as data-modifying CTEs: PostgreSQL runs each once, to
    completion, on the statement's snapshot - so only for writes none of which reads what another writes.
    None: nothing to write of that kind. One statement text per combination (prepared once each)."""
    chosen = [statement for statement in statements if statement is not None]
    if chosen:
        params: dict[str, Any] = {}
        for _, values in chosen:
            params.update(values)
        await conn.execute(_together(tuple(sql for sql, _ in chosen)), params)


Statement = tuple[str, dict[str, Any]]


@functools.lru_cache(maxsize=32)
def _together(parts: tuple[str, ...]) -> TextClause:
    if len(parts) == 1:
        return text(parts[0])
    return text("WITH " + ", ".join(f"w{n} AS ({sql})" for n, sql in enumerate(parts)) + " SELECT 1")


def insert_profiles(created: list[Profile]) -> Statement | None:
    if not created:
        return None
    return _INSERT_PROFILES, {
        "ids": [p.id for p in created], "customer_ids": [p.customer_id for p in created],
        "user_ids": [p.user_id for p in created], "first_seen": [p.first_seen_at for p in created],
        "last_seen": [p.last_seen_at for p in created]}


_INSERT_PROFILES = (
    "INSERT INTO profiles (id, customer_id, user_id, facts, traits, first_seen_at, last_seen_at) "
    "SELECT id, customer_id, user_id, '{}', '{}', first_seen, last_seen FROM unnest(CAST(:ids AS uuid[]), "
    "CAST(:customer_ids AS text[]), CAST(:user_ids AS text[]), CAST(:first_seen AS timestamptz[]), "
    "CAST(:last_seen AS timestamptz[])) AS r (id, customer_id, user_id, first_seen, last_seen)")


def link_identities(links: list[tuple[str, str, str]]) -> Statement | None:
    """links: (id_type, id_value, profile_id); an id linked twice goes to the last profile named."""
    if not links:
        return None
    last = {(kind, value): profile_id for kind, value, profile_id in links}  # one row per id: one statement
    return _LINK_IDENTITIES, {"kinds": [kind for kind, _ in last], "values": [v for _, v in last],
                              "profile_ids": list(last.values())}


_LINK_IDENTITIES = (
    "INSERT INTO identities (id_type, id_value, profile_id) "
    "SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:values AS text[]), CAST(:profile_ids AS uuid[])) "
    "ON CONFLICT (id_type, id_value) DO UPDATE SET profile_id = EXCLUDED.profile_id")


async def rekey_profiles(conn: AsyncConnection, rekeyed: list[Profile]) -> None:
    """Stored anonymous profiles that identified: their key becomes the userId now (their old key is free)."""
    for profile in rekeyed:
        await conn.execute(update(profiles).where(profiles.c.id == profile.id)
                           .values(customer_id=profile.customer_id, user_id=profile.user_id))


async def merge_profiles(conn: AsyncConnection, merged_into: dict[str, str]) -> None:
    """Move each absorbed profile's identities, history and transitions to its survivor."""
    for source_id, target_id in sorted(merged_into.items()):
        for table in (identities, touchpoints, transitions):
            await conn.execute(update(table).where(table.c.profile_id == source_id).values(profile_id=target_id))
        await conn.execute(update(profiles).where(profiles.c.id == source_id)
                           .values(merged_into=target_id, customer_id=f"merged:{source_id}", user_id=None,
                                   due_at=None))


def insert_touchpoints(rows: list[tuple[str, str, str, datetime, dict, bool, bool]]) -> Statement | None:
    """rows: (event_id, profile_id, name, event_time, properties, historical, verified); one statement for all, its rows
    as one JSON document (one encoding call, not one per row)."""
    return (_INSERT_TOUCHPOINTS, {"touchpoint_rows": json_text(rows)}) if rows else None


_INSERT_TOUCHPOINTS = (
    "INSERT INTO touchpoints (event_id, profile_id, name, event_time, properties, historical, verified) "
    "SELECT v->>0, CAST(v->>1 AS uuid), v->>2, CAST(v->>3 AS timestamptz), v->4, CAST(v->>5 AS boolean), "
    "CAST(v->>6 AS boolean) "
    "FROM jsonb_array_elements(CAST(:touchpoint_rows AS jsonb)) AS v ON CONFLICT (event_id) DO NOTHING")


async def histories(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, list[Touch]]:
    found: dict[str, list[Touch]] = defaultdict(list)
    if profile_ids:
        for r in (await conn.execute(_HISTORIES, {"ids": profile_ids})).all():
            found[r.profile_id].append(Touch(event_id=r.event_id, name=r.name, time=r.event_time,
                                             properties=r.properties, historical=r.historical,
                                             verified=r.verified))
    return found


_HISTORIES = text("SELECT profile_id::text AS profile_id, event_id, name, event_time, properties, historical, "
                  "verified FROM touchpoints WHERE profile_id = ANY(CAST(:ids AS uuid[]))")


async def current_transition_ids(conn: AsyncConnection, profile_ids: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    if profile_ids:
        for row in (await conn.execute(_CURRENT_TRANSITIONS, {"ids": profile_ids})).all():
            found[row.profile_id].add(row.id)
    return found


_CURRENT_TRANSITIONS = text("SELECT profile_id::text AS profile_id, id::text AS id FROM transitions "
                            "WHERE profile_id = ANY(CAST(:ids AS uuid[])) AND superseded_at IS NULL")

_TRANSITION_FIELDS = ("id", "profile_id", "customer_id", "from_stage", "to_stage", "reason", "rule_version",
                      "cause_event_ids", "event_time", "processed_at", "historical", "verified")


def transition_row(profile: Profile, transition: Transition, processed_at: datetime) -> tuple:
    """The transitions row, as the tuple `add_transitions` takes (the order of _TRANSITION_FIELDS)."""
    t = transition
    return (t.id, profile.id, profile.customer_id, t.from_stage, t.to_stage, t.reason, t.rule_version,
            "{" + ",".join(map(_array_item, t.cause_event_ids)) + "}", t.time, processed_at, t.historical, t.verified)


def _array_item(value: str) -> str:
    """One element of a PostgreSQL array literal, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_transitions(rows: list[tuple]) -> Statement | None:
    """Insert, or bring back a row a recompute had superseded and a later one contains again."""
    if not rows:
        return None
    # One row per id in one statement; a repeated id would have been a no-op anyway (not superseded).
    first_by_id: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        first_by_id.setdefault(row[0], row)
    first = list(first_by_id.values())
    return _ADD_TRANSITIONS, dict(zip(_TRANSITION_FIELDS, map(list, zip(*first, strict=True)), strict=True))


_ADD_TRANSITIONS = (
    "INSERT INTO transitions (id, profile_id, customer_id, from_stage, to_stage, reason, rule_version, "
    "cause_event_ids, event_time, processed_at, historical, verified) "
    "SELECT id, profile_id, customer_id, from_stage, to_stage, reason, rule_version, CAST(cause_event_ids AS text[]), "
    "event_time, processed_at, historical, verified FROM unnest(CAST(:id AS uuid[]), CAST(:profile_id AS uuid[]), "
    "CAST(:customer_id AS text[]), CAST(:from_stage AS text[]), CAST(:to_stage AS text[]), CAST(:reason AS text[]), "
    "CAST(:rule_version AS text[]), CAST(:cause_event_ids AS text[]), CAST(:event_time AS timestamptz[]), "
    "CAST(:processed_at AS timestamptz[]), CAST(:historical AS boolean[]), CAST(:verified AS boolean[])) "
    "WITH ORDINALITY AS r (id, profile_id, customer_id, from_stage, to_stage, reason, rule_version, cause_event_ids, "
    "event_time, processed_at, historical, verified, n) ORDER BY n "
    "ON CONFLICT (id) DO UPDATE SET superseded_at = NULL, profile_id = EXCLUDED.profile_id "
    "WHERE transitions.superseded_at IS NOT NULL")


async def supersede(conn: AsyncConnection, ids: list[str], at: datetime) -> None:
    if ids:
        await conn.execute(update(transitions).where(transitions.c.id.in_(ids)).values(superseded_at=at))


def save_profiles(changed: list[tuple[Profile, datetime | None]]) -> Statement | None:
    """(profile, when time alone moves it next); one statement for all, its rows as one JSON document."""
    if not changed:
        return None
    rows = [(p.id, p.customer_id, p.user_id, p.state.stage.value if p.state.stage else None,
             p.state.stage_since, p.previous_stage, state_to_json(p.state), p.traits,
             p.first_seen_at, p.last_seen_at, p.acquisition, p.acquired_at, p.merges, due) for p, due in changed]
    return _SAVE_PROFILES, {"profile_rows": json_text(rows)}


def json_text(value: Any) -> str:
    """One JSON document for a statement's rows: orjson (times as RFC 3339; the hot path), or the standard
    library for what orjson refuses (integers beyond 64 bits, which a shop may put in properties or traits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC).decode()
    except TypeError:
        return json.dumps(value, default=_instant)


def _instant(value: datetime) -> str:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()


_SAVE_PROFILES = (
    "UPDATE profiles SET customer_id = v->>1, user_id = v->>2, stage = v->>3, "
    "stage_since = CAST(v->>4 AS timestamptz), previous_stage = v->>5, facts = v->6, traits = v->7, "
    "first_seen_at = CAST(v->>8 AS timestamptz), last_seen_at = CAST(v->>9 AS timestamptz), acquisition = v->10, "
    "acquired_at = CAST(v->>11 AS timestamptz), merges = CAST(v->>12 AS integer), "
    "due_at = CAST(v->>13 AS timestamptz), updated_at = now() "
    "FROM jsonb_array_elements(CAST(:profile_rows AS jsonb)) AS v WHERE profiles.id = CAST(v->>0 AS uuid)")


async def due_profiles(conn: AsyncConnection, *, now: datetime, limit: int) -> list[Profile]:
    """Profiles time has moved on (due at or before `now`), locked; ones another instance holds are skipped."""
    rows = (await conn.execute(
        select(profiles).where(profiles.c.due_at <= now, profiles.c.merged_into.is_(None))
        .order_by(profiles.c.due_at).limit(limit).with_for_update(skip_locked=True))).all()
    return [profile_of(row) for row in rows]


async def lock_journey_profiles(conn: AsyncConnection, ids: list[str]) -> list[Profile]:
    """Those of these live profiles in a journey stage, locked; ones another transaction holds are skipped."""
    rows = (await conn.execute(
        select(profiles).where(profiles.c.id == any_(cast(ids, ARRAY(UUID(as_uuid=False)))),
                               profiles.c.merged_into.is_(None), profiles.c.stage.in_([s.value for s in JOURNEY]))
        .order_by(profiles.c.id).with_for_update(skip_locked=True))).all()
    return [profile_of(row) for row in rows]
