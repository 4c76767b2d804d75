"""How soon each POSTed touchpoint showed in the services' own data, read from their databases after a step
(nothing polls while it runs).

- stage engine: `transitions.processed_at` (set just before the batch's commit); a transition's touchpoint
  is the cause among `cause_event_ids` POSTed last (it could not be applied before that one arrived);
- loyalty: `ledger_entries.created_at` (its transaction's start), the cause a touchpoint (an order's earn,
  a refund's reversal) or a transition (a stage bonus);
- messaging: `messages.created_at` (queued, or waiting for an address), the cause a transition (the
  stage_changed event's id is the transition's) or a touchpoint.

Each touchpoint counts once per service, at its *first* effect: a merge or a late event recomputes a
history and re-adds transitions (new rows, later `processed_at`) for causes applied long before.
CloudEvent ids are `<source>/<messageId>`: the messageId the load generator chose and remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg
from harness import Harness
from http_load import percentiles
from lifecycle_devstack.databases import plain_dsn
from lifecycle_devstack.services import BY_NAME

QUERIES = {
    "stage-engine": "SELECT id, cause_event_ids, processed_at FROM transitions WHERE processed_at >= $1",
    "loyalty": "SELECT cause_event_id, min(created_at) FROM ledger_entries WHERE created_at >= $1 GROUP BY 1",
    "messaging": "SELECT cause_event_id, min(created_at) FROM messages WHERE created_at >= $1 GROUP BY 1",
}


def _message_id(event_id: str) -> str:
    return event_id.rpartition("/")[2]


def first_effects(posted: dict[str, float], transitions: Iterable[tuple[str, list[str], float]],
                  caused: dict[str, Iterable[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """{service: {messageId: seconds from its POST to its first effect}}.

    `posted`: messageId -> POST wall time; `transitions`: (id, cause event ids, processed_at); `caused`:
    per other service, (cause event id, first created_at)."""
    by_transition: dict[str, str] = {}  # transition id -> the touchpoint it is counted for
    first: dict[str, dict[str, float]] = {"stage-engine": {}}
    for transition_id, causes, at in transitions:
        known = [m for m in map(_message_id, causes) if m in posted]
        if not known:
            continue
        key = max(known, key=posted.__getitem__)
        by_transition[transition_id] = key
        first["stage-engine"][key] = min(at, first["stage-engine"].get(key, at))
    for service, rows in caused.items():
        found = first.setdefault(service, {})
        for cause, at in rows:
            key = by_transition.get(cause) or _message_id(cause)
            if key in posted:
                found[key] = min(at, found.get(key, at))
    return {service: {key: at - posted[key] for key, at in found.items()} for service, found in first.items()}


def summary(delays: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per service: how many touchpoints showed an effect, and p50/p90/p99/max in ms."""
    return {service: {"touchpoints": len(found), **percentiles([s * 1000 for s in found.values()])}
            for service, found in delays.items()}


async def read_effects(harness: Harness, since: datetime) -> tuple[list, dict[str, list]]:
    """What the three services recorded at or after `since`: (transitions, {service: [(cause, at)]})."""
    rows: dict[str, list] = {}
    for service, query in QUERIES.items():
        url = f"{plain_dsn(harness.infra.postgres_url)}/{harness.config.database_prefix}{BY_NAME[service].database}"
        conn = await asyncpg.connect(url)
        try:
            rows[service] = await conn.fetch(query, since)
        finally:
            await conn.close()
    transitions = [(str(r[0]), list(r[1]), r[2].timestamp()) for r in rows.pop("stage-engine")]
    return transitions, {service: [(r[0], r[1].timestamp()) for r in found] for service, found in rows.items()}
