"""The restore runbook's step (docs/erasure.md "Backups", docs/operations.md): after a database backup is restored,
`python -m lifecycle_stage_engine republish-erasures --since <ISO time>` writes `customer.erasure_requested` again
for every erasure requested at or after `since` (the backup's time), the same event (id, erasure id, hashes,
requested_at) through the outbox, all in one transaction; each service applies it again (the handlers are
idempotent: a service that has it already erases nothing new).

Which record it re-publishes from: the stage engine's own `erasures` table. When the stage engine's own database
is the one restored, that table lacks the erasures made after the backup and its own tables hold those customers
again: `--from-database-url` (messaging's or loyalty's database, either or both) reads their `erasures` rows too
(same erasure id, hashes and requested_at); an erasure the stage engine has no record of is first applied here
again by its hashes (`db.erasure.erase_again`; needs LIFECYCLE_ERASURE_PEPPER), then re-published."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from lifecycle_shared.db import add_to_outbox, create_engine
from lifecycle_shared.erasure import pepper_of
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_stage_engine.db import erasure as records
from lifecycle_stage_engine.db.erasure import ErasureReport
from lifecycle_stage_engine.erasure import erasure_requested
from lifecycle_stage_engine.settings import StageEngineSettings


def merged(*found: Sequence[ErasureReport]) -> list[ErasureReport]:
    """The erasures of every source, each once (by erasure id; the first source's row wins), oldest first."""
    by_id: dict[str, ErasureReport] = {}
    for source in found:
        for report in source:
            by_id.setdefault(report.erasure_id, report)
    return sorted(by_id.values(), key=lambda r: (r.requested_at, r.erasure_id))


async def republish(conn: AsyncConnection, since: datetime, *, topic: str, elsewhere: Sequence[ErasureReport] = (),
                    pepper: bytes | None = None, now: datetime) -> list[ErasureReport]:
    """In the caller's transaction: the erasures recorded here since `since` and those recorded `elsewhere`
    (another service's `erasures`), the ones missing here applied again first; each announced again through the
    outbox. What was announced, oldest first."""
    erasures = merged(await records.recorded_since(conn, since), [e for e in elsewhere if e.requested_at >= since])
    if elsewhere:
        if pepper is None:
            raise ValueError("erasures read from another database need LIFECYCLE_ERASURE_PEPPER to be applied here")
        await records.erase_again(conn, erasures, pepper=pepper, now=now)
    await add_to_outbox(conn, [(topic, erasure_requested(report)) for report in erasures])
    return erasures


async def _run(settings: StageEngineSettings, since: datetime, sources: list[str]) -> list[ErasureReport]:
    elsewhere: list[ErasureReport] = []
    for url in sources:
        other = create_engine(url)
        try:
            async with other.connect() as conn:
                elsewhere += await records.recorded_since(conn, since)
        finally:
            await other.dispose()
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            return await republish(conn, since, topic=settings.kafka.topics.stage_transitions, elsewhere=elsewhere,
                                   pepper=pepper_of(settings.erasure_pepper), now=datetime.now(UTC))
    finally:
        await engine.dispose()


def aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give the offset (2026-12-01T02:00:00Z)")
    return value


def republish_erasures_command(settings: StageEngineSettings, args: list[str]) -> None:
    """Re-publish the erasures since a backup's time; prints each erasure id and the count."""
    parser = argparse.ArgumentParser(prog="python -m lifecycle_stage_engine republish-erasures")
    parser.add_argument("--since", type=aware_time, required=True,
                        help="the restored backup's time (ISO 8601 with offset): erasures requested at or after it")
    parser.add_argument("--from-database-url", dest="sources", action="append", default=[], metavar="URL",
                        help="also the erasures recorded in this database (messaging's or loyalty's; repeatable): "
                             "when the stage engine's own database was restored")
    ns = parser.parse_args(args)
    if ns.sources and pepper_of(settings.erasure_pepper) is None:
        parser.error("--from-database-url needs LIFECYCLE_ERASURE_PEPPER (to apply the erasures here again)")
    erasures = asyncio.run(_run(settings, ns.since, ns.sources))
    for report in erasures:
        print(report.erasure_id)
    print(f"republished {len(erasures)} erasures since {ns.since.isoformat()}")
