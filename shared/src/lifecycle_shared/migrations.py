"""Alembic helpers: one `env.py` body for every service, and the plumbing tables' DDL."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from sqlalchemy import Connection, MetaData, pool
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import create_async_engine


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

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


# The plumbing tables' DDL, one function per change, as each service's migrations apply them in
# order. Never edit one that has shipped: add the next.

def create_plumbing_tables() -> None:
    """Plumbing 1: the inbox and outbox tables (each service's 0001)."""
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def drop_plumbing_tables() -> None:
    op.drop_table("outbox")
    op.drop_table("inbox")


def upgrade_plumbing_2() -> None:
    """Plumbing 2 (each service's 0002): the inbox remembers each event's content digest and takes
    ids of the form `source/messageId`; outbox rows that can never be published are set aside."""
    op.add_column("inbox", sa.Column("digest", sa.Text))
    op.alter_column("inbox", "event_id", type_=sa.Text, existing_nullable=False)
    op.add_column("outbox", sa.Column("dead_at", sa.DateTime(timezone=True)))
    op.add_column("outbox", sa.Column("last_error", sa.Text))


def downgrade_plumbing_2() -> None:
    op.drop_column("outbox", "last_error")
    op.drop_column("outbox", "dead_at")
    op.alter_column("inbox", "event_id", type_=sa.String(200), existing_nullable=False)
    op.drop_column("inbox", "digest")
