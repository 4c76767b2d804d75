"""touchpoint.unsubscribed (track "Unsubscribed") -> the address's marketing consent is withdrawn.

The address is the event's `email` (traits or properties), else the one known for its userId or
anonymousId. Any event may withdraw consent, verified or not (`domain.consent.change`): the worst a forged
one does is stop marketing email.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.consenting import tell_touchpoints
from lifecycle_messaging.domain.consent import UNSUBSCRIBED

UNSUBSCRIBED_TYPE = "touchpoint.unsubscribed"


async def handle_unsubscribed(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                          clock: Callable[[], datetime]) -> Emitted:
    await tell_touchpoints(conn, [(typed.event, typed.data, UNSUBSCRIBED, True) for typed in events], now=clock())
    return []
