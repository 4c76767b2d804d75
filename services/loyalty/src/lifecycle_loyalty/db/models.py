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
    Column("kind", Text, nullable=False),  # earn | reverse | adjust | bonus | move_out | move_in
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

# Identity merges: every id absorbed into another customer -> the customer it now belongs to. Kept flat
# (a survivor is never itself an alias): when a survivor is absorbed later, its aliases follow.
customer_aliases = Table(
    "customer_aliases",
    metadata,
    Column("alias_id", Text, primary_key=True),
    Column("survivor_id", Text, nullable=False),
    Column("merge_event_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("customer_aliases_survivor", "survivor_id"),
)
