"""Alembic helpers: one `env.py` body for every service, and the plumbing tables' DDL."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import create_async_engine

from lifecycle_shared.db import plumbing_metadata


def upgrade_to_head(*, database_url: str, migrations_dir: Path) -> None:
    """Run a service's migrations programmatically (what `<service> migrate` does)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url)
    command.upgrade(config, "head")


def run_env(target_metadata: MetaData, *, settings_cls: str) -> None:
    """Body of each service's migrations/env.py (online mode, asyncpg).

    The URL comes from the caller's config, else from the service's settings (env vars), so
    plain `alembic upgrade head` works too.
    """
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        module, _, name = settings_cls.partition(":")
        url = getattr(importlib.import_module(module), name)().database_url

    def do_run(connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def create_plumbing_tables() -> None:
    """Create the inbox and outbox tables inside a migration."""
    bind = context.get_bind()
    plumbing_metadata.create_all(bind)


def drop_plumbing_tables() -> None:
    plumbing_metadata.drop_all(context.get_bind())
