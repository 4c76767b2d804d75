"""What loyalty announces on `loyalty-events.v1`, as pure functions of what it decided (no I/O, no clock).
Ids derive from what caused them, so an event written again has the same id."""

from __future__ import annotations

from datetime import datetime

from lifecycle_shared.events import (
    DEBT_RECORDED_TYPE,
    POINTS_EXPIRING_TYPE,
    REWARD_REDEEMED_TYPE,
    TIER_CHANGED_TYPE,
    CloudEvent,
    DebtRecordedData,
    PointsExpiringData,
    RewardRedeemedData,
    TierChangedData,
    derived_event_id,
)
from lifecycle_shared.kafka.registry import Emitted

from lifecycle_loyalty.domain.earning import Entry, entry_id
from lifecycle_loyalty.domain.rules import TierRule

SOURCE = "/loyalty"


def debts_recorded(entries: list[Entry], *, topic: str, at: datetime) -> Emitted:
    """A `loyalty.debt_recorded` per debt entry posted."""
    return [(topic, CloudEvent(id=derived_event_id(entry_id(e), DEBT_RECORDED_TYPE), source=SOURCE,
                               type=DEBT_RECORDED_TYPE, time=at, subject=e.customer_id,
                               data=DebtRecordedData(customer_id=e.customer_id, order_id=e.order_id, points=e.debt,
                                                     cause_event_id=e.cause_event_id, recorded_at=at)
                               .model_dump(mode="json")))
            for e in entries if e.kind == "debt" and e.debt > 0]


def reward_redeemed(data: RewardRedeemedData, *, topic: str) -> tuple[str, CloudEvent]:
    return (topic, CloudEvent(id=derived_event_id(data.redemption_id, REWARD_REDEEMED_TYPE), source=SOURCE,
                              type=REWARD_REDEEMED_TYPE, time=data.redeemed_at, subject=data.customer_id,
                              data=data.model_dump(mode="json")))


def tier_changes(before: dict[str, str], after: dict[str, tuple[str, int]], *, rule: TierRule, rule_version: str,
                 cause: str, topic: str, at: datetime) -> Emitted:
    """A `loyalty.tier_changed` per customer whose tier differs after (tier, points in window) from before."""
    rank = {level.name: i for i, level in enumerate(rule.levels)}
    emitted: Emitted = []
    for customer, (tier, points) in sorted(after.items()):
        old = before.get(customer, tier)
        if old == tier:
            continue
        data = TierChangedData(customer_id=customer, from_tier=old, to_tier=tier, points_in_window=points,
                               direction="reached" if rank.get(tier, 0) > rank.get(old, 0) else "lost",
                               rule_version=rule_version, changed_at=at)
        emitted.append((topic, CloudEvent(id=derived_event_id(cause, TIER_CHANGED_TYPE, customer, old, tier),
                                          source=SOURCE, type=TIER_CHANGED_TYPE, time=at, subject=customer,
                                          data=data.model_dump(mode="json"))))
    return emitted


def points_expiring(due: dict[str, list[tuple[str, int, datetime]]], *, topic: str, at: datetime) -> Emitted:
    """A `loyalty.points_expiring` per customer for the lots (id, points, expiry) about to expire."""
    return [(topic, CloudEvent(id=derived_event_id(POINTS_EXPIRING_TYPE, *sorted(lot for lot, _, _ in held)),
                               source=SOURCE, type=POINTS_EXPIRING_TYPE, time=at, subject=customer,
                               data=PointsExpiringData(customer_id=customer, points=sum(p for _, p, _ in held),
                                                       expires_at=min(e for _, _, e in held),
                                                       lot_ids=[lot for lot, _, _ in held], warned_at=at)
                               .model_dump(mode="json")))
            for customer, held in sorted(due.items())]
