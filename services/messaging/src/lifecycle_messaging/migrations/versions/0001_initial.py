"""message log

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from lifecycle_shared.migrations import create_plumbing_tables, drop_plumbing_tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables()  # inbox + outbox, shared by every consumer
    op.create_table('messages',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('linked_ids', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('template', sa.Text(), nullable=False),
    sa.Column('stage', sa.Text(), nullable=False),
    sa.Column('cause_event_id', sa.Text(), nullable=False),
    sa.Column('channel', sa.Text(), server_default='email', nullable=False),
    sa.Column('recipient', sa.Text(), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'template', 'cause_event_id', name='messages_idempotency'),
    sa.UniqueConstraint('seq')
    )
    op.create_index('messages_customer', 'messages', ['customer_id', 'seq'], unique=False)
    op.create_index('messages_queued', 'messages', ['seq'], unique=False, postgresql_where="status = 'queued'")


def downgrade() -> None:
    op.drop_index('messages_queued', table_name='messages', postgresql_where="status = 'queued'")
    op.drop_index('messages_customer', table_name='messages')
    op.drop_table('messages')
    drop_plumbing_tables()
