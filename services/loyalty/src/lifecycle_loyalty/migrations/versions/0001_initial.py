"""points ledger

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
    op.create_table('ledger_entries',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('cause_event_id', sa.Text(), nullable=False),
    sa.Column('order_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index('ledger_customer_seq', 'ledger_entries', ['customer_id', 'seq'], unique=False)
    op.create_index('ledger_order', 'ledger_entries', ['customer_id', 'order_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ledger_order', table_name='ledger_entries')
    op.drop_index('ledger_customer_seq', table_name='ledger_entries')
    op.drop_table('ledger_entries')
    drop_plumbing_tables()
