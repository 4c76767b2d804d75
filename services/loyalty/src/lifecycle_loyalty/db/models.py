"""Tables of the loyalty database."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

# Append-only: entries are never updated or deleted; a refund is a new 'reverse' entry.
ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # derived from cause event + rule
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    # earn | reverse | adjust | bonus | move_out | move_in | spend | refund_spend | expire | debt | settlement
    Column("kind", Text, nullable=False),
    Column("points", BigInteger, nullable=False),  # what it adds to the balance (pending + available - debt)
    Column("rule", Text, nullable=False),
    Column("cause_event_id", Text, nullable=False),
    Column("order_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("rule_version", Text, nullable=False, server_default=""),
    Column("debt", BigInteger, nullable=False, server_default=text("0")),  # what it adds to the debt
    Column("lot_id", UUID(as_uuid=False)),  # the lot it made (a credit) or emptied (an expiry)
    Column("effective_at", DateTime(timezone=True)),  # when it happened (the cause's time)
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
    Column("shipping", Numeric),  # what of the amount is shipping (excluded from earning by default)
    Column("currency", Text),  # ISO 4217, as the order named it; None: the rules' default currency
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

# What the ledger's credits hold, lot by lot (a projection of the entries, updated under the account's row
# lock): pending until available_at, available until expires_at. A lot never holds less than nothing.
lots = Table(
    "lots",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),  # the id of the entry that made it
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("customer_id", Text, nullable=False),
    Column("order_id", Text),
    Column("points", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("earned_at", DateTime(timezone=True), nullable=False),
    Column("available_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("warned_at", DateTime(timezone=True)),  # when its coming expiry was announced
    CheckConstraint("remaining >= 0 AND remaining <= points", name="lots_remaining_within_points"),
    Index("lots_customer", "customer_id", "earned_at"),
    Index("lots_expiring", "expires_at", postgresql_where=text("remaining > 0")),
)

# One row per customer holding points: the row lock every change of their lots takes, and their debt
# (points reversed after they were spent, settled from later credits). Never negative.
accounts = Table(
    "accounts",
    metadata,
    Column("customer_id", Text, primary_key=True),
    Column("debt", BigInteger, nullable=False, server_default=text("0")),
    Column("tier", Text),  # the tier last announced (None: the lowest)
    CheckConstraint("debt >= 0", name="accounts_debt_not_negative"),
)

# The earn rule sets, every version ever put in force (versions are immutable): the latest is in force.
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", Text, primary_key=True),
    Column("seq", BigInteger, Identity(), nullable=False, unique=True),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# The rewards catalogue: what points buy, at what cost, for which tiers (None: every tier), in what stock
# (None: unlimited). Stock never goes below nothing.
rewards = Table(
    "rewards",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),  # discount_code | free_shipping | free_product | early_access
    Column("cost", BigInteger, nullable=False),
    Column("tiers", ARRAY(Text)),
    Column("stock", BigInteger),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("cost > 0", name="rewards_cost_positive"),
    CheckConstraint("stock >= 0", name="rewards_stock_not_negative"),
)

# Redemptions: each one spend entry (`redemption:<id>`); the lots it took points from, to give them back
# if it is cancelled.
redemptions = Table(
    "redemptions",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("customer_id", Text, nullable=False),
    Column("reward_id", Text, nullable=False),
    Column("cost", BigInteger, nullable=False),
    Column("status", Text, nullable=False),  # redeemed | cancelled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("cancelled_at", DateTime(timezone=True)),
    Index("redemptions_customer", "customer_id", "created_at"),
)

spend_allocations = Table(
    "spend_allocations",
    metadata,
    Column("redemption_id", UUID(as_uuid=False), nullable=False),
    Column("lot_id", UUID(as_uuid=False), nullable=False),
    Column("points", BigInteger, nullable=False),
    PrimaryKeyConstraint("redemption_id", "lot_id"),
)

# Answers given to requests with an `Idempotency-Key` (per customer id as requested): the same key again
# gets the same answer; with another body, a 409.
idempotent_answers = Table(
    "idempotent_answers",
    metadata,
    Column("scope", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status", BigInteger, nullable=False),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("scope", "key"),
)

# Every refund of an order (an order may be refunded in parts): `amount` None (or not positive) refunds it
# whole; otherwise the order keeps the points of what was not refunded, in proportion.
order_refunds = Table(
    "order_refunds",
    metadata,
    Column("customer_id", Text, nullable=False),
    Column("order_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("amount", Numeric),
    Column("refunded_at", DateTime(timezone=True)),
    PrimaryKeyConstraint("customer_id", "order_id", "event_id"),
)

# The finance team's estimates, every change kept (append-only): the latest effective at a moment is in force.
finance_settings = Table(
    "finance_settings",
    metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("body", JSONB, nullable=False),
    Index("finance_settings_effective", "effective_at", "seq"),
)
