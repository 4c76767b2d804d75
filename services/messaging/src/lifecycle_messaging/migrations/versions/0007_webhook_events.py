"""webhook events from the message log beyond message.sent: when a message last changed status

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
    # Older rows keep NULL (never announced); rows written from now on are stamped when made and when their
    # status changes (failed, suppressed).
    op.add_column("messages", sa.Column("status_changed_at", sa.DateTime(timezone=True)))
    op.alter_column("messages", "status_changed_at", server_default=sa.text("now()"))
    op.create_index("messages_status_changed_at", "messages", ["status", "status_changed_at"],
                    postgresql_where=sa.text("status IN ('failed', 'suppressed')"))


def downgrade() -> None:
    op.drop_index("messages_status_changed_at", table_name="messages")
    op.drop_column("messages", "status_changed_at")
