"""touchpoint.* -> fold into the customer's profile; emit lifecycle.stage_changed on a new stage.

A polled batch is applied with a handful of statements: profiles and identities are read once,
the event log, profile updates and transitions are written once each at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lifecycle_shared.events import (
    STAGE_CHANGED_TYPE,
    CloudEvent,
    StageChangedData,
    TouchpointData,
    derived_event_id,
)
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.db.repository import Profile
from lifecycle_stage_engine.domain.stages import DEFAULT_RULES, Touch, Transition, decide_transition, fold, fold_history
from lifecycle_stage_engine.handlers.identity import IdentityGraph

TRAIT_KEYS = ("email", "firstName", "lastName", "name", "phone", "locale", "timezone")
# A profile keeps short scalar traits only: they travel in every stage transition it emits.
MAX_TRAIT_CHARS = 500


def traits_of(touchpoint: TouchpointData) -> dict[str, Any]:
    found = touchpoint.all_traits()
    for key in ("locale", "timezone"):
        if key not in found and isinstance(touchpoint.context.get(key), str):
            found[key] = touchpoint.context[key]
    return {key: found[key] for key in TRAIT_KEYS if _keepable(found.get(key))}


def _keepable(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TRAIT_CHARS or isinstance(value, int | float)


async def handle_touchpoints(conn: AsyncConnection, events: list[Typed[TouchpointData]], *, topic: str) -> Emitted:
    parsed = [(typed.event, typed.data) for typed in events]
    batch = TouchpointBatch(conn, topic=topic)
    await batch.graph.load([touchpoint for _, touchpoint in parsed])
    for event, touchpoint in parsed:
        await batch.apply(event, touchpoint)
    await batch.flush()
    return batch.emitted


class TouchpointBatch:
    def __init__(self, conn: AsyncConnection, *, topic: str) -> None:
        self._conn = conn
        self._topic = topic
        self.graph = IdentityGraph(conn)
        self._touchpoint_rows: list[dict[str, Any]] = []
        self._transition_rows: list[dict[str, Any]] = []
        self._changed: set[str] = set()
        self.emitted: Emitted = []

    async def apply(self, event: CloudEvent, touchpoint: TouchpointData) -> None:
        touch = Touch(event_id=event.id, name=event.type.removeprefix("touchpoint."),
                      time=touchpoint.timestamp, properties=touchpoint.properties)
        profile, merged = await self.graph.resolve(touchpoint, before_merge=self._write_log)
        self._touchpoint_rows.append({"event_id": touch.event_id, "profile_id": profile.id, "name": touch.name,
                                      "event_time": touch.time, "properties": touch.properties})
        last = profile.facts.last_event_time
        if not merged and not profile.facts_outdated and (last is None or touch.time >= last):
            profile.facts = fold(profile.facts, touch, DEFAULT_RULES)
        else:  # late, merged or stored in an older shape: refold the whole history in event-time order
            await self._write_log()
            profile.facts = fold_history(await repo.history(self._conn, profile_id=profile.id), DEFAULT_RULES)
            profile.facts_outdated = False
        profile.traits = {**profile.traits, **traits_of(touchpoint)}
        profile.last_seen_at = max(profile.last_seen_at, touch.time)
        profile.first_seen_at = min(profile.first_seen_at, touch.time)
        transition = decide_transition(profile.stage, profile.facts, cause=touch, rules=DEFAULT_RULES)
        if transition is not None:
            profile.stage, profile.stage_since = transition.to_stage, touch.time
            self._record(profile, transition, touch)
        self._changed.add(profile.id)

    def _record(self, profile: Profile, transition: Transition, touch: Touch) -> None:
        transition_id = derived_event_id(touch.event_id, "stage-engine", transition.to_stage.value)
        data = StageChangedData(
            customer_id=profile.customer_id, user_id=profile.user_id, anonymous_ids=profile.anonymous_ids,
            from_stage=transition.from_stage.value if transition.from_stage else None,
            to_stage=transition.to_stage.value, reason=transition.reason, rule_version=transition.rule_version,
            cause_event_ids=[touch.event_id], event_time=touch.time, processed_at=datetime.now(UTC),
            traits=profile.traits, orders=len(profile.facts.order_ids), revenue=float(profile.facts.revenue))
        self._transition_rows.append({
            "id": transition_id, "profile_id": profile.id, "customer_id": profile.customer_id,
            "from_stage": data.from_stage, "to_stage": data.to_stage, "reason": data.reason,
            "rule_version": data.rule_version, "cause_event_ids": data.cause_event_ids,
            "event_time": data.event_time, "processed_at": data.processed_at})
        self.emitted.append((self._topic, CloudEvent(
            id=transition_id, source="/stage-engine", type=STAGE_CHANGED_TYPE, time=touch.time,
            subject=profile.customer_id, data=data.model_dump(mode="json"))))

    async def _write_log(self) -> None:
        """Write new profiles, links, event-log rows and transitions (before a merge moves them, or a
        refold reads them)."""
        await self.graph.flush()
        await repo.insert_touchpoints(self._conn, self._touchpoint_rows)
        await repo.add_transitions(self._conn, self._transition_rows)
        self._touchpoint_rows, self._transition_rows = [], []

    async def flush(self) -> None:
        await self._write_log()
        alive = sorted(i for i in self._changed if i in self.graph.profiles)  # merged-away ones are gone
        await repo.save_profiles(self._conn, [self.graph.profiles[i] for i in alive])
