"""The stage engine's erasure step (docs/erasure.md): erase in its own database and announce
`customer.erasure_requested` through the outbox, in the caller's transaction, so the other services follow exactly
the erasures that happened. A repeat erases and announces nothing and returns the first report."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from lifecycle_shared.db import add_to_outbox
from lifecycle_shared.events import ERASURE_REQUESTED_TYPE, CloudEvent, ErasureRequestedData
from lifecycle_shared.topics import STAGE_TRANSITIONS
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import erasure
from lifecycle_stage_engine.db.erasure import ErasureReport


def erasure_requested(report: ErasureReport) -> CloudEvent:
    """The event of an erasure: id, subject and record key are the erasure id, the ids only as keyed hashes."""
    data = ErasureRequestedData(erasure_id=report.erasure_id, id_hashes=report.id_hashes,
                                requested_at=report.requested_at)
    return CloudEvent(id=f"erasure/{report.erasure_id}", source="/stage-engine", type=ERASURE_REQUESTED_TYPE,
                      time=report.requested_at, subject=report.erasure_id, data=data.model_dump(mode="json"))


async def erase_and_announce(conn: AsyncConnection, any_id: str, *, pepper: bytes, now: datetime,
                             topic: str = STAGE_TRANSITIONS) -> ErasureReport | None:
    """None when no customer or erasure has `any_id`."""
    report = await erasure.erase(conn, any_id, pepper=pepper, now=now)
    if report is not None and not report.repeated:
        await add_to_outbox(conn, [(topic, erasure_requested(report))])
    return report


# The services an erasure's report covers. Ingest keeps nothing keyed by customer in its database (docs/erasure.md):
# its part is complete with nothing to count; messaging's and loyalty's are read from their own reports.
REPORTING_SERVICES = ("ingest", "messaging", "loyalty")


def assembled(own: ErasureReport, reported: dict[str, dict[str, int] | None]) -> dict[str, Any]:
    """The erasure's report from the stage engine's own counts and each other service's (None: not applied yet,
    or not reachable): `complete` once every service has applied it."""
    services: dict[str, dict[str, Any]] = {
        "stage-engine": {"status": "complete", "counts": own.counts},
    }
    for name in REPORTING_SERVICES:
        counts = reported.get(name)
        services[name] = {"status": "pending" if counts is None else "complete", "counts": counts}
    status = "complete" if all(part["status"] == "complete" for part in services.values()) else "pending"
    return {"erasure_id": own.erasure_id, "requested_at": own.requested_at, "status": status, "services": services}
