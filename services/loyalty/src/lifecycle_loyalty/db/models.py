"""Tables of the loyalty database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, MetaData, Numeric, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID

metadata = MetaData()

# Append-only: entries are never updated or deleted; a refund is a new 'reverse' entry.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # derived from cause event + rule
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # earn | reverse | adjust | bonus
    Column("points", BigInteger, nullable=False),
    Column("rule", Text, nullable=False),
    Column("cause_event_id", Text, nullable=False),
    Column("order_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ledger_customer_seq", "customer_id", "seq"),
    Index("ledger_order", "customer_id", "order_id"),
)

# What is known of each order, whatever the order its events arrived in: the earliest completion
# (by event time) and the earliest refund. The ledger is reconciled to it.
orders = Table(
    "orders",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("order_id", Text, primary_key=True),
    Column("amount", Numeric),
    Column("completed_event_id", Text),
    Column("completed_at", DateTime(timezone=True)),
    Column("refunded_event_id", Text),
    Column("refunded_at", DateTime(timezone=True)),
)
