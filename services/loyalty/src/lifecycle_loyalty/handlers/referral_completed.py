"""touchpoint.referral_completed ("Referral Completed", server keys only): the event's customer is the
referee, `referrer_id` (or `referrerId`) the customer who referred them. Points to either or both, as the
rules say; once per referee."""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.topics import LOYALTY_EVENTS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import rulesets
from lifecycle_loyalty.domain.earning import Activity, EarnRules
from lifecycle_loyalty.earn import earn_for_activities
from lifecycle_loyalty.tiers import announce_credited

REFERRAL_COMPLETED = "touchpoint.referral_completed"


def _referrer(typed: Typed[TouchpointData]) -> str | None:
    for name in ("referrer_id", "referrerId"):
        value = typed.data.properties.get(name)
        if isinstance(value, str) and 0 < len(value) <= 200 and "\x00" not in value:
            return value
    return None


async def handle_referral_completed(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                                    rules: EarnRules | None = None, topic: str = LOYALTY_EVENTS) -> Emitted:
    """Announces on `topic` the tiers the points moved."""
    rules = rules or await rulesets.in_force(conn)
    credited = await earn_for_activities(conn, [Activity(kind="referral", customer_id=typed.event.subject,
                                              cause_id=f"referral:{typed.event.subject}", at=typed.event.time,
                                              referrer_id=_referrer(typed)) for typed in events], rules=rules)
    return await announce_credited(conn, credited, events, rules=rules, topic=topic)
