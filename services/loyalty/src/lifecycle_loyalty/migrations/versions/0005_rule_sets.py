"""earn rule sets as data; orders' shipping and currency

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("shipping", sa.Numeric))
    op.add_column("orders", sa.Column("currency", sa.Text))
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), nullable=False, unique=True),
        sa.Column("body", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_sets")
    op.drop_column("orders", "currency")
    op.drop_column("orders", "shipping")
