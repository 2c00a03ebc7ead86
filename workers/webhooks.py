"""Webhook delivery as workers run it: claim, signed POST, ledger, retries with backoff, the sweep, auto-disable.

A delivery is claimed with a conditional UPDATE that sets a lease (locked_until) and a token, so two workers
never send one attempt; a worker that dies while holding a claim leaves a lease that runs out, and the sweep
sends the delivery again: at least once, always with the same webhook-id. A webhook whose attempts have all
failed for webhook_disable_after_hours is disabled; its webhook.disabled event is delivered nowhere (the
receiver is the thing that is failing) but recorded on the webhook (disabledEvent) and logged.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from meetbot import outbound
from meetbot.db import now_utc
from meetbot.db.tables import webhook_attempts, webhook_deliveries, webhooks
from meetbot.settings import Settings
from meetbot.webhooks import envelope, outbox, signing
from workers.context import WorkerContext
from workers.webhook_post import Outcome, post

log = logging.getLogger("meetbot.webhooks")
D = webhook_deliveries
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    webhook_id: int
    user_id: int
    token: str
    attempt: int  # the number of the attempt about to be made
    max_attempts: int
    event_id: str
    payload: dict[str, object]
    url: str
    secret: str


def max_attempts(settings: Settings, row: sa.Row) -> int:
    return row.max_attempts or len(settings.webhook_retry_delays) + 1


def retry_delay(settings: Settings, attempt: int) -> float:
    """Seconds before the attempt after `attempt` (1-based): the schedule's, ± jitter."""
    delays = settings.webhook_retry_delays
    base = delays[min(attempt, len(delays)) - 1]
    jitter = settings.webhook_retry_jitter
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def claim(ctx: WorkerContext, delivery_id: int) -> Claim | None:
    """Take a due, unclaimed pending delivery for one attempt; None when another worker has it or it is not due.

    Automatic deliveries of a webhook that was deactivated meanwhile end as failed without an attempt; a ping
    or a retry asked for by its owner (max_attempts set) is still sent.
    """
    now = now_utc()
    token = secrets.token_hex(16)
    lease = timedelta(seconds=ctx.settings.webhook_claim_lease_seconds)
    with ctx.engine.begin() as conn:
        taken = conn.execute(
            D.update()
            .where(
                D.c.id == delivery_id,
                D.c.status == outbox.PENDING,
                D.c.next_attempt_at <= now,
                sa.or_(D.c.locked_until.is_(None), D.c.locked_until < now),
            )
            .values(locked_until=now + lease, lock_token=token, updated_at=now)
        ).rowcount
        if not taken:
            return None
        row = conn.execute(
            sa.select(D, webhooks.c.url, webhooks.c.secret, webhooks.c.active)
            .join(webhooks, webhooks.c.id == D.c.webhook_id)
            .where(D.c.id == delivery_id)
        ).one()
        if not row.active and row.max_attempts is None:
            conn.execute(
                D.update()
                .where(D.c.id == delivery_id)
                .values(status=outbox.FAILED, locked_until=None, lock_token=None, updated_at=now)
            )
            return None
    return Claim(
        delivery_id=row.id,
        webhook_id=row.webhook_id,
        user_id=row.user_id,
        token=token,
        attempt=row.attempts + 1,
        max_attempts=max_attempts(ctx.settings, row),
        event_id=row.event_id,
        payload=row.payload,
        url=row.url,
        secret=row.secret,
    )


def send(settings: Settings, claim_: Claim) -> Outcome:
    body = envelope.body(dict(claim_.payload))
    headers = signing.sign_headers(claim_.secret, claim_.event_id, body)
    policy = outbound.PRIVATE_OK if settings.webhook_allow_private else outbound.PUBLIC
    return post(
        claim_.url,
        body,
        headers,
        policy=policy,
        timeout=settings.webhook_timeout_seconds,
        excerpt_bytes=settings.webhook_response_excerpt_bytes,
    )


def record(ctx: WorkerContext, claim_: Claim, outcome: Outcome, started: datetime) -> tuple[str, float | None]:
    """Write the attempt and the delivery's new state; (status, seconds until the next attempt or None)."""
    now = now_utc()
    delay: float | None = None
    values: dict[str, object] = {
        "attempts": claim_.attempt,
        "last_status_code": outcome.status_code,
        "locked_until": None,
        "lock_token": None,
        "updated_at": now,
    }
    if outcome.ok:
        status = outbox.DELIVERED
        values["delivered_at"] = now
    elif claim_.attempt >= claim_.max_attempts:
        status = outbox.FAILED
    else:
        status = outbox.PENDING
        delay = retry_delay(ctx.settings, claim_.attempt)
        values["next_attempt_at"] = now + timedelta(seconds=delay)
    try:
        kept = _write(ctx, claim_, outcome, started, now, status, values)
    except sa.exc.IntegrityError:  # the webhook (and so the delivery) was deleted while it was being sent
        log.info("delivery deleted while it was sent", extra={"delivery_id": claim_.delivery_id})
        return status, None
    return status, delay if kept else None


def _write(
    ctx: WorkerContext,
    claim_: Claim,
    outcome: Outcome,
    started: datetime,
    now: datetime,
    status: str,
    values: dict[str, object],
) -> bool:
    """The attempt and the delivery's state in one transaction; False when the claim was lost meanwhile."""
    with ctx.engine.begin() as conn:
        conn.execute(
            webhook_attempts.insert().values(
                delivery_id=claim_.delivery_id,
                attempt=claim_.attempt,
                created_at=started,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                response_excerpt=outcome.excerpt,
                error=outcome.error,
            )
        )
        kept = conn.execute(
            D.update()
            .where(D.c.id == claim_.delivery_id, D.c.lock_token == claim_.token)
            .values(status=status, **values)
        ).rowcount
        if not kept:  # the lease ran out and another worker took the delivery: its outcome decides
            log.warning("delivery claim expired while sending", extra={"delivery_id": claim_.delivery_id})
            return False
        _track_health(ctx, conn, claim_, outcome, now)
    return True


def _track_health(ctx: WorkerContext, conn: sa.Connection, claim_: Claim, outcome: Outcome, now: datetime) -> None:
    """A success clears the webhook's failing_since; failing for too long disables it."""
    if outcome.ok:
        conn.execute(
            webhooks.update()
            .where(webhooks.c.id == claim_.webhook_id, webhooks.c.failing_since.is_not(None))
            .values(failing_since=None)
        )
        return
    hook = conn.execute(
        sa.select(webhooks.c.active, webhooks.c.failing_since).where(webhooks.c.id == claim_.webhook_id)
    ).first()
    if hook is None or not hook.active:
        return
    if hook.failing_since is None:
        conn.execute(webhooks.update().where(webhooks.c.id == claim_.webhook_id).values(failing_since=now))
        return
    hours = ctx.settings.webhook_disable_after_hours
    if now - hook.failing_since >= timedelta(hours=hours):
        disable(conn, claim_.webhook_id, hook.failing_since, now, hours, outcome.error or f"HTTP {outcome.status_code}")


def disable(
    conn: sa.Connection, webhook_id: int, failing_since: datetime, now: datetime, hours: float, last_error: str
) -> bool:
    """Turn the webhook off, record its webhook.disabled event on it, and end its pending automatic deliveries."""
    event = envelope.webhook_disabled(webhook_id, failing_since, now, hours, last_error)
    moved = conn.execute(
        webhooks.update()
        .where(webhooks.c.id == webhook_id, webhooks.c.active.is_(True))
        .values(active=False, disabled_at=now, disabled_event=event, updated_at=now)
    ).rowcount
    if not moved:
        return False
    conn.execute(
        D.update()
        .where(
            D.c.webhook_id == webhook_id,
            D.c.status == outbox.PENDING,
            D.c.max_attempts.is_(None),
            sa.or_(D.c.locked_until.is_(None), D.c.locked_until < now),
        )
        .values(status=outbox.FAILED, updated_at=now)
    )
    log.warning(
        "webhook disabled",
        extra={"webhook_id": webhook_id, "event_id": event["id"], "failing_since": failing_since.isoformat()},
    )
    return True


def deliver(ctx: WorkerContext, delivery_id: int) -> str | None:
    """One attempt of the delivery, if it is due and free; its resulting status (None: nothing was done)."""
    taken = claim(ctx, delivery_id)
    if taken is None:
        return None
    started = now_utc()
    outcome = send(ctx.settings, taken)
    status, delay = record(ctx, taken, outcome, started)
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": delivery_id,
            "webhook_id": taken.webhook_id,
            "attempt": taken.attempt,
            "status": status,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
            "error": outcome.error,
        },
    )
    if delay is not None:  # the broker holds the retry until it is due; the sweep is the fallback
        try:
            outbox.enqueue(ctx.broker, [delivery_id], delay_ms=max(1, int(delay * 1000)))
        except Exception:
            log.warning("retry not enqueued; the sweep sends it", extra={"delivery_id": delivery_id})
    return status


def send_due(ctx: WorkerContext, now: datetime | None = None, batch: int = SWEEP_BATCH) -> int:
    """Enqueue pending deliveries due for a sweep interval or more and not held by a live claim.

    They are those whose message was lost (an enqueue after commit that failed, a broker that lost its
    delayed messages) and those whose worker died holding the claim. A message still waiting in the broker
    may be doubled by this: the claim makes the second one a no-op.
    """
    now = now or now_utc()
    grace = timedelta(seconds=ctx.settings.webhook_sweep_interval_seconds)
    with ctx.engine.connect() as conn:
        due = conn.execute(
            sa.select(D.c.id)
            .where(
                D.c.status == outbox.PENDING,
                D.c.next_attempt_at <= now - grace,
                sa.or_(D.c.locked_until.is_(None), D.c.locked_until < now),
            )
            .order_by(D.c.next_attempt_at)
            .limit(batch)
        ).scalars()
        ids = list(due)
    if ids:
        outbox.enqueue(ctx.broker, ids)
        log.info("due webhook deliveries enqueued", extra={"count": len(ids)})
    return len(ids)
