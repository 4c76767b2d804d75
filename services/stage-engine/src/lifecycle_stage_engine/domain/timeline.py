"""A customer's stage history as a pure function of their touchpoints, the rules and the clock.

`step` applies one touchpoint in event-time order: first whatever time did since the state's
moment (at-risk and lapsed come from days passing, not from an event), then the touchpoint.
`advance` applies time alone, up to a moment (the sweeper's "now"). `replay` does both over a
whole history. Live processing and replay run the same steps, so a history recomputed after a
late event, a merge or a rule change is exactly what in-order delivery would have produced, and
each transition has an id derived from its cause and its move: the same transition always has
the same id, in a replay too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from lifecycle_shared.events import derived_event_id
from lifecycle_shared.stages import DRIFT

from lifecycle_stage_engine.domain.rules import RuleSet
from lifecycle_stage_engine.domain.stages import (
    NEVER,
    Facts,
    Stage,
    Touch,
    decide_stage,
    decide_transition,
    drift_due,
    fold,
)


@dataclass(frozen=True)
class Transition:
    """One transition of a customer's history: a `StageDecision` with its id, causes and event time."""

    id: str
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    rule_version: str
    cause_event_ids: tuple[str, ...]
    time: datetime  # event time: the touchpoint's, or the moment the days ran out
    historical: bool  # caused by imported history only
    # Its cause was verified (a touchpoint's `verified`; for time and the purchase model, the order they count
    # from): only a verified transition may move points (StageChangedData.verified).
    verified: bool = False


@dataclass(frozen=True)
class State:
    facts: Facts = Facts()
    stage: Stage | None = None
    stage_since: datetime | None = None
    as_of: tuple[datetime, str] | None = None  # the latest event key or drift moment applied

    def is_after(self, touch: Touch) -> bool:
        """The touchpoint comes before what this state already applied (a late event)."""
        return self.as_of is not None and touch.key < self.as_of

    def next_due(self, rules: RuleSet) -> datetime | None:
        """When time alone moves this customer next (None: it never will)."""
        due = drift_due(self.facts, rules)
        moment = self.as_of[0] if self.as_of else None
        return min((t for t in due or () if (moment is None or t > moment) and t < NEVER), default=None)


def transition_id(cause_event_id: str, from_stage: Stage | None, to_stage: Stage,
                  moment: datetime | None = None) -> str:
    """A touchpoint causes a move once; time after one order can cause the same move more than once (a
    refund can change the rhythm back), so a drift move's id also names its moment."""
    parts = (moment.isoformat(),) if moment else ()
    return derived_event_id(cause_event_id, "stage-engine", from_stage or "-", to_stage, *parts)


def step(state: State, touch: Touch, rules: RuleSet) -> tuple[State, list[Transition]]:
    # States built directly, not with dataclasses.replace: this runs once per touchpoint.
    state, moved = advance(state, touch.time, rules)
    facts = fold(state.facts, touch, rules)
    key = touch.key
    as_of = key if state.as_of is None or key > state.as_of else state.as_of
    decision = decide_transition(state.stage, facts, cause=touch, at=touch.time, rules=rules)
    if decision is None:
        return State(facts, state.stage, state.stage_since, as_of), moved
    transition = Transition(id=transition_id(touch.event_id, decision.from_stage, decision.to_stage),
                            from_stage=decision.from_stage, to_stage=decision.to_stage, reason=decision.reason,
                            rule_version=decision.rule_version, cause_event_ids=(touch.event_id,), time=touch.time,
                            historical=touch.historical, verified=touch.verified)
    return State(facts, decision.to_stage, touch.time, as_of), [*moved, transition]


def advance(state: State, until: datetime, rules: RuleSet) -> tuple[State, list[Transition]]:
    """Apply the drift moments due at or before `until` (each at its own moment)."""
    moved: list[Transition] = []
    while (due := state.next_due(rules)) is not None and due <= until:
        decision = decide_transition(state.stage, state.facts, cause=None, at=due, rules=rules)
        last_order = state.facts.last_order
        assert last_order is not None  # only a buyer drifts
        if decision is None:
            state = State(state.facts, state.stage, state.stage_since, (due, ""))
            continue
        moved.append(Transition(
            id=transition_id(last_order.event_id, decision.from_stage, decision.to_stage, due),
            from_stage=decision.from_stage, to_stage=decision.to_stage, reason=decision.reason,
            rule_version=decision.rule_version, cause_event_ids=(last_order.event_id,), time=due,
            historical=last_order.historical, verified=last_order.verified))
        state = State(state.facts, decision.to_stage, due, (due, ""))
    return state, moved


def judge_p_alive(state: State, p_alive: float, at: datetime, rules: RuleSet) -> tuple[State, list[Transition]]:
    """The purchase model's judgement (`drift.at_risk_below_p_alive`): a buyer whose probability of still
    being a customer fell below the threshold is at-risk at `at`, before the days rule would say so.
    The judgement stays in the facts until the buyer's next order (which is then a reactivation). It
    moves the live state only: a replay of the history, which has no model, does not repeat it."""
    last_order = state.facts.last_order
    if last_order is None or state.stage is None or state.stage in DRIFT:
        return state, []
    stage, reason = decide_stage(state.facts, rules, at=at, p_alive=p_alive)
    if stage is not Stage.AT_RISK or reason != "low_p_alive":
        return state, []
    transition = Transition(id=transition_id(last_order.event_id, state.stage, stage, at), from_stage=state.stage,
                            to_stage=stage, reason=reason, rule_version=rules.version,
                            cause_event_ids=(last_order.event_id,), time=at, historical=last_order.historical,
                            verified=last_order.verified)
    facts = replace(state.facts, doubted_at=at)  # kept until the next order: a visit does not undo it
    return State(facts, stage, at, state.as_of), [transition]


def replay(touches: list[Touch], rules: RuleSet, *, until: datetime | None = None) -> tuple[State, list[Transition]]:
    """The whole history in event-time order (each event once), then time up to `until`."""
    state, history = State(), []
    for touch in sorted({t.event_id: t for t in touches}.values(), key=lambda t: t.key):
        state, moved = step(state, touch, rules)
        history += moved
    if until is not None:
        state, moved = advance(state, until, rules)
        history += moved
    return state, history
