"""orders and refunds for campaign lift (no personal data: order id, customer key, time, value)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revenue", sa.Numeric, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
    )
    op.create_index("orders_customer", "orders", ["customer_id", "ordered_at"])
    op.create_table(
        "order_refunds",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric),
        sa.Column("refunded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("order_refunds_order", "order_refunds", ["order_id"])


def downgrade() -> None:
    op.drop_table("order_refunds")
    op.drop_table("orders")
