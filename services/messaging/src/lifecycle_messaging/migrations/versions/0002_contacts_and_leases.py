"""contacts, claims, messages.user_id, index of messages awaiting an address; inbox digest,
outbox dead letters

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from lifecycle_shared.migrations import downgrade_plumbing_2, upgrade_plumbing_2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_plumbing_2()
    op.create_table(
        "contacts",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("linked_ids", sa.ARRAY(sa.Text), server_default="{}", nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    )
    op.create_index("contacts_updated_at", "contacts", ["updated_at"])
    op.add_column("messages", sa.Column("user_id", sa.Text))
    op.create_table(
        "claims",
        sa.Column("anonymous_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, nullable=False),
    )
    op.create_index("messages_awaiting_linked_ids", "messages", ["linked_ids"], postgresql_using="gin",
                    postgresql_where="status = 'awaiting_contact'")


def downgrade() -> None:
    op.drop_index("messages_awaiting_linked_ids", table_name="messages")
    op.drop_table("claims")
    op.drop_column("messages", "user_id")
    op.drop_table("contacts")
    downgrade_plumbing_2()
