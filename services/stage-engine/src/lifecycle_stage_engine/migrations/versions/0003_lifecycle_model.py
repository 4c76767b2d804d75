"""time-based stages, stored history corrections, rule sets, replays

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("profiles", sa.Column("previous_stage", sa.Text(), nullable=True))
    op.add_column("profiles", sa.Column("acquisition", postgresql.JSONB(astext_type=sa.Text()),
                                        server_default="{}", nullable=False))
    op.add_column("profiles", sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("profiles", sa.Column("merges", sa.Integer(), server_default="0", nullable=False))
    op.add_column("profiles", sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
    # Profiles stored by the previous version are rebuilt from their history by the sweeper, once.
    op.execute("UPDATE profiles SET due_at = now() WHERE merged_into IS NULL")
    op.create_index("profiles_due", "profiles", ["due_at"],
                    postgresql_where=sa.text("due_at IS NOT NULL AND merged_into IS NULL"))
    op.create_index("profiles_stage_id", "profiles", ["stage", "id"], postgresql_where=sa.text("merged_into IS NULL"))
    op.add_column("touchpoints", sa.Column("historical", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("transitions", sa.Column("historical", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("transitions", sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "replay_jobs",
        sa.Column("id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("scope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("replay_jobs")
    op.drop_table("rule_sets")
    op.drop_column("transitions", "superseded_at")
    op.drop_column("transitions", "historical")
    op.drop_column("touchpoints", "historical")
    op.drop_index("profiles_stage_id", table_name="profiles")
    op.drop_index("profiles_due", table_name="profiles")
    for column in ("due_at", "merges", "acquired_at", "acquisition", "previous_stage"):
        op.drop_column("profiles", column)
