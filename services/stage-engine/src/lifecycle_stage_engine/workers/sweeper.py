"""Time moves customers too: the sweeper applies at-risk and lapsed when their moment comes.

Each profile stores when time alone moves it next (`due_at`). A round locks a page of due profiles
with `FOR UPDATE SKIP LOCKED` - several instances share the work and never take the same profile,
and the event path waits for a profile a round holds - applies `advance` up to the clock's now,
and writes the transitions and their events (via the outbox) in the same transaction. Transition
ids derive from their cause, so even a profile applied twice would store and announce nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from lifecycle_shared.errors import describe_error
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.runtime import ServiceRuntime
from sqlalchemy.ext.asyncio import AsyncEngine

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.domain.timeline import advance, judge_p_alive, replay
from lifecycle_stage_engine.rulebook import RuleBook
from lifecycle_stage_engine.writes import Changes, writing

log = logging.getLogger(__name__)
RETRY_AFTER = timedelta(hours=1)


async def sweep_once(engine: AsyncEngine, *, rules: RuleSet, now: datetime, topic: str, limit: int = 500,
                     relay: OutboxRelay | None = None) -> int:
    """One round; returns how many profiles it evaluated."""
    async with writing(engine, relay) as writer:
        conn = writer.conn
        due = await repo.due_profiles(conn, now=now, limit=limit)
        changes = Changes(topic=topic, now=now)
        anonymous = await repo.anonymous_ids_of(conn, [p.id for p in due])
        outdated = [p.id for p in due if p.outdated]
        stored, current = await repo.histories(conn, outdated), await repo.current_transition_ids(conn, outdated)
        for profile in due:
            profile.anonymous_ids = sorted(anonymous[profile.id])
            try:
                if profile.outdated:  # stored by an older version: rebuilt from its history once
                    state, history = replay(stored.get(profile.id, []), rules, until=now)
                    profile.outdated = False
                    changes.recomputed(profile, state, history, current.get(profile.id, set()))
                else:
                    state, moved = advance(profile.state, now, rules)
                    changes.moved(profile, state, moved)
            except Exception as error:  # one customer never stops the round for everyone: looked at again later
                log.error("sweeper: a profile could not be evaluated",
                          extra={"profile_id": profile.id, "error": describe_error(error)})
                changes.profile(profile, now + RETRY_AFTER)
                continue
            changes.profile(profile, profile.state.next_due(rules))
        await writer.save(changes)
    return len(due)


async def flag_low_p_alive(engine: AsyncEngine, judged: dict[str, tuple[float, datetime]], *, rules: RuleSet,
                           now: datetime, topic: str, page: int = 1000, relay: OutboxRelay | None = None) -> int:
    """The analytics refresh's P(alive) per profile id, with the last order it saw, put through `judge_p_alive`
    (when the rule set sets `drift.at_risk_below_p_alive`): buyers below it become at-risk now, stored and
    announced like any move. A buyer whose last order is not the one scored (they ordered while the refresh
    ran) is left alone, and so are profiles another transaction holds (judged at the next refresh). Pages of
    `page` profiles, a transaction each. Returns how many moved."""
    threshold = rules.drift.at_risk_below_p_alive
    below = sorted(pid for pid, (p_alive, _) in judged.items() if threshold is not None and p_alive < threshold)
    moves = 0
    for start in range(0, len(below), page):
        async with writing(engine, relay) as writer:
            conn = writer.conn
            candidates = await repo.lock_journey_profiles(conn, below[start:start + page])
            changes = Changes(topic=topic, now=now)
            anonymous = await repo.anonymous_ids_of(conn, [p.id for p in candidates])
            for profile in candidates:
                p_alive, last_order_at = judged[profile.id]
                last = profile.state.facts.last_order
                if profile.outdated or last is None or last.time != last_order_at:
                    continue
                state, moved = judge_p_alive(profile.state, p_alive, now, rules)
                if moved:
                    profile.anonymous_ids = sorted(anonymous[profile.id])
                    changes.moved(profile, state, moved)
                    changes.profile(profile, profile.state.next_due(rules))
                    moves += 1
            await writer.save(changes)
    return moves


def sweeper(*, rules: RuleBook, clock: Callable[[], datetime], every_s: float):
    async def stage_sweeper(runtime: ServiceRuntime) -> None:
        topic = runtime.settings.kafka.topics.stage_transitions
        while True:
            await rules.refresh(runtime.engine)  # a rule set just put in force moves moments: sweep with it
            done = await sweep_once(runtime.engine, rules=rules(), now=clock(), topic=topic, relay=runtime.relay)
            if done < 500:
                await asyncio.sleep(every_s)

    return stage_sweeper
