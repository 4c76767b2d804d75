"""What the stage engine tells subscribers about a customer's history: a pure function of what changed.

- Transitions applied in order: each is announced (`lifecycle.stage_changed`) under its own id.
- A history computed again (a late event, a merge, a replay): the transitions it gains are stored and
  the stored ones it no longer holds are superseded. `lifecycle.stage_changed` only when the current
  stage differs from the one before (for the history's newest transition); `lifecycle.history_corrected`
  when it supersedes stored transitions or gains ones other than that newest: readers of the history
  (funnels, time in stage) apply it, nobody is messaged for it. Announced transitions stay facts.
- An announcement is `historical` when its transition was caused by imported history only, or when the
  whole batch re-labels the past (a replay): recorded, and never a reason to message anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from lifecycle_shared.events import HISTORY_CORRECTED_TYPE, STAGE_CHANGED_TYPE, derived_event_id

from lifecycle_stage_engine.domain.stages import Stage
from lifecycle_stage_engine.domain.timeline import Transition


@dataclass(frozen=True)
class StageChange:
    """A `lifecycle.stage_changed` announcement of one transition."""

    event_id: str
    transition: Transition
    historical: bool


@dataclass(frozen=True)
class Rewrite:
    """A recomputed history against the stored one: what to store, and what to announce."""

    added: tuple[Transition, ...]  # in history order: to store
    superseded: tuple[str, ...]  # ids of stored transitions it no longer holds, sorted
    correction_id: str | None  # the `lifecycle.history_corrected` event's id; None: nothing to correct
    stage_change: StageChange | None  # the current stage changed


def in_order(transitions: list[Transition], *, historical: bool = False) -> list[StageChange]:
    """Transitions applied in order: every one is announced, under its own id."""
    return [StageChange(t.id, t, t.historical or historical) for t in transitions]


def rewrite(history: list[Transition], current: set[str], *, before: Stage | None, after: Stage | None,
            profile_id: str, customer_id: str, historical: bool = False) -> Rewrite:
    """`history` computed again for the profile whose stored transitions (not superseded) are `current`,
    taking its stage from `before` to `after`."""
    added = tuple(t for t in history if t.id not in current)
    kept = {t.id for t in history}
    superseded = tuple(sorted(i for i in current if i not in kept))
    newest = history[-1] if history and after != before else None
    correction_id = None
    if superseded or any(t is not newest for t in added):
        # What changed, not just what results: going there and back are two corrections.
        parts = [*(f"-{i}" for i in superseded), *sorted(f"+{t.id}" for t in added), f"={after}"]
        correction_id = derived_event_id(profile_id, HISTORY_CORRECTED_TYPE, *parts)
    stage_change = None
    if newest is not None:
        # Its transition may be stored already (a merge brings the absorbed profile's; a replay goes back to
        # one it had superseded): then it was announced under its id for another customer key or another
        # time, and this announcement gets an id of its own.
        event_id = newest.id if newest.id not in current else derived_event_id(
            newest.id, STAGE_CHANGED_TYPE, before or "-", customer_id, *sorted(kept))
        stage_change = StageChange(event_id, newest, newest.historical or historical)
    return Rewrite(added, superseded, correction_id, stage_change)
