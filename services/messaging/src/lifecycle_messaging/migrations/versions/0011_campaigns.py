"""campaigns as data: campaigns and their versions, each message's campaign and version, delays, the profile
the latest transition told, the events that cancel waiting messages

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("origin IN ('shipped', 'api')", name="campaigns_origin"),
    )
    op.create_table(
        "campaign_versions",
        sa.Column("campaign_id", sa.Text, sa.ForeignKey("campaigns.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "last_events",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("event_type", sa.Text, primary_key=True),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )
    # A message's campaign: before campaigns were data, a campaign was its template (the default campaigns keep
    # those ids), so every message written before is its template's.
    op.add_column("messages", sa.Column("campaign", sa.Text))
    op.execute("UPDATE messages SET campaign = template")
    op.alter_column("messages", "campaign", nullable=False)
    for column in (sa.Column("campaign_version", sa.Integer), sa.Column("trigger", sa.Text),
                   sa.Column("not_before", sa.DateTime(timezone=True)),
                   sa.Column("allotted_at", sa.DateTime(timezone=True))):
        op.add_column("messages", column)
    op.drop_constraint("messages_idempotency", "messages", type_="unique")
    op.create_unique_constraint("messages_idempotency", "messages", ["customer_id", "campaign", "cause_event_id"])
    for column in (sa.Column("to_stage", sa.Text), sa.Column("traits", JSONB), sa.Column("orders", sa.Integer),
                   sa.Column("revenue", sa.Float)):
        op.add_column("latest_transitions", column)


def downgrade() -> None:
    for column in ("revenue", "orders", "traits", "to_stage"):
        op.drop_column("latest_transitions", column)
    # Two campaigns' messages about one cause that share a template cannot both stay under the old key.
    op.execute("DELETE FROM messages m USING messages o WHERE m.customer_id = o.customer_id "
               "AND m.template = o.template AND m.cause_event_id = o.cause_event_id AND m.seq > o.seq")
    op.drop_constraint("messages_idempotency", "messages", type_="unique")
    op.create_unique_constraint("messages_idempotency", "messages", ["customer_id", "template", "cause_event_id"])
    for column in ("allotted_at", "not_before", "trigger", "campaign_version", "campaign"):
        op.drop_column("messages", column)
    op.drop_table("last_events")
    op.drop_table("campaign_versions")
    op.drop_table("campaigns")
