"""Init container of every app pod: waits until the service's database is at the Alembic head this image ships.

    python /scripts/wait_for_schema.py <module> <database-url variable> [--interval S] [--timeout S]

The image carries the service's migrations (`<module>/migrations`); their head revision(s), read with
Alembic's ScriptDirectory, are what this version of the code needs. The database's revision is what the
migration Job wrote into `alembic_version`. Until both are the same set (the Job has not run yet, is
running, or the database is unreachable) it prints why and waits; then it exits 0 and the app container
starts. It prints revisions and error classes only, never the URL. `--timeout 0` (the default) waits forever.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import pool, text
from sqlalchemy.ext.asyncio import create_async_engine


def image_heads(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{module} is not an installed package")
    config = Config()
    config.set_main_option("script_location", str(Path(spec.submodule_search_locations[0]) / "migrations"))
    return set(ScriptDirectory.from_config(config).get_heads())


async def database_revisions(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args={"timeout": 5})
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("module")
    parser.add_argument("url_variable")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=0.0)
    args = parser.parse_args()
    heads = image_heads(args.module)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while True:
        try:
            found = asyncio.run(database_revisions(os.environ[args.url_variable]))
            state = f"database at {sorted(found) or 'no revision'}"
        except Exception as error:  # noqa: BLE001 - unreachable, no table yet: wait for the migration Job
            found, state = set(), f"database not readable ({type(error).__name__})"
        if found == heads:
            print(f"schema at head {sorted(heads)}", flush=True)
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            print(f"gave up: {state}, image needs {sorted(heads)}", file=sys.stderr, flush=True)
            return 1
        print(f"waiting for the migration Job: {state}, image needs {sorted(heads)}", flush=True)
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
