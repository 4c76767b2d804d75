"""Everything a batch changes, buffered, then written once per kind - and the events it emits.

What subscribers are told:
- `identity.merged` for every merge and customer-key change, before any stage event of the batch
  (same key, the survivor's: same partition, so in order).
- `lifecycle.stage_changed` for each transition applied in order, and for a recomputed history
  only when the customer's current stage differs from the one they were in (its newest transition).
- `lifecycle.history_corrected` when a recomputed history supersedes stored transitions or gains
  ones other than its newest: readers of the history (funnels, time in stage) apply it; nobody is
  messaged for it. Transitions already announced stay facts: nothing is retracted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lifecycle_shared.events import (
    HISTORY_CORRECTED_TYPE,
    IDENTITY_MERGED_TYPE,
    STAGE_CHANGED_TYPE,
    CloudEvent,
    HistoryCorrectedData,
    IdentityMergedData,
    StageChangedData,
    TransitionRecord,
    derived_event_id,
)
from lifecycle_shared.kafka.registry import Emitted
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import repository as repo
from lifecycle_stage_engine.domain.identity import IdentityGraph, KeyMove
from lifecycle_stage_engine.domain.profiles import Profile
from lifecycle_stage_engine.domain.timeline import Moved, State

SOURCE = "/stage-engine"


class Changes:
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
        await repo.insert_profiles(conn, [p for p in graph.created if p.id not in graph.merged_into])
        await repo.link_identities(conn, [(kind, value, graph.survivor(pid)) for kind, value, pid in graph.links])
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
                                  touch.historical))

    def moved(self, profile: Profile, state: State, moved: list[Moved]) -> None:
        """Transitions applied in order: each is stored and announced."""
        profile.state = state
        for transition in moved:
            profile.previous_stage = transition.from_stage
            self._store(profile, transition)
            self._announce(profile, transition)

    def recomputed(self, profile: Profile, state: State, history: list[Moved], current: set[str]) -> None:
        """A history computed again from the start: store the difference, announce a new current stage."""
        before = profile.state.stage
        profile.state = state
        if history:
            profile.previous_stage = history[-1].from_stage
        added = [t for t in history if t.id not in current]
        kept = {t.id for t in history}
        superseded = sorted(i for i in current if i not in kept)
        for transition in added:
            self._store(profile, transition)
        self._superseded += superseded
        newest = history[-1] if history and state.stage != before else None
        if superseded or any(t is not newest for t in added):
            data = HistoryCorrectedData(
                customer_id=profile.customer_id, stage=state.stage, superseded=superseded, processed_at=self.now,
                added=[TransitionRecord(id=t.id, from_stage=t.from_stage, to_stage=t.to_stage, reason=t.reason,
                                        rule_version=t.rule_version, cause_event_ids=list(t.cause_event_ids),
                                        event_time=t.time) for t in added])
            # What changed, not just what results: going there and back are two corrections.
            parts = [*(f"-{i}" for i in superseded), *sorted(f"+{t.id}" for t in added), f"={state.stage}"]
            self._emit(derived_event_id(profile.id, HISTORY_CORRECTED_TYPE, *parts),
                       HISTORY_CORRECTED_TYPE, self.now, profile.customer_id, data)
        if newest is not None:
            # The current stage changed. Its transition may be stored already (a merge brings the absorbed
            # profile's; a replay goes back to one it had superseded): then it was announced under its id
            # for another customer key or another time, and this announcement gets an id of its own.
            announce_id = newest.id if newest.id not in current else derived_event_id(
                newest.id, STAGE_CHANGED_TYPE, before or "-", profile.customer_id, *sorted(kept))
            self._announce(profile, newest, announce_id=announce_id)

    def profile(self, profile: Profile, due: datetime | None) -> None:
        self._profiles[profile.id] = (profile, due)

    def _store(self, profile: Profile, transition: Moved) -> None:
        self._transitions.append(repo.transition_row(profile, transition, self.now))

    def _announce(self, profile: Profile, transition: Moved, *, announce_id: str | None = None) -> None:
        facts = profile.state.facts
        data = StageChangedData(
            customer_id=profile.customer_id, user_id=profile.user_id, anonymous_ids=profile.anonymous_ids,
            from_stage=transition.from_stage, to_stage=transition.to_stage, reason=transition.reason,
            rule_version=transition.rule_version, cause_event_ids=list(transition.cause_event_ids),
            event_time=transition.time, processed_at=self.now, traits=profile.traits, orders=len(facts.orders),
            revenue=float(facts.revenue), historical=transition.historical or self.historical)
        self._emit(announce_id or transition.id, STAGE_CHANGED_TYPE, transition.time, profile.customer_id, data)

    def _emit(self, event_id: str, event_type: str, time: datetime, subject: str, data: Any) -> None:
        self.emitted.append((self.topic, CloudEvent(id=event_id, source=SOURCE, type=event_type, time=time,
                                                    subject=subject, data=data.model_dump(mode="json"))))

    async def write(self, conn: AsyncConnection) -> None:
        await repo.insert_touchpoints(conn, self._touchpoints)
        await repo.supersede(conn, self._superseded, self.now)
        await repo.add_transitions(conn, self._transitions)
        await repo.save_profiles(conn, sorted(self._profiles.values(), key=lambda item: item[0].id))
