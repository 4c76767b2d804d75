"""lifecycle.stage_changed: a bonus on reaching a rewarded stage (loyalty by default)."""

from __future__ import annotations

from lifecycle_shared.events import CloudEvent, StageChangedData
from lifecycle_shared.kafka.runner import Emitted, PermanentError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import ledger
from lifecycle_loyalty.domain.earning import DEFAULT_EARN_RULES, stage_bonus


async def handle_stage_changed(conn: AsyncConnection, event: CloudEvent) -> Emitted:
    try:
        transition = StageChangedData.model_validate(event.data)
    except ValidationError as error:
        raise PermanentError(f"stage_changed data invalid: {error.errors()[0]}") from None
    bonus = stage_bonus(transition.to_stage, DEFAULT_EARN_RULES)
    if bonus:
        # One bonus per customer and stage, however often they re-enter it.
        await ledger.append(conn, customer_id=transition.customer_id, kind="bonus", points=bonus,
                            rule=f"stage_bonus:{transition.to_stage}/{DEFAULT_EARN_RULES.version}",
                            cause_event_id=f"customer:{transition.customer_id}")
    return []
