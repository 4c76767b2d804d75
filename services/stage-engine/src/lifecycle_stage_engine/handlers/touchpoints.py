"""touchpoint.* -> the customer's profile and stage history; transitions and merges emitted.

A polled batch reads as its steps: load (lock the batch's ids, read their profiles) → resolve
identity (which profile each touchpoint belongs to; merges) → fold and decide (the timeline: in
order, or the whole history again when a touchpoint is late or profiles merged) → write (one
place, `writes.Changes`, buffers every row and event and writes each kind once).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.domain.identity import IdentityGraph, ids_of, twin
from lifecycle_stage_engine.domain.profiles import acquisition_of, traits_of
from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.domain.stages import Touch
from lifecycle_stage_engine.domain.timeline import replay, step
from lifecycle_stage_engine.writes import Changes

Clock = Callable[[], datetime]


def touch_of(typed: Typed[TouchpointData]) -> Touch:
    event, data = typed.event, typed.data
    return Touch(event_id=event.id, name=event.type.removeprefix("touchpoint."), time=data.timestamp,
                 properties=data.properties, historical=data.historical, verified=data.verified)


async def handle_touchpoints(conn: AsyncConnection, events: list[Typed[TouchpointData]], *, topic: str,
                             rules: Callable[[], RuleSet], clock: Clock) -> Emitted:
    ruleset, changes = rules(), Changes(topic=topic, now=clock())
    graph = await load(conn, [typed.data for typed in events], ruleset)
    placed = resolve(graph, events)
    await changes.write_identities(conn, graph)
    await fold(conn, graph, placed, ruleset, changes)
    await changes.write(conn)
    return changes.emitted


async def load(conn: AsyncConnection, touchpoints: list[TouchpointData], rules: RuleSet) -> IdentityGraph:
    """Lock every id value of the batch, then read (and lock) the profiles that own them."""
    keys = [key for touchpoint in touchpoints for key in ids_of(touchpoint, rules.identity)]
    await repo.lock_ids(conn, [value for _, value in keys])
    wanted = list(dict.fromkeys([*keys, *filter(None, map(twin, keys))]))
    profiles, owner = await repo.load_profiles(conn, wanted)
    return IdentityGraph(profiles=profiles, owner=owner, rules=rules.identity)


def resolve(graph: IdentityGraph, events: list[Typed[TouchpointData]]) -> list[tuple[str, Touch, TouchpointData]]:
    """(profile id, touch, touchpoint) for each touchpoint with a usable id, in batch order."""
    placed = []
    for typed in events:
        profile = graph.resolve(typed.data, event_id=typed.event.id)
        if profile is not None:
            placed.append((profile.id, touch_of(typed), typed.data))
    return placed


async def fold(conn: AsyncConnection, graph: IdentityGraph, placed: list[tuple[str, Touch, TouchpointData]],
               rules: RuleSet, changes: Changes) -> None:
    by_profile: dict[str, list[Touch]] = defaultdict(list)
    for profile_id, touch, touchpoint in placed:
        profile = graph.profiles[graph.survivor(profile_id)]
        by_profile[profile.id].append(touch)
        profile.seen(touch.time, traits_of(touchpoint.all_traits(), touchpoint.context),
                     acquisition_of(touchpoint.context), verified=touch.verified)
        changes.touchpoint(profile.id, touch)
    survivors = {graph.survivor(move.survivor) for move in graph.moves if move.absorbed}
    refold = sorted(pid for pid, touches in by_profile.items()
                    if pid in survivors or graph.profiles[pid].outdated
                    or graph.profiles[pid].state.is_after(min(touches, key=lambda t: t.key)))
    refold_set = set(refold)
    stored = await repo.histories(conn, refold)
    current = await repo.current_transition_ids(conn, refold)
    for profile_id, touches in by_profile.items():
        profile = graph.profiles[profile_id]
        if profile_id in refold_set:
            state, history = replay([*stored.get(profile_id, []), *touches], rules, until=changes.now)
            profile.outdated = False
            changes.recomputed(profile, state, history, current.get(profile_id, set()))
        else:
            for touch in sorted(touches, key=lambda t: t.key):
                state, moved = step(profile.state, touch, rules)
                changes.moved(profile, state, moved)
        changes.profile(profile, profile.state.next_due(rules))
