"""erasures: one row per erasure loyalty applied (docs/erasure.md) - the erasure id, the keyed hashes it was
given and what was erased or re-keyed, per table. No personal data.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0011"
down_revision = "0010"
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
    op.create_index("erasures_id_hashes", "erasures", ["id_hashes"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("erasures")
