"""a message's parts as columns (html, locale, preheader, display name, unsubscribe link); consent per
address, channel and purpose, and every change to it (append-only)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATES = "('subscribed', 'unsubscribed', 'bounced', 'complained', 'blocked')"
SOURCES = "('link', 'api', 'touchpoint', 'provider')"
PURPOSES = "('marketing', 'transactional')"
# A body written between 0004 and 0005: the parts as a JSON document (format lifecycle.email/1).
_STORED = "body LIKE '{%' AND body IS JSON OBJECT AND (body::jsonb ->> 'format') = 'lifecycle.email/1'"


def upgrade() -> None:
    for name in ("html", "locale", "preheader", "from_name", "unsubscribe_url"):
        op.add_column("messages", sa.Column(name, sa.Text))
    op.execute("UPDATE messages SET html = NULLIF(body::jsonb ->> 'html', ''), locale = body::jsonb ->> 'locale', "
               "preheader = body::jsonb ->> 'preheader', from_name = body::jsonb ->> 'from_name', "
               f"body = COALESCE(body::jsonb ->> 'text', '') WHERE {_STORED}")
    op.create_table(
        "consents",
        sa.Column("address", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("purpose", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name="consents_state"),
        sa.CheckConstraint(f"purpose IN {PURPOSES}", name="consents_purpose"),
    )
    op.create_table(
        "consent_changes",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("previous_state", sa.Text),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("reference", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name="consent_changes_state"),
        sa.CheckConstraint(f"source IN {SOURCES}", name="consent_changes_source"),
    )
    op.create_index("consent_changes_address", "consent_changes", ["address", "seq"])


def downgrade() -> None:
    op.drop_index("consent_changes_address", table_name="consent_changes")
    op.drop_table("consent_changes")
    op.drop_table("consents")
    op.execute("UPDATE messages SET body = jsonb_build_object('format', 'lifecycle.email/1', 'template', template, "
               "'locale', locale, 'subject', subject, 'text', body, 'html', html, "
               "'preheader', COALESCE(preheader, ''), 'from_name', COALESCE(from_name, ''))::text "
               "WHERE html IS NOT NULL")
    for name in ("unsubscribe_url", "from_name", "preheader", "locale", "html"):
        op.drop_column("messages", name)
