"""profiles, identities, event log, transitions

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from lifecycle_shared.migrations import create_plumbing_tables, drop_plumbing_tables
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables()  # inbox + outbox, shared by every consumer
    op.create_table('identities',
    sa.Column('id_type', sa.Text(), nullable=False),
    sa.Column('id_value', sa.Text(), nullable=False),
    sa.Column('profile_id', sa.UUID(as_uuid=False), nullable=False),
    sa.PrimaryKeyConstraint('id_type', 'id_value')
    )
    op.create_index(op.f('ix_identities_profile_id'), 'identities', ['profile_id'], unique=False)
    op.create_table('profiles',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Text(), nullable=True),
    sa.Column('stage', sa.Text(), nullable=True),
    sa.Column('stage_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('facts', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('traits', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('merged_into', sa.UUID(as_uuid=False), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id'),
    sa.UniqueConstraint('user_id')
    )
    op.create_table('touchpoints',
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('profile_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index('touchpoints_profile_time', 'touchpoints', ['profile_id', 'event_time'], unique=False)
    op.create_table('transitions',
    sa.Column('id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('profile_id', sa.UUID(as_uuid=False), nullable=False),
    sa.Column('customer_id', sa.Text(), nullable=False),
    sa.Column('from_stage', sa.Text(), nullable=True),
    sa.Column('to_stage', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('rule_version', sa.Text(), nullable=False),
    sa.Column('cause_event_ids', sa.ARRAY(sa.Text()), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index('transitions_profile_seq', 'transitions', ['profile_id', 'seq'], unique=False)


def downgrade() -> None:
    op.drop_index('transitions_profile_seq', table_name='transitions')
    op.drop_table('transitions')
    op.drop_index('touchpoints_profile_time', table_name='touchpoints')
    op.drop_table('touchpoints')
    op.drop_table('profiles')
    op.drop_index(op.f('ix_identities_profile_id'), table_name='identities')
    op.drop_table('identities')
    drop_plumbing_tables()
