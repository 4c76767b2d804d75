"""`python -m lifecycle_ingest [serve | migrate | create-key SOURCE [--server] | set-origins SOURCE ORIGIN...]`."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from lifecycle_shared import cli
from lifecycle_shared.db import create_engine
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_ingest.db.keys import create_key, set_origins
from lifecycle_ingest.domain.origins import InvalidOrigin, normalise_origins
from lifecycle_ingest.domain.touchpoints import SOURCE_NAME
from lifecycle_ingest.main import create_app
from lifecycle_ingest.settings import IngestSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


def source_name(text: str) -> str:
    if not re.fullmatch(SOURCE_NAME, text):
        raise argparse.ArgumentTypeError(f"source name {text!r}: letters, digits, '.', '_' and '-', at most 100, "
                                         "no '/'")
    return text


def in_transaction(settings: IngestSettings, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def create_key_command(settings: IngestSettings, args: list[str]) -> None:
    """Create a key for a source (and the source if needed) and print it: the only time it is shown."""
    parser = argparse.ArgumentParser(prog="python -m lifecycle_ingest create-key")
    parser.add_argument("source", type=source_name, nargs="?", default="default")
    parser.add_argument("--server", action="store_true",
                        help="a server key (lc_sk_) for server-side sends such as orders; default: a write key "
                             "(lc_wk_), safe in a browser")
    ns = parser.parse_args(args)
    new_key = in_transaction(settings, lambda conn: create_key(
        conn, source_name=ns.source, kind="server" if ns.server else "write"))
    print(new_key.key)


def set_origins_command(settings: IngestSettings, args: list[str]) -> None:
    """Replace the browser origins a source allows (creating the source if needed); prints them normalised."""
    parser = argparse.ArgumentParser(prog="python -m lifecycle_ingest set-origins")
    parser.add_argument("source", type=source_name)
    parser.add_argument("origins", nargs="*", metavar="ORIGIN", help="e.g. https://shop.example.com; none clears")
    ns = parser.parse_args(args)
    try:
        origins = normalise_origins(ns.origins)
    except InvalidOrigin as error:
        parser.error(str(error))
    stored = in_transaction(settings, lambda conn: set_origins(conn, source_name=ns.source, origins=origins))
    for origin in stored.allowed_origins:
        print(origin)


if __name__ == "__main__":
    cli.main(service="ingest", settings_cls=IngestSettings, create_app=create_app, migrations_dir=MIGRATIONS,
             commands={"create-key": create_key_command, "set-origins": set_origins_command})
