"""touchpoints.verified and transitions.verified: whether the cause's identity was established

Revision ID: 0006
Revises: 0005

Rows stored before: judged by the event id's form, as consumers judge records without the field
(`lifecycle_shared.events.sent_with_server_key`): `source/messageId` is a server key's, `source+write/...` a
write key's. A transition is verified when each of its causes is.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SERVER_KEY_ID = "(strpos({id}, '/') > 0 AND strpos(split_part({id}, '/', 1), '+') = 0)"


def upgrade() -> None:
    op.add_column("touchpoints", sa.Column("verified", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("transitions", sa.Column("verified", sa.Boolean(), server_default="false", nullable=False))
    op.execute(f"UPDATE touchpoints SET verified = true WHERE {SERVER_KEY_ID.format(id='event_id')}")
    op.execute("UPDATE transitions SET verified = true WHERE cardinality(cause_event_ids) > 0 AND NOT EXISTS "
               f"(SELECT 1 FROM unnest(cause_event_ids) AS c WHERE NOT {SERVER_KEY_ID.format(id='c')})")


def downgrade() -> None:
    op.drop_column("transitions", "verified")
    op.drop_column("touchpoints", "verified")
