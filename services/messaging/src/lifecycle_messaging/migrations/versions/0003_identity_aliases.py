"""aliases: customer keys folded into another by identity merges

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
        "aliases",
        sa.Column("absorbed_id", sa.Text, primary_key=True),
        sa.Column("survivor_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("merged_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("aliases_survivor", "aliases", ["survivor_id"])


def downgrade() -> None:
    op.drop_index("aliases_survivor", table_name="aliases")
    op.drop_table("aliases")
