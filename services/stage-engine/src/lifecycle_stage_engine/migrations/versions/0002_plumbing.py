"""inbox digest, outbox dead letters

Revision ID: 0002
Revises: 0001
"""

from lifecycle_shared.migrations import (
    add_inbox_digest,
    add_outbox_dead_letters,
    drop_inbox_digest,
    drop_outbox_dead_letters,
)

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_digest()
    add_outbox_dead_letters()


def downgrade() -> None:
    drop_outbox_dead_letters()
    drop_inbox_digest()
