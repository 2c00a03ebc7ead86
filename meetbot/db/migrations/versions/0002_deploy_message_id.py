"""bots.deploy_message_id: the queued deploy message, so the reaper can tell waiting from lost

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch_op:
        batch_op.add_column(sa.Column("deploy_message_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bots") as batch_op:
        batch_op.drop_column("deploy_message_id")
