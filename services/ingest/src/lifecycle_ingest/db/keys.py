"""Sources and API keys: all SQL of the ingest service. Never commits.

Every change to keys or sources also bumps `key_generation` in the same transaction, so each
instance's KeyStore (lifecycle_ingest.keys) sees it on its next poll.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from lifecycle_ingest.db.models import api_keys, key_generation, sources

KeyKind = Literal["write", "server"]
# Recognisable by prefix: a write key may sit in a browser, a server key must not.
KEY_PREFIXES: dict[KeyKind, str] = {"write": "lc_wk_", "server": "lc_sk_"}
# A source's identity-verification secret: the key of the HMAC that verifies a write key's event's userId.
IDENTITY_SECRET_PREFIX = "lc_iv_"
KEY_RANDOM_BYTES = 32  # 256 random bits after the prefix
SHOWN_PREFIX_LENGTH = 10  # what listings show to tell keys apart: "lc_wk_" and 4 random characters


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    key_id: str
    source: str
    kind: KeyKind
    key: str  # shown once, here; only its hash is stored
    prefix: str
    created_at: datetime


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    source: str
    kind: KeyKind
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class LiveKey:
    key_id: str
    source: str
    kind: KeyKind
    key_hash: str
    allowed_origins: tuple[str, ...]
    expires_at: datetime | None
    identity_secret: str | None = None


@dataclass(frozen=True)
class SourceInfo:
    name: str
    allowed_origins: list[str]
    identity_secret_created_at: datetime | None  # None: no identity verification set up


def _live():
    return and_(api_keys.c.revoked_at.is_(None),
                or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > func.now()))


async def bump_generation(conn: AsyncConnection) -> None:
    """Tell every instance that keys or sources changed (visible to them when this transaction commits)."""
    await conn.execute(
        insert(key_generation).values(id=1, generation=1)
        .on_conflict_do_update(index_elements=["id"], set_={"generation": key_generation.c.generation + 1})
    )


async def generation(conn: AsyncConnection) -> int:
    return (await conn.execute(select(key_generation.c.generation).where(key_generation.c.id == 1))
            ).scalar_one_or_none() or 0


async def ensure_source(conn: AsyncConnection, *, source_name: str) -> str:
    """The source's id, creating the source if needed."""
    return (await conn.execute(
        insert(sources).values(id=str(uuid.uuid4()), name=source_name)
        .on_conflict_do_update(index_elements=["name"], set_={"name": source_name})
        .returning(sources.c.id)
    )).scalar_one()


async def _insert_key(conn: AsyncConnection, *, source_id: str, source_name: str, kind: KeyKind) -> NewKey:
    key = KEY_PREFIXES[kind] + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    key_id = str(uuid.uuid4())
    created_at = (await conn.execute(
        api_keys.insert().values(id=key_id, source_id=source_id, kind=kind, key_hash=hash_key(key),
                                 key_prefix=key[:SHOWN_PREFIX_LENGTH])
        .returning(api_keys.c.created_at)
    )).scalar_one()
    await bump_generation(conn)
    return NewKey(key_id=key_id, source=source_name, kind=kind, key=key, prefix=key[:SHOWN_PREFIX_LENGTH],
                  created_at=created_at)


async def create_key(conn: AsyncConnection, *, source_name: str, kind: KeyKind = "write") -> NewKey:
    """Create the source if needed and a new key for it; the key is returned only here."""
    source_id = await ensure_source(conn, source_name=source_name)
    return await _insert_key(conn, source_id=source_id, source_name=source_name, kind=kind)


async def rotate_key(conn: AsyncConnection, *, key_id: str, overlap_s: int) -> tuple[NewKey, datetime] | None:
    """A new key of the same kind for the same source; the old one expires after `overlap_s` (never
    later than it already would). None if `key_id` is not a live key."""
    expires = func.least(func.coalesce(api_keys.c.expires_at, literal_column("'infinity'::timestamptz")),
                         func.now() + timedelta(seconds=overlap_s))
    old = (await conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, _live()).values(expires_at=expires)
        .returning(api_keys.c.source_id, api_keys.c.kind, api_keys.c.expires_at)
    )).one_or_none()
    if old is None:
        return None
    source_name = (await conn.execute(select(sources.c.name).where(sources.c.id == old.source_id))).scalar_one()
    new_key = await _insert_key(conn, source_id=old.source_id, source_name=source_name, kind=old.kind)
    return new_key, old.expires_at


async def revoke_key(conn: AsyncConnection, *, key_id: str) -> bool:
    """Revoke a live key at once; False if there is none with this id."""
    result = await conn.execute(update(api_keys).where(api_keys.c.id == key_id, _live())
                                .values(revoked_at=func.now()))
    if result.rowcount != 1:
        return False
    await bump_generation(conn)
    return True


async def list_keys(conn: AsyncConnection, *, source_name: str | None = None) -> list[KeyInfo]:
    query = (select(api_keys.c.id, sources.c.name, api_keys.c.kind, api_keys.c.key_prefix, api_keys.c.created_at,
                    api_keys.c.expires_at, api_keys.c.revoked_at)
             .join(sources, sources.c.id == api_keys.c.source_id)
             .order_by(api_keys.c.created_at, api_keys.c.id))
    if source_name is not None:
        query = query.where(sources.c.name == source_name)
    return [KeyInfo(key_id=row.id, source=row.name, kind=row.kind, prefix=row.key_prefix, created_at=row.created_at,
                    expires_at=row.expires_at, revoked_at=row.revoked_at)
            for row in await conn.execute(query)]


async def set_origins(conn: AsyncConnection, *, source_name: str, origins: list[str]) -> SourceInfo:
    """Replace a source's allowed origins (already normalised), creating the source if needed."""
    row = (await conn.execute(
        insert(sources).values(id=str(uuid.uuid4()), name=source_name, allowed_origins=origins)
        .on_conflict_do_update(index_elements=["name"], set_={"allowed_origins": origins})
        .returning(sources.c.allowed_origins, sources.c.identity_secret_created_at)
    )).one()
    await bump_generation(conn)
    return SourceInfo(source_name, list(row.allowed_origins), row.identity_secret_created_at)


async def list_sources(conn: AsyncConnection) -> list[SourceInfo]:
    rows = await conn.execute(select(sources.c.name, sources.c.allowed_origins, sources.c.identity_secret_created_at)
                              .order_by(sources.c.name))
    return [SourceInfo(row.name, list(row.allowed_origins), row.identity_secret_created_at) for row in rows]


async def new_identity_secret(conn: AsyncConnection, *, source_name: str) -> tuple[str, datetime]:
    """A new identity-verification secret for the source (created if needed), replacing any it had: returned
    only here, with when it was made."""
    secret = IDENTITY_SECRET_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)
    created_at = (await conn.execute(
        insert(sources).values(id=str(uuid.uuid4()), name=source_name, identity_secret=secret,
                               identity_secret_created_at=func.now())
        .on_conflict_do_update(index_elements=["name"], set_={"identity_secret": secret,
                                                              "identity_secret_created_at": func.now()})
        .returning(sources.c.identity_secret_created_at)
    )).scalar_one()
    await bump_generation(conn)
    return secret, created_at


async def drop_identity_secret(conn: AsyncConnection, *, source_name: str) -> bool:
    """Stop verifying identities for the source; False if it had no secret."""
    result = await conn.execute(update(sources).where(sources.c.name == source_name,
                                                      sources.c.identity_secret.is_not(None))
                                .values(identity_secret=None, identity_secret_created_at=None))
    if result.rowcount != 1:
        return False
    await bump_generation(conn)
    return True


async def live_keys(conn: AsyncConnection) -> list[LiveKey]:
    """Every key neither revoked nor expired (by the database's clock), with its source's origins and identity
    secret."""
    rows = await conn.execute(
        select(api_keys.c.id, sources.c.name, api_keys.c.kind, api_keys.c.key_hash, sources.c.allowed_origins,
               api_keys.c.expires_at, sources.c.identity_secret)
        .join(sources, sources.c.id == api_keys.c.source_id).where(_live())
    )
    return [LiveKey(key_id=row.id, source=row.name, kind=row.kind, key_hash=row.key_hash,
                    allowed_origins=tuple(row.allowed_origins), expires_at=row.expires_at,
                    identity_secret=row.identity_secret) for row in rows]
