"""The stage engine's writes, in one place: everything a batch changes, buffered and written once per
kind, the events it emits, and (for the workers) the step that commits them to the outbox.

What subscribers are told:
- `identity.merged` for every merge and customer-key change, before any stage event of the batch
  (same key, the survivor's: same partition, so in order).
- about transitions: what `domain.announcements` decides (`lifecycle.stage_changed`,
  `lifecycle.history_corrected`, historical or not).

The touchpoint handler writes its `Changes` with `Changes.write`: the consumer runner adds what they emit
to the outbox in the batch's transaction and wakes the relay. The workers, which own their transactions,
go through `writing`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from lifecycle_shared.db import add_to_outbox
from lifecycle_shared.events import (
    HISTORY_CORRECTED_TYPE,
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    HistoryCorrectedData,
    IdentityMergedData,
    StageChangedData,
    TransitionRecord,
    derived_event_id,
)
from lifecycle_shared.kafka.registry import Emitted
from lifecycle_shared.kafka.relay import OutboxRelay
from lifecycle_shared.typed_events import event_of
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lifecycle_stage_engine import metrics
from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.domain.announcements import Rewrite, StageChange, in_order, rewrite
from lifecycle_stage_engine.domain.identity import IdentityGraph, KeyMove
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.timeline import State, Transition

SOURCE = "/stage-engine"


class Changes:
    """Everything one batch (of touchpoints, a sweep, a replay page) changes: rows buffered until `write`
    writes each kind once, and the events they announce (`emitted`, in order)."""

    def __init__(self, *, topic: str, now: datetime, historical: bool = False) -> None:
        """historical: announce every transition as historical (a replay re-labels the past)."""
        self.topic, self.now, self.historical = topic, now, historical
        self.emitted: Emitted = []
        self._touchpoints: list[tuple] = []
        self._transitions: list[tuple] = []
        self._superseded: list[str] = []
        self._profiles: dict[str, tuple[Profile, datetime | None]] = {}

    async def write_identities(self, conn: AsyncConnection, graph: IdentityGraph) -> None:
        """Identity changes go first: a merged history must be in place before it is read. Stored profiles
        give up their old keys (re-keyed, merged away) before new profiles may take them."""
        created = {p.id for p in graph.created}
        rekeyed = {move.survivor for move in graph.moves if move.absorbed is None and move.reason != "link"}
        await repo.rekey_profiles(conn, [graph.profiles[pid] for pid in sorted(rekeyed - created)
                                         if pid in graph.profiles])
        await repo.merge_profiles(conn, {pid: graph.survivor(pid) for pid in graph.merged_into if pid not in created})
        await repo.execute_together(conn, [
            repo.insert_profiles([p for p in graph.created if p.id not in graph.merged_into]),
            repo.link_identities([(kind, value, graph.survivor(pid)) for kind, value, pid in graph.links])])
        for move in graph.moves:
            self._merged(graph.profiles[graph.survivor(move.survivor)], move)

    def _merged(self, survivor: Profile, move: KeyMove) -> None:
        absorbed_ids = [i for i in move.absorbed_ids if i != survivor.customer_id]
        if not absorbed_ids:
            return
        data = IdentityMergedData(survivor_id=survivor.customer_id, absorbed_id=move.absorbed_key,
                                  absorbed_ids=absorbed_ids, user_id=survivor.user_id, reason=move.reason,
                                  cause_event_ids=[move.cause_event_id], event_time=move.time, processed_at=self.now)
        self._emit(derived_event_id(move.cause_event_id, IDENTITY_MERGED_TYPE, move.absorbed_key),
                   IDENTITY_MERGED_TYPE, move.time, survivor.customer_id, data)

    def touchpoint(self, profile_id: str, touch: Any) -> None:
        self._touchpoints.append((touch.event_id, profile_id, touch.name, touch.time, touch.properties,
                                  touch.historical, touch.verified))

    def moved(self, profile: Profile, state: State, transitions: list[Transition]) -> None:
        """Transitions applied in order: each is stored and announced."""
        profile.state = state
        for transition, change in zip(transitions, in_order(transitions, historical=self.historical), strict=True):
            profile.previous_stage = transition.from_stage
            self._store(profile, transition)
            self._announce(profile, change)

    def recomputed(self, profile: Profile, state: State, history: list[Transition], current: set[str]) -> Rewrite:
        """A history computed again from the start: store the difference, announce what `rewrite` says."""
        change = rewrite(history, current, before=profile.state.stage, after=state.stage, profile_id=profile.id,
                         customer_id=profile.customer_id, historical=self.historical)
        profile.state = state
        if history:
            profile.previous_stage = history[-1].from_stage
        for transition in change.added:
            self._store(profile, transition)
        self._superseded += change.superseded
        if change.correction_id is not None:
            data = HistoryCorrectedData(
                customer_id=profile.customer_id, stage=state.stage, superseded=list(change.superseded),
                processed_at=self.now,
                added=[TransitionRecord(id=t.id, from_stage=t.from_stage, to_stage=t.to_stage, reason=t.reason,
                                        rule_version=t.rule_version, cause_event_ids=list(t.cause_event_ids),
                                        event_time=t.time, processed_at=self.now, historical=t.historical)
                       for t in change.added])
            self._emit(change.correction_id, HISTORY_CORRECTED_TYPE, self.now, profile.customer_id, data)
        if change.stage_change is not None:
            self._announce(profile, change.stage_change)
        return change

    def profile(self, profile: Profile, due: datetime | None) -> None:
        self._profiles[profile.id] = (profile, due)

    def _store(self, profile: Profile, transition: Transition) -> None:
        self._transitions.append(repo.transition_row(profile, transition, self.now))

    def _announce(self, profile: Profile, change: StageChange) -> None:
        facts, transition = profile.state.facts, change.transition
        data = StageChangedData(
            customer_id=profile.customer_id, user_id=profile.user_id, anonymous_ids=profile.anonymous_ids,
            from_stage=transition.from_stage, to_stage=transition.to_stage, reason=transition.reason,
            rule_version=transition.rule_version, cause_event_ids=list(transition.cause_event_ids),
            event_time=transition.time, processed_at=self.now, traits=profile.traits, orders=len(facts.orders),
            revenue=float(facts.revenue), historical=change.historical, verified=transition.verified)
        self._emit(change.event_id, STAGE_CHANGED_TYPE, transition.time, profile.customer_id, data)
        metrics.announced(transition.from_stage, transition.to_stage)

    def _emit(self, event_id: str, event_type: str, time: datetime, subject: str, data: BaseModel) -> None:
        """The event carries `data` as built, serialised once when the outbox takes it (`typed_events.event_of`)."""
        self.emitted.append((self.topic, event_of(data, id=event_id, source=SOURCE, type=event_type, time=time,
                                                  subject=subject)))

    async def write(self, conn: AsyncConnection) -> None:
        await repo.supersede(conn, self._superseded, self.now)  # before: a transition added again is brought back
        await repo.execute_together(conn, [
            repo.insert_touchpoints(self._touchpoints), repo.add_transitions(self._transitions),
            repo.save_profiles(sorted(self._profiles.values(), key=lambda item: item[0].id))])


class Writer:
    """A worker's transaction: `save` writes a buffer of changes and adds its events to the outbox."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.emitted = 0

    async def save(self, changes: Changes) -> None:
        await changes.write(self.conn)
        self.emitted += await add_to_outbox(self.conn, changes.emitted)


@asynccontextmanager
async def writing(engine: AsyncEngine, relay: OutboxRelay | None) -> AsyncIterator[Writer]:
    """A transaction for a worker's changes; once it commits, the relay is woken if they emitted events (their
    records go out now, not at the relay's next poll)."""
    async with engine.begin() as conn:
        writer = Writer(conn)
        yield writer
    if writer.emitted and relay is not None:
        relay.wake()
