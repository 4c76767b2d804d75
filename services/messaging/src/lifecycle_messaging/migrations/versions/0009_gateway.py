"""the gateway: holdout assignments, the customer's zone on each message, when it came due and was held

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The customer's `timezone` trait as the transition carried it (NULL: the shop's zone); when the message
    # first came due to the gateway (set when queued, moved to the first hold); the opening the gateway last
    # held it until (quiet hours, caps); the service clock's instant of the send (what the caps count).
    op.add_column("messages", sa.Column("timezone", sa.Text))
    op.add_column("messages", sa.Column("due_at", sa.DateTime(timezone=True)))
    op.add_column("messages", sa.Column("held_until", sa.DateTime(timezone=True)))
    op.add_column("messages", sa.Column("sent_clock_at", sa.DateTime(timezone=True)))
    op.create_index("messages_sent_customer", "messages", ["customer_id", "sent_clock_at"],
                    postgresql_where=sa.text("status = 'sent'"))
    op.create_table(
        "holdout_assignments",
        sa.Column("campaign", sa.Text, nullable=False),
        sa.Column("person", sa.Text, nullable=False),
        sa.Column("group", sa.Text, nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "person", name="holdout_assignments_pkey"),
        sa.CheckConstraint("\"group\" IN ('holdout', 'treatment')", name="holdout_assignments_group"),
    )


def downgrade() -> None:
    op.drop_table("holdout_assignments")
    op.drop_index("messages_sent_customer", table_name="messages")
    for column in ("sent_clock_at", "held_until", "due_at", "timezone"):
        op.drop_column("messages", column)
