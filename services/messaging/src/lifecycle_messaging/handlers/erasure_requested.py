"""customer.erasure_requested: erase the customer the keyed hashes name (docs/erasure.md, db/erasure.py).

Without the deployment's erasure pepper messaging cannot tell whose rows they are: the event is refused as
permanent (dead-lettered, to be re-sent once the pepper is set), never skipped. Announces nothing: the counts are
kept in messaging's `erasures` table (`GET /v1/admin/erasures/{erasure_id}`)."""

from __future__ import annotations

from lifecycle_shared.errors import PermanentError
from lifecycle_shared.events import ErasureRequestedData
from lifecycle_shared.kafka.registry import Emitted, Typed
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_messaging.db import erasure


async def handle_erasure_requested(conn: AsyncConnection, events: list[Typed[ErasureRequestedData]], *,
                                   pepper: bytes | None) -> Emitted:
    if not pepper:
        raise PermanentError("customer.erasure_requested needs LIFECYCLE_ERASURE_PEPPER")
    for typed in events:
        await erasure.erase(conn, typed.data.erasure_id, typed.data.id_hashes, pepper=pepper,
                            now=typed.data.requested_at)
    return []
