"""orders (state per order), points as bigint, inbox digest, outbox dead letters

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from lifecycle_shared.migrations import downgrade_plumbing_2, upgrade_plumbing_2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_plumbing_2()
    op.alter_column("ledger_entries", "points", type_=sa.BigInteger, existing_nullable=False)
    op.create_table(
        "orders",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("amount", sa.Numeric),
        sa.Column("completed_event_id", sa.Text),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("refunded_event_id", sa.Text),
        sa.Column("refunded_at", sa.DateTime(timezone=True)),
    )
    # Orders known so far, from the ledger: their earn entries name the order, its cause and (at
    # default-v1's one point per unit) its amount in whole units. Their event time is unknown: the
    # epoch, before any event ingest accepts, so a completion re-sent later never replaces them.
    op.execute(
        "INSERT INTO orders (customer_id, order_id, amount, completed_event_id, completed_at, refunded_event_id) "
        "SELECT customer_id, order_id, sum(points) FILTER (WHERE kind = 'earn'), "
        "min(cause_event_id) FILTER (WHERE kind = 'earn'), "
        "CASE WHEN bool_or(kind = 'earn') THEN timestamptz '1970-01-01 00:00:00+00' END, "
        "min(cause_event_id) FILTER (WHERE kind = 'reverse') "
        "FROM ledger_entries WHERE order_id IS NOT NULL GROUP BY customer_id, order_id"
    )


def downgrade() -> None:
    op.drop_table("orders")
    op.alter_column("ledger_entries", "points", type_=sa.Integer, existing_nullable=False)
    downgrade_plumbing_2()
