"""analytics: customer scores, RFM snapshots, CLV fits

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_scores",
        sa.Column("profile_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("segment", sa.Text(), nullable=False),
        sa.Column("total_clv", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("profile_id"),
    )
    op.create_index("customer_scores_segment", "customer_scores", ["segment", "profile_id"])
    op.create_index("customer_scores_total_clv", "customer_scores", ["total_clv"])
    op.create_table(
        "rfm_snapshots",
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sizes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("movement", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("scored_at"),
    )
    op.create_table(
        "clv_fits",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("calibration_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("clv_fits_queued", "clv_fits", ["created_at"], postgresql_where=sa.text("status = 'queued'"))
    # The funnel and the stage mix read the live history by time.
    op.create_index("transitions_live_time", "transitions", ["event_time"],
                    postgresql_where=sa.text("superseded_at IS NULL"))


def downgrade() -> None:
    op.drop_index("transitions_live_time", table_name="transitions")
    op.drop_table("clv_fits")
    op.drop_table("rfm_snapshots")
    op.drop_table("customer_scores")
