"""The reaper: lost workers end FATAL/worker_lost, lost deploys are re-sent or failed, spooled recordings kept."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.engine import get_engine
from meetbot.db.tables import bot_events, bots, users
from meetbot.queue import QUEUE_BOTS, build_broker, message_pending, run_bot_message
from meetbot.settings import Settings
from tests.conftest import REDIS_URL, make_settings
from workers.bots.runner import run_bot
from workers.context import WorkerContext
from workers.maintenance import reap_stale_bots


@pytest.fixture
def ctx(tmp_path: Path, db_url: str) -> WorkerContext:
    settings: Settings = make_settings(tmp_path, db_url, deploying_grace_seconds=60)
    return WorkerContext.create(settings, build_broker(settings))


def add_bot(ctx: WorkerContext, status: str, **values: object) -> int:
    now = now_utc()
    with ctx.engine.begin() as conn:
        user_id = conn.execute(sa.select(users.c.id)).scalar()
        if user_id is None:
            user_id = conn.execute(
                users.insert()
                .values(email="reaper@example.com", name="R", password_hash="x", created_at=now, updated_at=now)
                .returning(users.c.id)
            ).scalar_one()
        config = {
            "meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"},
            "heartbeatInterval": 5000,
        }
        return conn.execute(
            bots.insert()
            .values(
                user_id=user_id,
                status=status,
                platform="google",
                config=config,
                created_at=now,
                updated_at=now,
                **values,
            )
            .returning(bots.c.id)
        ).scalar_one()


def bot_row(ctx: WorkerContext, bot_id: int) -> sa.Row:
    with get_engine(ctx.settings.effective_database_url).connect() as conn:
        return conn.execute(sa.select(bots).where(bots.c.id == bot_id)).one()


def last_event(ctx: WorkerContext, bot_id: int) -> dict:
    with ctx.engine.connect() as conn:
        return conn.execute(
            sa.select(bot_events.c.data).where(bot_events.c.bot_id == bot_id).order_by(bot_events.c.id.desc())
        ).scalar()


def test_stale_heartbeat_ends_fatal_worker_lost(ctx: WorkerContext) -> None:
    stale = add_bot(ctx, "IN_CALL", last_heartbeat=now_utc() - timedelta(seconds=31))
    fresh = add_bot(ctx, "IN_CALL", last_heartbeat=now_utc() - timedelta(seconds=5))
    result = reap_stale_bots(ctx)
    assert result["ended"] == 1
    assert bot_row(ctx, stale).status == "FATAL" and last_event(ctx, stale)["sub_code"] == "worker_lost"
    assert bot_row(ctx, fresh).status == "IN_CALL"


def test_long_heartbeat_interval_gets_three_intervals(ctx: WorkerContext) -> None:
    bot_id = add_bot(ctx, "JOINING_CALL", last_heartbeat=now_utc() - timedelta(seconds=50))
    with ctx.engine.begin() as conn:
        conn.execute(
            bots.update()
            .where(bots.c.id == bot_id)
            .values(config={"meetingInfo": {"platform": "google"}, "heartbeatInterval": 20000})
        )
    reap_stale_bots(ctx)
    assert bot_row(ctx, bot_id).status == "JOINING_CALL"  # 50 s < 3 x 20 s


def test_lost_deploy_message_is_sent_again_then_fails(ctx: WorkerContext) -> None:
    old = now_utc() - timedelta(seconds=61)
    bot_id = add_bot(ctx, "DEPLOYING", deployed_at=old, deploy_attempt=1)
    waiting = add_bot(ctx, "DEPLOYING", deployed_at=now_utc(), deploy_attempt=1)
    assert reap_stale_bots(ctx)["requeued"] == 1
    assert bot_row(ctx, bot_id).deploy_attempt == 2 and bot_row(ctx, waiting).deploy_attempt == 1
    message = ctx.broker.queues[QUEUE_BOTS].get_nowait()
    assert b'"args":[%d,2]' % bot_id in message.replace(b" ", b"")

    # The original message shows up late: it no longer owns the bot and is dropped.
    run_bot(ctx, bot_id, 1)
    assert bot_row(ctx, bot_id).status == "DEPLOYING"

    with ctx.engine.begin() as conn:
        conn.execute(bots.update().where(bots.c.id == bot_id).values(deployed_at=old, deploy_attempt=3))
    assert reap_stale_bots(ctx)["failed"] == 1
    assert bot_row(ctx, bot_id).status == "FATAL"


@pytest.mark.parametrize("broker_kind", ["in-process", "redis"])
def test_a_deploy_waiting_for_a_free_slot_is_left_alone(tmp_path: Path, db_url: str, broker_kind: str) -> None:
    overrides = {"redis_url": REDIS_URL.rsplit("/", 1)[0] + "/12"} if broker_kind == "redis" else {}
    settings = make_settings(tmp_path, db_url, deploying_grace_seconds=60, **overrides)
    ctx = WorkerContext.create(settings, build_broker(settings))
    if broker_kind == "redis":
        ctx.broker.flush_all()
    old = now_utc() - timedelta(minutes=10)
    waiting = add_bot(ctx, "DEPLOYING", deployed_at=old, deploy_attempt=1)
    message = run_bot_message(waiting, 1)
    with ctx.engine.begin() as conn:
        conn.execute(bots.update().where(bots.c.id == waiting).values(deploy_message_id=message.message_id))
    ctx.broker.enqueue(message)
    lost = add_bot(ctx, "DEPLOYING", deployed_at=old, deploy_attempt=1, deploy_message_id="gone-message-id")
    try:
        result = reap_stale_bots(ctx)
        assert result["requeued"] == 1 and result["failed"] == 0
        assert bot_row(ctx, waiting).deploy_attempt == 1  # still queued behind busy workers: untouched
        resent = bot_row(ctx, lost)
        assert resent.deploy_attempt == 2 and resent.deploy_message_id != "gone-message-id"
        assert message_pending(ctx.broker, QUEUE_BOTS, resent.deploy_message_id)
    finally:
        if broker_kind == "redis":
            ctx.broker.flush_all()
        ctx.close()


def test_recording_left_in_the_spool_is_stored(ctx: WorkerContext) -> None:
    bot_id = add_bot(ctx, "FATAL")
    spool = ctx.settings.spool_dir / str(bot_id)
    spool.mkdir(parents=True)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15:duration=3",
         "-f", "lavfi", "-i", "sine=duration=3", "-c:v", "libx264", "-c:a", "aac", "-shortest",
         "-movflags", "+frag_keyframe+empty_moov", str(spool / "recording.mp4")],
        check=True,
    )  # fmt: skip
    assert reap_stale_bots(ctx)["recovered"] == 1
    recording = bot_row(ctx, bot_id).recording
    assert recording["hasAudio"] and recording["hasVideo"] and 2.5 <= recording["durationSeconds"] <= 3.5
    assert ctx.store.exists(recording["key"]) and not (spool / "recording.mp4").exists()
    assert reap_stale_bots(ctx)["recovered"] == 0


def test_leftovers_of_a_crashed_worker_are_cleaned(tmp_path: Path) -> None:
    """A dead worker's daemons end and its folder goes; a live worker whose pid starts with the dead one's digits
    (run/worker-12 against run/worker-123) keeps its PulseAudio, whether found by path or by worker tag."""
    import os
    import sys

    from workers.bots.processes import WORKER_TAG_ENV
    from workers.context import clean_dead_workers

    def daemon(config: Path, worker_id: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, WORKER_TAG_ENV: worker_id}  # what PulseAudio/D-Bus carry, their config in their command
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(config)], env=env)

    live_worker = subprocess.Popen(["sleep", "60"])
    dead_pid = next(  # a dead pid whose digits begin the live worker's pid
        int(str(live_worker.pid)[:n]) for n in range(len(str(live_worker.pid)) - 1, 0, -1)
        if not Path(f"/proc/{str(live_worker.pid)[:n]}").exists()
    )  # fmt: skip
    dead, live = tmp_path / f"worker-{dead_pid}", tmp_path / f"worker-{live_worker.pid}"
    for folder in (dead, live):
        (folder / "pulse").mkdir(parents=True)
    orphan = daemon(dead / "pulse" / "meetbot.pa", f"host-a:{dead_pid}")
    tagged_orphan = daemon(tmp_path / "elsewhere.pa", f"host-a:{dead_pid}")  # no path to go by: the tag alone
    kept = [daemon(live / "pulse" / "meetbot.pa", f"host-a:{live_worker.pid}")]
    kept.append(daemon(tmp_path / "other-host.pa", f"host-b:{dead_pid}"))  # the same pid on another host
    try:
        clean_dead_workers(tmp_path, "host-a")
        assert orphan.wait(timeout=5) != 0 and tagged_orphan.wait(timeout=5) != 0
        assert all(proc.poll() is None for proc in kept), "a live worker's daemon was killed"
        assert not dead.exists() and live.exists()
    finally:
        for proc in (orphan, tagged_orphan, *kept, live_worker):
            proc.kill()
            proc.wait()
