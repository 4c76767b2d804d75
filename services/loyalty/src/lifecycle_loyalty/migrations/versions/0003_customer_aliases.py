"""customer aliases (identity merges)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_aliases",
        sa.Column("alias_id", sa.Text, primary_key=True),
        sa.Column("survivor_id", sa.Text, nullable=False),
        sa.Column("merge_event_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("customer_aliases_survivor", "customer_aliases", ["survivor_id"])


def downgrade() -> None:
    # The ledger keeps the merges' entries; only the routing of absorbed ids to their survivor goes.
    op.drop_index("customer_aliases_survivor", table_name="customer_aliases")
    op.drop_table("customer_aliases")
