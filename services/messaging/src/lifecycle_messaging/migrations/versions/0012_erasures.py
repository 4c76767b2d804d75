"""erasures: one row per erasure messaging applied (docs/erasure.md) - the erasure id, the keyed hashes it was given,
what was erased or anonymised per table; erased_addresses: the suppression marker of each erased address (its
keyed hash), checked before every send. No personal data.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("erasure_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("id_hashes", ARRAY(sa.Text), nullable=False),
        sa.Column("counts", JSONB, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "erased_addresses",
        sa.Column("address_hash", sa.Text, primary_key=True),
        sa.Column("erasure_id", UUID(as_uuid=False), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erased_addresses")
    op.drop_table("erasures")
