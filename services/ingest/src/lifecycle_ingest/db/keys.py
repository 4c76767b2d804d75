"""Sources and write keys: all SQL of the ingest service. Never commits."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_ingest.db.models import sources, write_keys

KEY_PREFIX = "lc_wk_"


def hash_key(key: str) -> str:
    # Keys are 192 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    source_id: str
    source_name: str
    key_id: str
    key: str


async def create_key(conn: AsyncConnection, *, source_name: str) -> NewKey:
    """Create the source if needed and a new write key for it; the key is returned only here."""
    source_id = (await conn.execute(
        insert(sources).values(id=str(uuid.uuid4()), name=source_name)
        .on_conflict_do_update(index_elements=["name"], set_={"name": source_name})
        .returning(sources.c.id)
    )).scalar_one()
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    key_id = str(uuid.uuid4())
    await conn.execute(write_keys.insert().values(
        id=key_id, source_id=source_id, key_hash=hash_key(key), key_prefix=key[:10]))
    return NewKey(source_id=source_id, source_name=source_name, key_id=key_id, key=key)


async def source_for_key(conn: AsyncConnection, *, key: str) -> str | None:
    """The source name a live key belongs to, or None."""
    return (await conn.execute(
        select(sources.c.name)
        .join(write_keys, write_keys.c.source_id == sources.c.id)
        .where(write_keys.c.key_hash == hash_key(key), write_keys.c.revoked_at.is_(None))
    )).scalar_one_or_none()


async def revoke_key(conn: AsyncConnection, *, key_id: str) -> bool:
    result = await conn.execute(
        update(write_keys).where(write_keys.c.id == key_id, write_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return result.rowcount == 1
