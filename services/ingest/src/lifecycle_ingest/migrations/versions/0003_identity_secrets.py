"""Sources' identity-verification secrets (the key of the `context.userHash` HMAC)

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
    # Kept as it is (not hashed): ingest computes the HMAC with it on every verified event.
    op.add_column("sources", sa.Column("identity_secret", sa.Text))
    op.add_column("sources", sa.Column("identity_secret_created_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("sources", "identity_secret_created_at")
    op.drop_column("sources", "identity_secret")
