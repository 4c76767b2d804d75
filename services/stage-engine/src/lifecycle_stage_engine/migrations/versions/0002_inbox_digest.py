"""inbox digest

Revision ID: 0002
Revises: 0001
"""

from lifecycle_shared.migrations import add_inbox_digest, drop_inbox_digest

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_digest()


def downgrade() -> None:
    drop_inbox_digest()
