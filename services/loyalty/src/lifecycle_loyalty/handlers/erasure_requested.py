"""customer.erasure_requested: erase the customer the keyed hashes name (docs/erasure.md, db/erasure.py).

Without the deployment's erasure pepper loyalty cannot tell whose rows they are: the event is refused as permanent
(dead-lettered, to be re-sent once the pepper is set), never skipped - an erasure silently ignored is the one
failure this must not have. Announces nothing: the counts are kept in loyalty's `erasures` table."""

from __future__ import annotations

from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import ErasureRequestedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_loyalty.db import erasure


async def handle_erasure_requested(conn: AsyncConnection, events: list[Typed[ErasureRequestedData]], *,
                                   pepper: bytes | None) -> Emitted:
    if not pepper:
        raise PermanentError("customer.erasure_requested needs LIFECYCLE_ERASURE_PEPPER")
    for typed in events:
        await erasure.erase(conn, typed.data.erasure_id, typed.data.id_hashes, pepper=pepper,
                            now=typed.data.requested_at)
    return []
