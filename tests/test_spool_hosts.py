"""Spool folders carry their host: with a bot worker and a maintenance worker sharing one spool (the compose shape),
a live bot's folder is left alone, a dead host's bot is recovered, and an unrecoverable folder is moved aside once."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.db.tables import bot_events
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import make_settings
from tests.test_reaper import add_bot, bot_row
from workers.bots.desktop import spawn, terminate
from workers.bots.processes import BotTag, ProcRef
from workers.bots.recording import recover_spooled_recordings
from workers.context import WorkerContext
from workers.maintenance import reap_stale_bots


def worker(tmp_path: Path, db_url: str, host: str) -> WorkerContext:
    settings: Settings = make_settings(tmp_path, db_url, worker_host=host)  # one data dir: one shared spool
    return WorkerContext.create(settings, build_broker(settings))


@pytest.fixture
def bot_worker(tmp_path: Path, db_url: str) -> Iterator[WorkerContext]:
    ctx = worker(tmp_path, db_url, "bot-worker-1")
    yield ctx
    ctx.close()


@pytest.fixture
def maintenance(tmp_path: Path, db_url: str) -> Iterator[WorkerContext]:
    ctx = worker(tmp_path, db_url, "maintenance-1")
    yield ctx
    ctx.close()


def write_recording(folder: Path, seconds: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "recording.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=320x240:rate=15:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-shortest", "-movflags", "+frag_keyframe+empty_moov", str(out)],
        check=True,
    )  # fmt: skip
    (folder / "browser").mkdir(exist_ok=True)  # the browser profile lives next to it
    return out


def sub_codes(ctx: WorkerContext, bot_id: int) -> list[str]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(bot_events.c.data).where(bot_events.c.bot_id == bot_id)).scalars()
        return [data.get("sub_code") for data in rows if data]


def age(folder: Path, seconds: float) -> None:
    """Make a folder look untouched for `seconds` (its host stopped writing it that long ago)."""
    stamp = time.time() - seconds
    for path in [folder, *folder.iterdir()]:
        os.utime(path, (stamp, stamp))


def test_live_bot_of_another_host_is_untouched_and_a_dead_hosts_bot_is_recovered(
    bot_worker: WorkerContext, maintenance: WorkerContext
) -> None:
    now = now_utc()
    live_id = add_bot(bot_worker, "IN_CALL", worker_id="bot-worker-1:4242", last_heartbeat=now)
    live_folder = bot_worker.settings.spool_dir / str(live_id)
    live_file = write_recording(live_folder)
    assert live_folder.parent.name == "bot-worker-1" and maintenance.settings.spool_root == live_folder.parent.parent
    # The live bot's recorder, as the bot worker started it: tagged with its host and bot, its folder in its command.
    tag = BotTag("bot-worker-1", live_id, "4242-abc")
    recorder = spawn([sys.executable, "-c", "import time; time.sleep(60)", str(live_file)], env=tag.env(os.environ))
    recorder_ref = ProcRef.of(recorder.pid)

    long_ago = now - timedelta(minutes=10)
    dead_id = add_bot(bot_worker, "IN_CALL", worker_id="bot-worker-0:4242", last_heartbeat=long_ago)
    dead_folder = maintenance.settings.spool_root / "bot-worker-0" / str(dead_id)  # a host that is gone
    write_recording(dead_folder)
    age(dead_folder, 600)
    try:
        before = (live_file.stat().st_size, live_file.stat().st_mtime)
        for _ in range(2):  # the maintenance worker's passes
            reap_stale_bots(maintenance)

        assert recorder_ref is not None and recorder_ref.alive(), "the live bot's recorder was stopped"
        assert (live_file.stat().st_size, live_file.stat().st_mtime) == before and (live_folder / "browser").is_dir()
        live = bot_row(maintenance, live_id)
        assert live.status == "IN_CALL" and live.recording is None

        dead = bot_row(maintenance, dead_id)
        assert dead.status == "FATAL" and "worker_lost" in sub_codes(maintenance, dead_id)
        assert dead.recording["hasVideo"] and dead.recording["hasAudio"]
        assert maintenance.store.exists(dead.recording["key"]) and not dead_folder.exists()
    finally:
        terminate(recorder)


def test_another_hosts_folder_is_left_while_it_is_written_even_with_a_stale_heartbeat(
    bot_worker: WorkerContext, maintenance: WorkerContext
) -> None:
    """A bot whose heartbeat lapsed (its database was away) but whose host still writes its folder keeps it."""
    stale = now_utc() - timedelta(minutes=10)
    bot_id = add_bot(bot_worker, "IN_CALL", worker_id="bot-worker-1:4242", last_heartbeat=stale)
    folder = bot_worker.settings.spool_dir / str(bot_id)
    write_recording(folder)  # written just now
    assert recover_spooled_recordings(maintenance) == 0
    assert folder.is_dir() and bot_row(maintenance, bot_id).recording is None


def test_old_layout_folder_is_recovered_by_the_host_that_ran_it(
    bot_worker: WorkerContext, maintenance: WorkerContext
) -> None:
    bot_id = add_bot(bot_worker, "FATAL", worker_id="bot-worker-1:4242")
    folder = bot_worker.settings.spool_root / str(bot_id)  # spool/<bot id>, from before folders named a host
    write_recording(folder)
    assert recover_spooled_recordings(maintenance) == 0 and folder.is_dir()  # neither its host nor quiet yet
    assert recover_spooled_recordings(bot_worker) == 1
    assert bot_row(bot_worker, bot_id).recording["hasVideo"] and not folder.exists()


def test_an_unrecoverable_folder_is_moved_aside_once(
    bot_worker: WorkerContext, caplog: pytest.LogCaptureFixture
) -> None:
    spool = bot_worker.settings.spool_dir
    damaged_id = add_bot(bot_worker, "FATAL", worker_id="bot-worker-1:4242")
    (spool / str(damaged_id)).mkdir(parents=True)
    (spool / str(damaged_id) / "recording.mp4").write_bytes(b"not an mp4 at all" * 100)
    orphan_id = damaged_id + 1000  # its bot was deleted
    (spool / str(orphan_id) / "browser").mkdir(parents=True)
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert recover_spooled_recordings(bot_worker) == 0
    failed = spool / "failed"
    assert sorted(p.name for p in failed.iterdir()) == sorted([str(damaged_id), str(orphan_id)])
    assert (failed / str(damaged_id) / "recording.mp4").read_bytes().startswith(b"not an mp4")
    assert not (spool / str(damaged_id)).exists() and not (spool / str(orphan_id)).exists()
    tries = [r for r in caplog.records if r.getMessage() == "spooled recording could not be stored"]
    assert len(tries) == 1, "the damaged file was tried again on a later pass"
    assert bot_row(bot_worker, damaged_id).recording is None
