"""lots (pending, available, expiring points), accounts (row lock, debt), entries' rule version, debt, lot

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger_entries", sa.Column("rule_version", sa.Text, nullable=False, server_default=""))
    op.add_column("ledger_entries", sa.Column("debt", sa.BigInteger, nullable=False, server_default=sa.text("0")))
    op.add_column("ledger_entries", sa.Column("lot_id", sa.UUID(as_uuid=False)))
    op.add_column("ledger_entries", sa.Column("effective_at", sa.DateTime(timezone=True)))
    # Entries so far named their version after the rule's slash (`points_per_currency_unit/default-v1`).
    op.execute("UPDATE ledger_entries SET rule_version = split_part(rule, '/', 2) WHERE rule LIKE '%/%'")
    op.create_table(
        "lots",
        sa.Column("id", sa.UUID(as_uuid=False), primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), nullable=False, unique=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("remaining", sa.BigInteger, nullable=False),
        sa.Column("earned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="lots_remaining_within_points"),
    )
    op.create_index("lots_customer", "lots", ["customer_id", "earned_at"])
    op.create_index("lots_expiring", "lots", ["expires_at"], postgresql_where=sa.text("remaining > 0"))
    op.create_table(
        "accounts",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("debt", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint("debt >= 0", name="accounts_debt_not_negative"),
    )
    # What each account holds so far, per order (and tied to no order): one lot each, available, never
    # expiring (no policy was in force when it was earned).
    op.execute(
        "INSERT INTO lots (id, customer_id, order_id, points, remaining, earned_at, available_at) "
        "SELECT gen_random_uuid(), customer_id, order_id, sum(points), sum(points), min(created_at), min(created_at) "
        "FROM ledger_entries GROUP BY customer_id, order_id HAVING sum(points) > 0"
    )


def downgrade() -> None:
    op.drop_table("accounts")
    op.drop_index("lots_expiring", table_name="lots")
    op.drop_index("lots_customer", table_name="lots")
    op.drop_table("lots")
    for column in ("effective_at", "lot_id", "debt", "rule_version"):
        op.drop_column("ledger_entries", column)
