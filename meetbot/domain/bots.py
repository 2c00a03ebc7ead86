"""Bot resource operations shared by the API and the CLI: create, read, update, delete, deploy, kill."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import dramatiq
import sqlalchemy as sa
from pydantic import ValidationError

from meetbot import queue
from meetbot.db import now_utc
from meetbot.db.pages import fetch_page, fetch_page_where_equal
from meetbot.db.tables import bot_events, bot_logs, bots, recordings
from meetbot.domain.bot_states import ACTIVE, FINISHED, transition
from meetbot.errors import Conflict, NotFound, ValidationFailed
from meetbot.schemas.bots import (
    Bot,
    BotCreate,
    BotEventQuery,
    BotListQuery,
    BotLogQuery,
    BotUpdate,
)
from meetbot.schemas.bots import BotStatus as S
from meetbot.schemas.common import resource_json, seed_validation_errors
from meetbot.secrets_at_rest import seal, unseal

SECRET_MASK = "********"

# What a PATCH may still change once a bot is deployed: nothing about the meeting or the bot.
MUTABLE_AFTER_DEPLOY = frozenset({"meeting_title"})


def bot_json(row: sa.Row | CreatedBot) -> bytes:
    """The bot resource of row as JSON: what every route that answers with one bot sends."""
    return resource_json(Bot, bot_fields(row))


@dataclass(frozen=True, slots=True)
class CreatedBot:
    """A bot just inserted, as bot_fields reads a row: the columns RETURNING gave, and the settings written. Its
    fields are the columns bot_fields reads."""

    id: int
    config: dict[str, Any]
    status: str
    deployment_error: str | None
    recording: dict[str, Any] | None
    last_heartbeat: datetime | None
    created_at: datetime
    updated_at: datetime


# The columns bot_fields reads: a listing selects only these.
RESOURCE_COLUMNS = tuple(column.name for column in fields(CreatedBot))


def bot_fields(row: sa.Row | CreatedBot) -> dict[str, Any]:
    """The bot resource's fields from its row: the stored settings plus its state columns.

    The meeting password is a secret: it is never returned, only shown as set.
    """
    data: dict[str, Any] = dict(row.config)
    info = data.get("meetingInfo") or {}
    if info.get("meetingPassword"):
        data["meetingInfo"] = {**info, "meetingPassword": SECRET_MASK}
    data.update(
        id=row.id,
        status=row.status,
        deploymentError=row.deployment_error,
        recording=row.recording,
        lastHeartbeat=row.last_heartbeat,
        createdAt=row.created_at,
        updatedAt=row.updated_at,
    )
    return data


def _with_meeting_password(config: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """config with its meeting password (if any) passed through change: sealing or unsealing it."""
    info = config.get("meetingInfo") or {}
    password = info.get("meetingPassword")
    if not isinstance(password, str) or not password:
        return config
    return {**config, "meetingInfo": {**info, "meetingPassword": change(password)}}


def sealed_config(config: dict[str, Any], secret_key: str) -> dict[str, Any]:
    """The settings as stored: the meeting password sealed with the secret key (docs: secrets_at_rest)."""
    return _with_meeting_password(config, lambda password: seal(password, secret_key))


def opened_config(config: dict[str, Any], secret_keys: tuple[str, ...]) -> dict[str, Any]:
    """The stored settings with the meeting password in clear, for the bot that types it."""
    return _with_meeting_password(config, lambda password: unseal(password, secret_keys))


# Several users' new bots in one statement; RETURNING gives their state columns in parameter order. The settings
# are not read back: decoding them cost more than the rest of the row, and they are the values just written.
_INSERT_BOTS = (
    bots.insert()
    .returning(*(bots.c[name] for name in RESOURCE_COLUMNS if name != "config"), sort_by_parameter_order=True)
    .execution_options(insertmanyvalues_page_size=7)
)


def create_bots(conn: sa.Connection, new: Sequence[tuple[int, BotCreate]], secret_key: str) -> list[CreatedBot]:
    """Each (user id, settings) as a bot ready to deploy, in one INSERT; the rows in the order given."""
    now = now_utc()
    values = [
        {
            "user_id": user_id,
            "status": S.READY_TO_DEPLOY,
            "platform": body.meeting_info.platform,
            "config": sealed_config(body.model_dump(mode="json", by_alias=True), secret_key),
            "created_at": now,
            "updated_at": now,
        }
        for user_id, body in new
    ]
    rows = conn.execute(_INSERT_BOTS, values).all()
    return [CreatedBot(config=value["config"], **row._mapping) for value, row in zip(values, rows, strict=True)]


def create_bot(conn: sa.Connection, user_id: int, body: BotCreate, secret_key: str) -> CreatedBot:
    """One bot ready to deploy; its row."""
    return create_bots(conn, [(user_id, body)], secret_key)[0]


def create_bots_committed(
    engine: sa.Engine, new: Sequence[tuple[int, BotCreate]], secret_key: str
) -> list[CreatedBot | Exception]:
    """create_bots in one transaction; when the database refuses one row (its user was deleted meanwhile), each bot
    in a transaction of its own, so the others are still made. One row or exception per item, in order."""
    try:
        with engine.begin() as conn:
            return list(create_bots(conn, new, secret_key))  # a list of rows or exceptions, as typed
    except sa.exc.IntegrityError:
        if len(new) == 1:
            raise
    results: list[CreatedBot | Exception] = []
    for item in new:
        try:
            with engine.begin() as conn:
                results.extend(create_bots(conn, [item], secret_key))
        except sa.exc.IntegrityError as exc:
            results.append(exc)
    return results


def get_bot(conn: sa.Connection, user_id: int, bot_id: int, lock: bool = False) -> sa.Row:
    """The user's bot; lock: hold its row until the transaction ends (PostgreSQL; SQLite writers take turns anyway,
    and every change below is also conditional on what was read)."""
    select = sa.select(bots).where(bots.c.id == bot_id, bots.c.user_id == user_id)
    row = conn.execute(select.with_for_update() if lock else select).first()
    if row is None:
        raise NotFound("Bot not found")
    return row


def list_bots(conn: sa.Connection, user_id: int, query: BotListQuery) -> tuple[list[sa.Row], int]:
    equal: dict[str, object] = {"user_id": user_id}
    if query.status:
        equal["status"] = query.status
    if query.platform:
        equal["platform"] = query.platform
    return fetch_page_where_equal(conn, bots, equal, "id", True, query, RESOURCE_COLUMNS)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null removes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def update_bot(
    conn: sa.Connection,
    user_id: int,
    bot_id: int,
    patch: BotUpdate,
    allow_simulator: bool,
    secret_keys: tuple[str, ...],
) -> sa.Row:
    """Apply a merge patch to the bot's settings; the merged settings are validated as on create.

    The row is locked while the patch merges, so concurrent patches each see the other's fields; the write is
    conditional on the status and version read, so a deploy that slipped in between makes it a 409, not a change
    to a deploying bot.
    """
    row = get_bot(conn, user_id, bot_id, lock=True)
    changes = patch.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if row.status != S.READY_TO_DEPLOY and set(patch.model_fields_set) - MUTABLE_AFTER_DEPLOY:
        raise Conflict("Bot already deployed: only meetingTitle can change now")
    stored = opened_config(row.config, secret_keys)  # validated in clear (a sealed password is longer)
    merged = merge_patch(stored, changes)
    new_info = merged.get("meetingInfo") or {}
    if new_info.get("meetingPassword") == SECRET_MASK:  # a client sent back what GET showed: keep the secret
        new_info["meetingPassword"] = (stored.get("meetingInfo") or {}).get("meetingPassword")
    try:
        settings = BotCreate.model_validate(merged, context={"allow_simulator": allow_simulator})
    except ValidationError as exc:
        raise ValidationFailed(seed_validation_errors(exc.errors(include_url=False), "body")) from exc
    updated = conn.execute(
        bots.update()
        .where(bots.c.id == bot_id, bots.c.status == row.status, bots.c.updated_at == row.updated_at)
        .values(
            config=sealed_config(settings.model_dump(mode="json", by_alias=True), secret_keys[0]),
            platform=settings.meeting_info.platform,
            updated_at=now_utc(),
        )
        .returning(*bots.c)
    ).first()
    if updated is None:
        current_status = conn.execute(sa.select(bots.c.status).where(bots.c.id == bot_id)).scalar()
        if current_status is None:
            raise NotFound("Bot not found")
        if current_status != S.READY_TO_DEPLOY and set(patch.model_fields_set) - MUTABLE_AFTER_DEPLOY:
            raise Conflict("Bot already deployed: only meetingTitle can change now")
        raise Conflict("Bot changed while this change was applied; read it again and retry")
    return updated


def deletable_bot_recording(conn: sa.Connection, user_id: int, bot_id: int) -> str | None:
    """The storage key of the recording of a bot that may be deleted (404/409 for one that may not)."""
    row = get_bot(conn, user_id, bot_id)
    if S(row.status) in ACTIVE:
        raise Conflict("Bot is active: kill it before deleting it")
    return conn.execute(sa.select(recordings.c.storage_key).where(recordings.c.bot_id == bot_id)).scalar()


def delete_bot(conn: sa.Connection, user_id: int, bot_id: int) -> sa.Row:
    """Delete a bot that is not active, with its events, logs, recording row and share links (cascade).

    Conditional on the status read: a bot deployed meanwhile is a 409, never deleted while it starts.
    """
    row = get_bot(conn, user_id, bot_id, lock=True)
    if S(row.status) in ACTIVE:
        raise Conflict("Bot is active: kill it before deleting it")
    deleted = conn.execute(bots.delete().where(bots.c.id == bot_id, bots.c.status == row.status)).rowcount
    if deleted != 1:
        raise Conflict("Bot is active: kill it before deleting it")
    return row


@dataclass(frozen=True)
class Deployment:
    bot_id: int
    attempt: int
    delay_ms: int
    message: dramatiq.Message


def scheduled_start(config: dict[str, Any]) -> datetime | None:
    start = config.get("startTime")
    return datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC) if start else None


def scheduled_delay_ms(config: dict[str, Any]) -> int:
    start = scheduled_start(config)
    return max(0, int((start - now_utc()).total_seconds() * 1000)) if start else 0


def deploy_bot(conn: sa.Connection, user_id: int, bot_id: int) -> Deployment:
    """READY_TO_DEPLOY → DEPLOYING; the caller enqueues the returned deployment after commit."""
    row = get_bot(conn, user_id, bot_id, lock=True)  # waits for a PATCH in flight: the deploy takes its settings
    end = row.config.get("endTime")
    if end and datetime.fromisoformat(end.replace("Z", "+00:00")) <= now_utc():
        raise Conflict("Bot's endTime has passed")
    attempt = row.deploy_attempt + 1
    message = queue.run_bot_message(bot_id, attempt)
    moved = transition(
        conn,
        bot_id,
        S.DEPLOYING,
        description="Deploy requested",
        deploy_attempt=attempt,
        deploy_message_id=message.message_id,
        deployed_at=now_utc(),
    )
    if not moved:
        raise Conflict(f"Bot already deployed (status {row.status})")
    return Deployment(bot_id, attempt, scheduled_delay_ms(row.config), message)


def undo_deploy(conn: sa.Connection, bot_id: int, reason: str) -> None:
    """Back to READY_TO_DEPLOY when the deploy message could not be queued."""
    conn.execute(
        bots.update()
        .where(bots.c.id == bot_id, bots.c.status == S.DEPLOYING)
        .values(status=S.READY_TO_DEPLOY, deployment_error=reason, updated_at=now_utc())
    )


def kill_bot(conn: sa.Connection, user_id: int, bot_id: int) -> bool:
    """End a bot. Returns True when a running bot must be told (its runner leaves the call).

    A bot that has not started (READY_TO_DEPLOY, or DEPLOYING with its message still queued)
    ends here without a browser; its queued message, if any, is then ignored by the runner.
    """
    row = get_bot(conn, user_id, bot_id, lock=True)
    status = S(row.status)
    if status in FINISHED:
        raise Conflict(f"Bot already finished (status {status})")
    if status in (S.READY_TO_DEPLOY, S.DEPLOYING):
        if transition(conn, bot_id, S.CALL_ENDED, "killed", "Killed before it started", left_at=now_utc()):
            transition(conn, bot_id, S.DONE, "killed", "Bot finished")
            return False
        row = get_bot(conn, user_id, bot_id)  # the runner claimed it meanwhile
        if S(row.status) in FINISHED:
            raise Conflict(f"Bot already finished (status {row.status})")
    finished = [str(state) for state in FINISHED]
    flagged = conn.execute(
        bots.update().where(bots.c.id == bot_id, bots.c.status.not_in(finished)).values(kill_requested_at=now_utc())
    ).rowcount
    if flagged != 1:  # it ended by itself meanwhile
        raise Conflict("Bot already finished")
    return True


def list_events(conn: sa.Connection, user_id: int, bot_id: int, query: BotEventQuery) -> tuple[list[sa.Row], int]:
    get_bot(conn, user_id, bot_id)
    where = [bot_events.c.bot_id == bot_id]
    if query.type:
        where.append(bot_events.c.type == query.type)
    return fetch_page(conn, bot_events, where, bot_events.c.id, query)


def list_logs(conn: sa.Connection, user_id: int, bot_id: int, query: BotLogQuery) -> tuple[list[sa.Row], int]:
    get_bot(conn, user_id, bot_id)
    where = [bot_logs.c.bot_id == bot_id]
    if query.since:
        where.append(bot_logs.c.created_at >= query.since)
    return fetch_page(conn, bot_logs, where, bot_logs.c.id, query)
