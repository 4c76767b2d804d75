"""`python -m lifecycle_ingest [serve|migrate|create-key SOURCE]`."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from lifecycle_shared import cli
from lifecycle_shared.db import create_engine

from lifecycle_ingest.db.keys import create_key
from lifecycle_ingest.domain.touchpoints import SOURCE_NAME
from lifecycle_ingest.main import create_app
from lifecycle_ingest.settings import IngestSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_key_command(settings: IngestSettings, args: list[str]) -> None:
    """Create a write key for a source and print it (the only time it is shown)."""
    source = args[0] if args else "default"
    if not re.fullmatch(SOURCE_NAME, source):
        raise SystemExit(f"source name {source!r}: letters, digits, '.', '_' and '-', at most 100, no '/'")

    async def run() -> None:
        engine = create_engine(settings.database_url)
        async with engine.begin() as conn:
            new_key = await create_key(conn, source_name=source)
        await engine.dispose()
        print(new_key.key)

    asyncio.run(run())


if __name__ == "__main__":
    cli.main(service="ingest", settings_cls=IngestSettings, create_app=create_app,
             migrations_dir=MIGRATIONS, commands={"create-key": create_key_command})
