"""touchpoint.review_written ("Review Written"): points to the reviewer, once per review (`review_id`, else
the event), within the review rule's cap."""

from __future__ import annotations

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from lifecycle_shared.topics import LOYALTY_EVENTS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import rulesets
from lifecycle_loyalty.domain.earning import Activity, EarnRules
from lifecycle_loyalty.earn import earn_for_activities
from lifecycle_loyalty.tiers import announce_credited

REVIEW_WRITTEN = "touchpoint.review_written"


def _review_id(typed: Typed[TouchpointData]) -> str:
    value = typed.data.properties.get("review_id")
    given = isinstance(value, str | int) and not isinstance(value, bool) and value != ""
    return str(value) if given else typed.event.id


async def handle_review_written(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                                rules: EarnRules | None = None, topic: str = LOYALTY_EVENTS) -> Emitted:
    """Announces on `topic` the tiers the points moved."""
    rules = rules or await rulesets.in_force(conn)
    credited = await earn_for_activities(conn, [Activity(kind="review", customer_id=typed.event.subject,
                                              cause_id=f"review:{_review_id(typed)}", at=typed.event.time)
                                     for typed in events], rules=rules)
    return await announce_credited(conn, credited, events, rules=rules, topic=topic)
