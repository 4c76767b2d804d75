"""Replays and dry runs of a rule set over stored history, as background jobs with progress.

A replay re-runs the rule set in force over the stored touchpoints of one customer, a stage or
everyone, page by page (each page one transaction, its cursor saved: a restarted job goes on), and
stores only the transitions that differ - ids derive from cause and move, so nothing is doubled.
What it changes is announced like any recomputed history (`lifecycle.history_corrected`, and
`lifecycle.stage_changed` when a current stage changes), flagged `historical`: a replay re-labels
the past and never messages anyone.
A dry run computes the same with any rule set and stores nothing but its report: how many
customers would move from which stage to which, with examples, and how many transitions would be
added and superseded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.runtime import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_stage_engine.db import replays as jobs
from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.domain.announcements import rewrite
from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.domain.timeline import replay
from lifecycle_stage_engine.writes import Changes, Writer, writing

log = logging.getLogger(__name__)
PAGE = 200
EXAMPLES = 5


async def create_job(conn: AsyncConnection, *, scope: dict[str, Any], rules: RuleSet, dry_run: bool) -> str:
    total = await jobs.count_in_scope(conn, scope)
    return await jobs.add(conn, scope=scope, rules=rules.as_document(), dry_run=dry_run, total=total,
                          result=_empty_report(dry_run))


def _empty_report(dry_run: bool) -> dict[str, Any]:
    return {"moves": {}, "examples": {}, "transitions_added": 0, "transitions_superseded": 0,
            "customers_changed": 0, "dry_run": dry_run}


async def run_page(engine: AsyncEngine, *, topic: str, now: datetime, relay: OutboxRelay | None = None) -> bool:
    """Advance one job by one page; False when there is no job to work on."""
    async with writing(engine, relay) as writer:
        conn = writer.conn
        job = await jobs.take_next(conn)
        if job is None:
            return False
        rows = await jobs.page_of_profiles(conn, job.scope, after=job.cursor, limit=PAGE)
        rules = RuleSet.model_validate(job.rules)
        report = job.result
        if rows:
            page = [repo.profile_of(row) for row in rows]
            try:
                async with conn.begin_nested():  # a page that fails leaves nothing behind, and fails its job
                    await _replay_page(writer, page, rules=rules, now=now, topic=topic, dry_run=job.dry_run,
                                       report=report)
            except Exception as error:
                log.error("replay failed", extra={"replay_id": job.id, "error": describe_error(error)})
                await jobs.fail(conn, job.id, result={**job.result, "error": describe_error(error)}, now=now)
                return True
        done = not rows or len(rows) < PAGE
        await jobs.advance(conn, job.id, done=job.done + len(rows), result=report,
                           cursor=rows[-1].id if rows else job.cursor, finished_at=now if done else None)
    return True


async def _replay_page(writer: Writer, page: list, *, rules: RuleSet, now: datetime, topic: str,
                       dry_run: bool, report: dict[str, Any]) -> None:
    conn, ids = writer.conn, [p.id for p in page]
    stored, current = await repo.histories(conn, ids), await repo.current_transition_ids(conn, ids)
    anonymous = await repo.anonymous_ids_of(conn, ids)
    changes = Changes(topic=topic, now=now, historical=True)
    moves: Counter[str] = Counter(report["moves"])
    examples: dict[str, list[str]] = defaultdict(list, report["examples"])
    for profile in page:
        profile.anonymous_ids = sorted(anonymous[profile.id])
        state, history = replay(stored.get(profile.id, []), rules, until=now)
        before, stored_ids = profile.state.stage, current.get(profile.id, set())
        if dry_run:
            change = rewrite(history, stored_ids, before=before, after=state.stage, profile_id=profile.id,
                             customer_id=profile.customer_id)
        else:
            change = changes.recomputed(profile, state, history, stored_ids)
            changes.profile(profile, state.next_due(rules))
        if state.stage != before:
            move = f"{before or '-'}->{state.stage or '-'}"
            moves[move] += 1
            if len(examples[move]) < EXAMPLES:
                examples[move].append(profile.customer_id)
        if change.added or change.superseded or state.stage != before:
            report["customers_changed"] += 1
        report["transitions_added"] += len(change.added)
        report["transitions_superseded"] += len(change.superseded)
    report["moves"], report["examples"] = dict(moves), dict(examples)
    if not dry_run:
        await writer.save(changes)


def replay_worker(*, clock: Callable[[], datetime], idle_s: float = 1.0):
    async def stage_replays(runtime: ServiceRuntime) -> None:
        topic = runtime.settings.kafka.topics.stage_transitions
        while True:
            if not await run_page(runtime.engine, topic=topic, now=clock(), relay=runtime.relay):
                await asyncio.sleep(idle_s)

    return stage_replays
