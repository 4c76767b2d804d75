"""Tables of the stage-engine database."""

from __future__ import annotations

from sqlalchemy import ARRAY, BigInteger, Column, DateTime, Identity, Index, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()

profiles = Table(
    "profiles",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    # userId once known, else the first anonymousId.
    Column("customer_id", Text, nullable=False, unique=True),
    Column("user_id", Text, unique=True),
    Column("stage", Text),
    Column("stage_since", DateTime(timezone=True)),
    Column("facts", JSONB, nullable=False, server_default="{}"),
    Column("traits", JSONB, nullable=False, server_default="{}"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("merged_into", UUID(as_uuid=False)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

identities = Table(
    "identities",
    metadata,
    Column("id_type", Text, primary_key=True),  # 'user' | 'anonymous'
    Column("id_value", Text, primary_key=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False, index=True),
)

touchpoints = Table(
    "touchpoints",
    metadata,
    Column("event_id", Text, primary_key=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False),
    Column("name", Text, nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("properties", JSONB, nullable=False),
    Index("touchpoints_profile_time", "profile_id", "event_time"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("profile_id", UUID(as_uuid=False), nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("from_stage", Text),
    Column("to_stage", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule_version", Text, nullable=False),
    Column("cause_event_ids", ARRAY(Text), nullable=False),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("transitions_profile_seq", "profile_id", "seq"),
)
