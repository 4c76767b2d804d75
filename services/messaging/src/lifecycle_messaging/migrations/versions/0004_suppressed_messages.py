"""suppressed messages and their reason; each message's transition time; each customer's latest
transition seen

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The transition a message is about, placed in its customer's history (NULL on older rows: never judged).
    op.add_column("messages", sa.Column("event_time", sa.DateTime(timezone=True)))
    op.add_column("messages", sa.Column("processed_at", sa.DateTime(timezone=True)))
    op.add_column("messages", sa.Column("suppressed_reason", sa.Text))
    op.create_check_constraint("messages_suppressed_reason", "messages",
                               "(status = 'suppressed') = (suppressed_reason IS NOT NULL)")
    op.create_table(
        "latest_transitions",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("transition_id", sa.Text, nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("messages_pending_customer", "messages", ["customer_id"],
                    postgresql_where="status IN ('queued', 'awaiting_contact')")


def downgrade() -> None:
    op.drop_index("messages_pending_customer", table_name="messages")
    op.drop_table("latest_transitions")
    op.execute("UPDATE messages SET status = 'superseded' WHERE status = 'suppressed'")
    op.drop_constraint("messages_suppressed_reason", "messages")
    op.drop_column("messages", "suppressed_reason")
    op.drop_column("messages", "processed_at")
    op.drop_column("messages", "event_time")
