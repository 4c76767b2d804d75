"""the consent log's unsubscribes by time, for message.unsubscribed webhooks

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The announcer reads the changes to `unsubscribed` since its cursor every second or so: without this, a
    # scan of the whole (append-only, ever growing) log each time.
    op.create_index("consent_changes_unsubscribed_at", "consent_changes", ["at", "seq"],
                    postgresql_where=sa.text("state = 'unsubscribed' AND purpose = 'marketing'"))


def downgrade() -> None:
    op.drop_index("consent_changes_unsubscribed_at", table_name="consent_changes")
