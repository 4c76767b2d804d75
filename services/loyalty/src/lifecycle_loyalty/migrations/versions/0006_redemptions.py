"""rewards catalogue, redemptions and the lots they took points from, idempotent answers

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rewards",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("tiers", postgresql.ARRAY(sa.Text)),
        sa.Column("stock", sa.BigInteger),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("cost > 0", name="rewards_cost_positive"),
        sa.CheckConstraint("stock >= 0", name="rewards_stock_not_negative"),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", sa.UUID(as_uuid=False), primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("reward_id", sa.Text, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
    )
    op.create_index("redemptions_customer", "redemptions", ["customer_id", "created_at"])
    op.create_table(
        "spend_allocations",
        sa.Column("redemption_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("lot_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("redemption_id", "lot_id"),
    )
    op.create_table(
        "idempotent_answers",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status", sa.BigInteger, nullable=False),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("idempotent_answers")
    op.drop_table("spend_allocations")
    op.drop_index("redemptions_customer", table_name="redemptions")
    op.drop_table("redemptions")
    op.drop_table("rewards")
