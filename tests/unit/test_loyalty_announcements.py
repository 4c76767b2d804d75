"""What loyalty announces on loyalty-events.v1, as pure decisions: a debt per debt entry, a tier change per
customer whose tier moved (reached or lost), deterministic ids; every event fits the AsyncAPI contract's data."""

from __future__ import annotations

from datetime import UTC, datetime

from lifecycle_loyalty.domain.announcements import debts_recorded, tier_changes
from lifecycle_loyalty.domain.earning import Entry
from lifecycle_loyalty.domain.rules import DEFAULT_EARN_RULES
from lifecycle_shared.events import DebtRecordedData, TierChangedData

AT = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_debt_entry_is_announced_once_with_a_deterministic_id():
    entries = [Entry(customer_id="ann", kind="reverse", points=-10, rule="refund_reversal/v1", cause_event_id="r1",
                     order_id="o1"),
               Entry(customer_id="ann", kind="debt", points=-40, debt=40, rule="refund_reversal/v1",
                     cause_event_id="r1", order_id="o1", id_parts=("debt",))]
    first, again = debts_recorded(entries, topic="t", at=AT), debts_recorded(entries, topic="t", at=AT)
    assert [(topic, e.type, e.subject) for topic, e in first] == [("t", "loyalty.debt_recorded", "ann")]
    assert first[0][1].id == again[0][1].id
    assert DebtRecordedData.model_validate(first[0][1].data).points == 40


def test_tier_changes_name_their_direction():
    emitted = tier_changes({"ann": "member", "bob": "gold", "cy": "silver"},
                           {"ann": ("silver", 1200), "bob": ("silver", 1500), "cy": ("silver", 1000)},
                           rule=DEFAULT_EARN_RULES.tiers, rule_version="v1", cause="e1", topic="t", at=AT)
    changes = [TierChangedData.model_validate(event.data) for _, event in emitted]
    assert [(c.customer_id, c.from_tier, c.to_tier, c.direction) for c in changes] == [
        ("ann", "member", "silver", "reached"), ("bob", "gold", "silver", "lost")]
