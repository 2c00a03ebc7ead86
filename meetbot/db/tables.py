"""SQLAlchemy Core table definitions: the one description of the schema the migrations create."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _created() -> sa.Column[datetime]:
    return sa.Column("created_at", UTCDateTime(), nullable=False)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(200), nullable=False),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

auth_sessions = sa.Table(
    "auth_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    _created(),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("auth_sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("used_at", UTCDateTime(), nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(32), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

bots = sa.Table(
    "bots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("platform", sa.String(16), nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("deployment_error", sa.Text, nullable=True),
    sa.Column("recording", JSONType, nullable=True),
    sa.Column("last_heartbeat", UTCDateTime(), nullable=True),
    sa.Column("deploy_attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deploy_message_id", sa.String(64), nullable=True),
    sa.Column("deployed_at", UTCDateTime(), nullable=True),
    sa.Column("kill_requested_at", UTCDateTime(), nullable=True),
    sa.Column("joined_at", UTCDateTime(), nullable=True),
    sa.Column("left_at", UTCDateTime(), nullable=True),
    sa.Column("worker_id", sa.String(200), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

bot_events = sa.Table(
    "bot_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("data", JSONType, nullable=False),
    _created(),
)

bot_logs = sa.Table(
    "bot_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    _created(),
)

api_request_logs = sa.Table(
    "api_request_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("api_key_id", sa.Integer, sa.ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True, index=True),
    sa.Column("method", sa.String(10), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    _created(),
)

recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, unique=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("storage_key", sa.String(500), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("duration_seconds", sa.Float, nullable=False),
    sa.Column("streams", JSONType, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    _created(),
    sa.Column("expires_at", UTCDateTime(), nullable=True, index=True),
)

share_links = sa.Table(
    "share_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("token", sa.String(64), nullable=False, unique=True),
    _created(),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("view_count", sa.Integer, nullable=False, server_default="0"),
)


def _job_columns() -> list[sa.Column[object]]:
    """What every derived-data job row has: its state machine and bookkeeping."""
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("options", JSONType, nullable=False),
        sa.Column("result", JSONType, nullable=True),
        _created(),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    ]


transcripts = sa.Table(
    "transcripts",
    metadata,
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, unique=True),
    *_job_columns(),
)

summaries = sa.Table(
    "summaries",
    metadata,
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, unique=True),
    *_job_columns(),
)

transcript_chunks = sa.Table(
    "transcript_chunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("start_seconds", sa.Float, nullable=False),
    sa.Column("end_seconds", sa.Float, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("storage_key", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", JSONType, nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("bot_id", "idx", name="uq_transcript_chunks_bot_id_idx"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", JSONType, nullable=True),  # event types delivered; null: all of them
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("bot_id", sa.Integer, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=True, index=True),
    sa.Column("secret", sa.String(100), nullable=False),  # whsec_…: needed in clear to sign
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("failing_since", UTCDateTime(), nullable=True),  # first failed attempt since the last success
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
    sa.Column("disabled_event", JSONType, nullable=True),  # the webhook.disabled envelope, recorded here
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # (webhook_id, event_id) is unique: that index also serves a webhook's listing
    sa.Column("webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("event_id", sa.String(100), nullable=False),  # evt_…: the webhook-id header, the same on every attempt
    sa.Column("event_type", sa.String(40), nullable=False),
    sa.Column("payload", JSONType, nullable=False),  # the envelope
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=True),  # null: the retry schedule's; set by test and retry
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("locked_until", UTCDateTime(), nullable=True),  # a worker's claim and its lease
    sa.Column("lock_token", sa.String(64), nullable=True),
    _created(),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_id_event_id"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "delivery_id",
        sa.Integer,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("attempt", sa.Integer, nullable=False),
    _created(),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("response_excerpt", sa.Text, nullable=True),  # at most 1 KiB of the response body
    sa.Column("error", sa.Text, nullable=True),
)
