"""recordings and share_links: recordings become a resource of their own, with share links and retention

Revision ID: 0003
Revises: 0002
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=500), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("streams", JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_recordings_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_recordings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("bot_id", name=op.f("uq_recordings_bot_id")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("view_count", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], name=op.f("fk_share_links_bot_id_bots"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_share_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_share_links")),
        sa.UniqueConstraint("token", name=op.f("uq_share_links_token")),
    )
    with op.batch_alter_table("share_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_share_links_bot_id"), ["bot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_share_links_user_id"), ["user_id"], unique=False)

    _copy_existing_recordings()


def _copy_existing_recordings() -> None:
    """Recordings stored before this revision lived only in bots.recording: give each its row."""
    bind = op.get_bind()
    bots = sa.table("bots", sa.column("id"), sa.column("user_id"), sa.column("recording", JSON))
    recordings = sa.table(
        "recordings",
        *(sa.column(name) for name in ("bot_id", "user_id", "storage_key", "content_type", "size_bytes")),
        *(sa.column(name) for name in ("duration_seconds", "started_at", "created_at")),
        sa.column("streams", JSON),
    )
    for bot_id, user_id, recording in bind.execute(sa.select(bots.c.id, bots.c.user_id, bots.c.recording)):
        if not recording:
            continue
        created = recording.get("createdAt")
        started = recording.get("startedAt")
        bind.execute(
            recordings.insert().values(
                bot_id=bot_id,
                user_id=user_id,
                storage_key=recording["key"],
                content_type=recording.get("contentType", "video/mp4"),
                size_bytes=recording.get("sizeBytes", 0),
                duration_seconds=recording.get("durationSeconds", 0),
                streams=[],
                started_at=_parse(started) if started else None,
                created_at=_parse(created) if created else datetime.now(UTC),
            )
        )


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def downgrade() -> None:
    op.drop_table("share_links")
    op.drop_table("recordings")
