"""touchpoint.subscribed (track "Subscribed") -> the address subscribes to marketing email.

A verified event (a server key, or identity verification) may re-subscribe an address that unsubscribed;
an unverified one (any browser can name anyone) only tells what nobody has told yet. Neither lifts a
bounce, a complaint or a block (`domain.consent.change`). A verified one made after an erasure of the address lifts
its suppression marker (`erasure_pepper`: the erasures' key; docs/erasure.md).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from lifecycle_shared.events import TouchpointData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.consenting import tell_touchpoints
from lifecycle_messaging.domain.consent import SUBSCRIBED

SUBSCRIBED_TYPE = "touchpoint.subscribed"


async def handle_subscribed(conn: AsyncConnection, events: list[Typed[TouchpointData]], *,
                            clock: Callable[[], datetime], erasure_pepper: bytes | None = None) -> Emitted:
    await tell_touchpoints(conn, [(typed.event, typed.data, SUBSCRIBED, True) for typed in events], now=clock(),
                           erasure_pepper=erasure_pepper)
    return []
