"""lifecycle.stage_changed: a bonus on reaching a rewarded stage (loyalty by default)."""

from __future__ import annotations

from lifecycle_shared.events import StageChangedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.domain.earning import DEFAULT_EARN_RULES, Entry, stage_bonus


async def handle_stage_changed(conn: AsyncConnection, events: list[Typed[StageChangedData]]) -> Emitted:
    bonuses = []
    for typed in events:
        transition = typed.data
        points = stage_bonus(transition.to_stage, DEFAULT_EARN_RULES)
        if points:
            # One bonus per customer and stage, however often they re-enter it.
            bonuses.append(Entry(customer_id=transition.customer_id, kind="bonus", points=points,
                                 rule=f"stage_bonus:{transition.to_stage}/{DEFAULT_EARN_RULES.version}",
                                 cause_event_id=f"customer:{transition.customer_id}"))
    await ledger.append(conn, bonuses)
    return []
