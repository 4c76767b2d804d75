"""Crypto-shredding and erasure (docs/erasure.md): `subject_keys`, one data key per customer id (found by the id's
keyed hash, never the id), which an erasure deletes; `erasures`, what ingest erased per erasure; and the plumbing
tables (inbox, outbox) its consumer of `customer.erasure_requested` uses, as every consuming service has them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from lifecycle_shared.migrations import create_plumbing_tables, drop_plumbing_tables, upgrade_plumbing_2
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables()
    upgrade_plumbing_2()
    op.create_table(
        "subject_keys",
        sa.Column("key_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("id_hash", sa.Text, nullable=False, unique=True),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "erasures",
        sa.Column("erasure_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("id_hashes", ARRAY(sa.Text), nullable=False),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_table("subject_keys")
    drop_plumbing_tables()
