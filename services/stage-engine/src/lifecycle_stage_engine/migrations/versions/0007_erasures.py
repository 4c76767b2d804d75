"""erasures: one row per erased customer (docs/erasure.md) - the erasure id, the keyed hashes of the ids it erased
(so a repeat by any of them finds it) and what was erased, per table. No personal data.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0007"
down_revision = "0006"
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
