"""Tables of the ingest database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = MetaData()

sources = Table(
    "sources",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Exact browser origins (`https://shop.example.com`), normalised as browsers send them.
    Column("allowed_origins", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    # The identity-verification secret (lc_iv_...): the key of the `context.userHash` HMAC that makes a write
    # key's event verified. Kept as it is, since ingest computes the HMAC with it; None: not set up.
    Column("identity_secret", Text),
    Column("identity_secret_created_at", DateTime(timezone=True)),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("source_id", UUID(as_uuid=False), ForeignKey("sources.id"), nullable=False),
    # 'write' (lc_wk_, may sit in a browser) or 'server' (lc_sk_, kept on a server).
    Column("kind", Text, nullable=False, server_default="write"),
    # sha256 of the key; the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Set when the key was rotated: it keeps working until then, for the overlap.
    Column("expires_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('write', 'server')", name="api_keys_kind_check"),
)

# One row, bumped in the same transaction as every change to keys or sources: each instance polls
# it to know when to reload its in-memory keys (see lifecycle_ingest.keys).
key_generation = Table(
    "key_generation",
    metadata,
    Column("id", SmallInteger, primary_key=True, server_default="1"),
    Column("generation", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("id = 1", name="key_generation_one_row"),
)

# One data key per customer id (docs/erasure.md, crypto-shredding): touchpoints and the other services' events
# about the id are sealed under it; an erasure deletes it, and what it sealed can never be read again. Found by
# the id's keyed hash (lifecycle_shared.erasure.id_hash), never by the id.
subject_keys = Table(
    "subject_keys",
    metadata,
    Column("key_id", UUID(as_uuid=False), primary_key=True),
    Column("id_hash", Text, nullable=False, unique=True),
    Column("key", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
