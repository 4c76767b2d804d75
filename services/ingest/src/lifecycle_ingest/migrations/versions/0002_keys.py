"""API keys of two kinds with expiry, sources' allowed origins, the key generation counter

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

RENAMED_CONSTRAINTS = (("write_keys_pkey", "api_keys_pkey"), ("write_keys_key_hash_key", "api_keys_key_hash_key"),
                       ("write_keys_source_id_fkey", "api_keys_source_id_fkey"))


def upgrade() -> None:
    op.rename_table("write_keys", "api_keys")
    for old, new in RENAMED_CONSTRAINTS:
        op.execute(f"ALTER TABLE api_keys RENAME CONSTRAINT {old} TO {new}")
    # Existing keys are write keys; a server key that went down and up again is one again.
    op.add_column("api_keys", sa.Column("kind", sa.Text, nullable=False, server_default="write"))
    op.execute(r"UPDATE api_keys SET kind = 'server' WHERE key_prefix LIKE 'lc\_sk\_%'")
    op.create_check_constraint("api_keys_kind_check", "api_keys", "kind IN ('write', 'server')")
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True)))
    op.add_column("sources", sa.Column("allowed_origins", ARRAY(sa.Text), nullable=False,
                                       server_default=sa.text("'{}'")))
    op.create_table(
        "key_generation",
        sa.Column("id", sa.SmallInteger, primary_key=True, server_default="1"),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.CheckConstraint("id = 1", name="key_generation_one_row"),
    )
    op.execute("INSERT INTO key_generation (id, generation) VALUES (1, 1)")


def downgrade() -> None:
    op.drop_table("key_generation")
    op.drop_column("sources", "allowed_origins")
    # The old schema has no expiry: a key being rotated out stops now rather than never.
    op.execute("UPDATE api_keys SET revoked_at = least(expires_at, now()) "
               "WHERE expires_at IS NOT NULL AND revoked_at IS NULL")
    op.drop_column("api_keys", "expires_at")
    op.drop_constraint("api_keys_kind_check", "api_keys", type_="check")
    op.drop_column("api_keys", "kind")
    for old, new in RENAMED_CONSTRAINTS:
        op.execute(f"ALTER TABLE api_keys RENAME CONSTRAINT {new} TO {old}")
    op.rename_table("api_keys", "write_keys")
