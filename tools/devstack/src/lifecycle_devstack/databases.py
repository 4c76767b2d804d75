"""Create the services' databases on any PostgreSQL server (embedded or not)."""

from __future__ import annotations

import asyncpg


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def create_databases(postgres_url: str, names: list[str]) -> None:
    conn = await asyncpg.connect(plain_dsn(postgres_url) + "/postgres")
    try:
        existing = {row["datname"] for row in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
