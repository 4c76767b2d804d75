"""order refunds, each with its amount (partial refunds)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_refunds",
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric),
        sa.Column("refunded_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("customer_id", "order_id", "event_id"),
    )
    # Refunds known so far refunded their orders whole.
    op.execute("INSERT INTO order_refunds (customer_id, order_id, event_id, refunded_at) "
               "SELECT customer_id, order_id, refunded_event_id, refunded_at FROM orders "
               "WHERE refunded_event_id IS NOT NULL")


def downgrade() -> None:
    op.drop_table("order_refunds")
