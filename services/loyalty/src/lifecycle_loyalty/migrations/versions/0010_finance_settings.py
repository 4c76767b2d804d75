"""finance_settings: the finance team's estimates (value per point, expected redemption, breakage fallback)

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finance_settings",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", JSONB, nullable=False),
    )
    op.create_index("finance_settings_effective", "finance_settings", ["effective_at", "seq"])


def downgrade() -> None:
    op.drop_table("finance_settings")
