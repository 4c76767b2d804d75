"""The stage engine's part of a GDPR erasure (docs/erasure.md): find the customer by any of their ids, erase
their personal data, keep the anonymised rows aggregates are made of, record the erasure.

Deleted: identities, scores, unrelayed outbox rows keyed by one of their ids. Anonymised: the profile (and the
profiles merged into it) keep their opaque internal id, stage and timestamps, the customer key becomes
`erased:<profile id>`, userId and traits go; transitions take the same key; touchpoints keep their name, time and
the amounts of their properties (revenue, totals), nothing else. A repeat by any erased id (found by its keyed
hash) returns the first run's report and changes nothing - unless the id belongs to someone again (an event after
the erasure started a new person, docs/erasure.md): then that new profile is erased, under its own erasure id."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifecycle_shared.erasure import erasure_id, id_hash, id_hashes
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Properties a touchpoint keeps after an erasure: amounts and counts, what revenue and funnel figures add up.
KEPT_PROPERTIES = ("revenue", "total", "subtotal", "value", "price", "quantity", "currency", "discount", "tax",
                   "shipping")


@dataclass(frozen=True)
class ErasureReport:
    erasure_id: str
    requested_at: datetime
    counts: dict[str, int]
    id_hashes: list[str]  # of every id it erased (what customer.erasure_requested carries)
    repeated: bool  # this call found an earlier erasure and changed nothing


_FIND_ERASURE = text("SELECT erasure_id::text, counts, id_hashes, requested_at FROM erasures "
                     "WHERE id_hashes @> ARRAY[:hash]")
_FIND_PROFILE = text(
    "SELECT p.id::text FROM profiles p WHERE p.id = COALESCE("
    "(SELECT profile_id FROM identities WHERE id_value = :id LIMIT 1),"
    "(SELECT COALESCE(merged_into, id) FROM profiles WHERE customer_id = :id OR user_id = :id LIMIT 1))")
# The profile and every profile merged into it, at any depth.
_PROFILES = text(
    "WITH RECURSIVE family(id) AS (SELECT CAST(:root AS uuid) UNION "
    "SELECT p.id FROM profiles p JOIN family f ON p.merged_into = f.id) SELECT id::text FROM family")
_IDS = text(
    "SELECT id_value FROM identities WHERE profile_id = ANY(CAST(:pids AS uuid[])) "
    "UNION SELECT customer_id FROM profiles WHERE id = ANY(CAST(:pids AS uuid[])) "
    "UNION SELECT user_id FROM profiles WHERE id = ANY(CAST(:pids AS uuid[])) AND user_id IS NOT NULL "
    "UNION SELECT customer_id FROM transitions WHERE profile_id = ANY(CAST(:pids AS uuid[])) "
    "UNION SELECT customer_id FROM customer_scores WHERE profile_id = ANY(CAST(:pids AS uuid[]))")
_STEPS: tuple[tuple[str, str], ...] = (
    ("identities", "DELETE FROM identities WHERE profile_id = ANY(CAST(:pids AS uuid[]))"),
    ("customer_scores", "DELETE FROM customer_scores WHERE profile_id = ANY(CAST(:pids AS uuid[]))"),
    ("outbox", "DELETE FROM outbox WHERE key = ANY(CAST(:ids AS text[]))"),
    ("touchpoints", "UPDATE touchpoints SET properties = COALESCE((SELECT jsonb_object_agg(k, v) FROM "
                    "jsonb_each(properties) AS e(k, v) WHERE k = ANY(CAST(:kept AS text[]))), '{}'::jsonb) "
                    "WHERE profile_id = ANY(CAST(:pids AS uuid[]))"),
    ("transitions", "UPDATE transitions SET customer_id = 'erased:' || profile_id::text "
                    "WHERE profile_id = ANY(CAST(:pids AS uuid[]))"),
    ("profiles", "UPDATE profiles SET customer_id = 'erased:' || id::text, user_id = NULL, traits = '{}'::jsonb, "
                 "updated_at = :now WHERE id = ANY(CAST(:pids AS uuid[]))"),
    ("replay_jobs", "UPDATE replay_jobs SET scope = '{\"customer_id\": \"erased\"}'::jsonb "
                    "WHERE scope->>'customer_id' = ANY(CAST(:ids AS text[]))"),
)
_RECORD = text("INSERT INTO erasures (erasure_id, id_hashes, counts, requested_at) "
               "VALUES (:erasure_id, :hashes, CAST(:counts AS jsonb), :now) ON CONFLICT (erasure_id) DO NOTHING")


async def erase(conn: AsyncConnection, any_id: str, *, pepper: bytes, now: datetime) -> ErasureReport | None:
    """Erase the customer `any_id` names (in the caller's transaction); None when no customer or erasure has it."""
    root = (await conn.execute(_FIND_PROFILE, {"id": any_id})).scalar()
    if root is None:  # nobody has the id now: an earlier erasure may have had it
        earlier = (await conn.execute(_FIND_ERASURE, {"hash": id_hash(pepper, any_id)})).first()
        if earlier is None:
            return None
        return ErasureReport(earlier.erasure_id, earlier.requested_at, dict(earlier.counts), list(earlier.id_hashes),
                             repeated=True)
    # A live profile is erased even if an earlier erasure had the id: events after an erasure start a new person.
    pids = list((await conn.execute(_PROFILES, {"root": root})).scalars())
    ids, counts = await _erase_profiles(conn, pids, [any_id], now=now)
    the_id, hashes = erasure_id(root), id_hashes(pepper, ids)
    await conn.execute(_RECORD, {"erasure_id": the_id, "hashes": hashes, "counts": json.dumps(counts), "now": now})
    return ErasureReport(the_id, now, counts, hashes, repeated=False)


async def _erase_profiles(conn: AsyncConnection, pids: list[str], known_ids: list[str], *,
                          now: datetime) -> tuple[list[str], dict[str, int]]:
    """Erase these profiles (`_STEPS`): every id they hold, with `known_ids`, and the counts per table."""
    ids = sorted({*(await conn.execute(_IDS, {"pids": pids})).scalars(), *known_ids} - {""})
    params: dict[str, Any] = {"pids": pids, "ids": ids, "kept": list(KEPT_PROPERTIES), "now": now}
    counts: dict[str, int] = {}
    for table, sql in _STEPS:
        counts[table] = (await conn.execute(text(sql), params)).rowcount or 0
    return ids, counts


# Every id the stage engine holds for someone (not yet erased): what a keyed hash can name.
_HELD_IDS = text(
    "SELECT id_value FROM identities UNION SELECT customer_id FROM profiles "
    "UNION SELECT user_id FROM profiles WHERE user_id IS NOT NULL UNION SELECT customer_id FROM transitions "
    "UNION SELECT customer_id FROM customer_scores")
_RECORDED_AMONG = text("SELECT erasure_id::text FROM erasures WHERE erasure_id = ANY(CAST(:ids AS uuid[]))")


async def erase_again(conn: AsyncConnection, erasures: list[ErasureReport], *, pepper: bytes,
                      now: datetime) -> list[ErasureReport]:
    """Apply erasures recorded elsewhere (messaging's or loyalty's `erasures`: the same erasure id, hashes and
    requested_at) that this database has no record of - it was restored from a backup older than them: erase the
    profiles holding an id one of their hashes names (one scan of every id held, hashed), and record each under
    its own erasure id, hashes and requested_at. Those already recorded here change nothing. What was erased."""
    recorded_ids = set((await conn.execute(_RECORDED_AMONG, {"ids": [e.erasure_id for e in erasures]})).scalars())
    missing = [e for e in erasures if e.erasure_id not in recorded_ids]
    if not missing:
        return []
    held = {id_hash(pepper, value): value for value in (await conn.execute(_HELD_IDS)).scalars()
            if value and not value.startswith("erased:")}
    done: list[ErasureReport] = []
    for wanted in missing:
        ids = sorted({held[h] for h in wanted.id_hashes if h in held})
        roots = {root for value in ids if (root := (await conn.execute(_FIND_PROFILE, {"id": value})).scalar())}
        pids = sorted({pid for root in sorted(roots)
                       for pid in (await conn.execute(_PROFILES, {"root": root})).scalars()})
        _, counts = await _erase_profiles(conn, pids, ids, now=now)
        await conn.execute(_RECORD, {"erasure_id": wanted.erasure_id, "hashes": wanted.id_hashes,
                                     "counts": json.dumps(counts), "now": wanted.requested_at})
        done.append(ErasureReport(wanted.erasure_id, wanted.requested_at, counts, wanted.id_hashes, repeated=False))
    return done


_BY_ID = text("SELECT erasure_id::text, counts, id_hashes, requested_at FROM erasures "
              "WHERE erasure_id = CAST(:id AS uuid)")


async def recorded(conn: AsyncConnection, erasure_id: str) -> ErasureReport | None:
    """The erasure recorded under `erasure_id` (a uuid), as its first run reported it; None: no such erasure."""
    row = (await conn.execute(_BY_ID, {"id": erasure_id})).first()
    return None if row is None else ErasureReport(row.erasure_id, row.requested_at, dict(row.counts),
                                                  list(row.id_hashes), repeated=True)


_SINCE = text("SELECT erasure_id::text, counts, id_hashes, requested_at FROM erasures WHERE requested_at >= :since "
              "ORDER BY requested_at, erasure_id")


async def recorded_since(conn: AsyncConnection, since: datetime) -> list[ErasureReport]:
    """Every erasure recorded with `requested_at` at or after `since`, oldest first. The stage engine's, messaging's
    and loyalty's `erasures` tables have the same columns: `conn` may be any of their databases."""
    rows = await conn.execute(_SINCE, {"since": since})
    return [ErasureReport(r.erasure_id, r.requested_at, dict(r.counts), list(r.id_hashes), repeated=True) for r in rows]
