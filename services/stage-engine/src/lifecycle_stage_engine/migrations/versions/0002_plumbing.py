"""inbox digest, outbox dead letters

Revision ID: 0002
Revises: 0001
"""

from lifecycle_shared.migrations import downgrade_plumbing_2, upgrade_plumbing_2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_plumbing_2()


def downgrade() -> None:
    downgrade_plumbing_2()
