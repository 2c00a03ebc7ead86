"""Bots 12 and 123 side by side: ending 12's leftovers never touches 123's processes, which keep recording."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from meetbot.db import now_utc
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.conftest import make_settings
from tests.support import wait_for
from tests.test_reaper import add_bot, bot_row
from workers.bots.desktop import XvfbDisplay, spawn, terminate
from workers.bots.processes import BOT_TAG_ENV, BotTag, ProcRef, descendants, kill_all, processes_of_bot
from workers.bots.recording import recover_spooled_recordings
from workers.context import WorkerContext


@dataclass
class BotProcesses:
    """What the runner starts for one bot, minus the browser: its tagged Xvfb, an ffmpeg recording that display
    into the bot's spool folder, and a helper that forked a child (a stray found by its tag alone)."""

    folder: Path
    display: XvfbDisplay
    recorder: subprocess.Popen[bytes]
    helper: subprocess.Popen[bytes]

    @property
    def recording(self) -> Path:
        return self.folder / "recording.mp4"

    def refs(self) -> list[ProcRef]:
        roots = [self.display.proc, self.recorder, self.helper]
        found = [ref for proc in roots if proc and (ref := ProcRef.of(proc.pid))]
        return found + [ref for proc in roots if proc for ref in descendants(proc.pid)]

    def stop(self) -> None:
        kill_all(self.refs())  # the helper's child too
        terminate(self.recorder)
        terminate(self.helper)
        self.display.stop()


def start_bot_processes(settings: Settings, bot_id: int) -> BotProcesses:
    tag = BotTag(settings.effective_worker_host, bot_id, f"{os.getpid()}-test")
    folder = settings.spool_dir / str(bot_id)
    folder.mkdir(parents=True)
    display = XvfbDisplay(320, 240, owner=str(folder), tag=tag).start()
    assert display.display is not None
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "x11grab", "-framerate", "5", "-video_size", "320x240"]
    cmd += ["-i", display.display, "-c:v", "libx264", "-preset", "ultrafast", "-g", "5"]
    cmd += ["-movflags", "+frag_keyframe+empty_moov", "-flush_packets", "1", "-f", "mp4", str(folder / "recording.mp4")]
    recorder = spawn(cmd, env=tag.env(os.environ))
    helper = spawn(["sh", "-c", "sleep 300 & wait"], env=tag.env(os.environ))
    return BotProcesses(folder, display, recorder, helper)


def recording_size(bot: BotProcesses) -> int:
    return bot.recording.stat().st_size if bot.recording.exists() else 0


@pytest.fixture
def pg_ctx(tmp_path: Path, pg_url: str) -> Iterator[WorkerContext]:
    settings = make_settings(tmp_path, pg_url)
    ctx = WorkerContext.create(settings, build_broker(settings))
    yield ctx
    ctx.close()


def reserve_bot_ids(ctx: WorkerContext) -> tuple[int, int]:
    """Two free bot ids where one's folder name is a prefix of the other's (12 and 123)."""
    with ctx.engine.begin() as conn:
        base = int(conn.execute(sa.text("SELECT nextval(pg_get_serial_sequence('bots', 'id'))")).scalar_one())
        longer = int(f"{base}3")
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('bots', 'id'), :last)"), {"last": longer})
    return base, longer


def test_ending_bot_12s_leftovers_leaves_bot_123_recording(pg_ctx: WorkerContext) -> None:
    ctx = pg_ctx
    host = ctx.settings.effective_worker_host
    gone = subprocess.Popen(["true"])
    gone.wait()  # bot 12's worker process: dead
    short_id, long_id = reserve_bot_ids(ctx)
    now = now_utc()
    add_bot(ctx, "IN_CALL", id=short_id, worker_id=f"{host}:{gone.pid}", last_heartbeat=now)
    add_bot(ctx, "IN_CALL", id=long_id, worker_id=ctx.worker_id, last_heartbeat=now)  # runs in this process
    short = start_bot_processes(ctx.settings, short_id)
    long = start_bot_processes(ctx.settings, long_id)
    try:
        for bot in (short, long):
            wait_for(lambda bot=bot: recording_size(bot) > 0, 20, "both bots recording")  # type: ignore[misc]
        short_refs, long_refs = short.refs(), long.refs()
        assert len(short_refs) >= 4 and len(long_refs) >= 4, "Xvfb, ffmpeg, the helper and its child each"
        assert str(short.folder) in str(long.folder), "the folder names are meant to share a prefix"

        assert recover_spooled_recordings(ctx) == 1  # bot 12's runner is gone: its leftovers end, its file is kept

        wait_for(lambda: not any(ref.alive() for ref in short_refs), 10, "bot 12's processes to end")
        assert not processes_of_bot(host, short_id)
        assert all(ref.alive() for ref in long_refs), "bot 123's processes were hit"
        size = recording_size(long)
        wait_for(lambda: recording_size(long) > size, 10, "bot 123's recording to keep growing")
        assert long.folder.is_dir() and bot_row(ctx, long_id).status == "IN_CALL"
        ended = bot_row(ctx, short_id)
        assert ended.status == "FATAL" and ended.recording["hasVideo"] and not short.folder.exists()
        tags = {psutil.Process(ref.pid).environ().get(BOT_TAG_ENV) for ref in long_refs}
        assert tags == {f"{host}/{long_id}/{os.getpid()}-test"}  # every process of 123, strays too, carries its tag
    finally:
        short.stop()
        long.stop()
