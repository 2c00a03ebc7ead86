"""The bot runner: one deploy message → claim, start the desktop, join, follow the call, leave, store the recording."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from selenium.common.exceptions import WebDriverException

from meetbot.db import now_utc
from meetbot.db.tables import bots
from meetbot.domain.auto_leave import LeaveDecision, LeaveRules, Observations, update_presence
from meetbot.domain.bots import opened_config
from meetbot.domain.meeting_urls import check_meeting_url
from meetbot.errors import BotError
from meetbot.metrics.worker import observe_join
from meetbot.schemas.bots import BotSettings
from meetbot.schemas.bots import BotStatus as S
from workers.bots.live_chunks import LiveChunker
from workers.bots.media import BotMedia
from workers.bots.platforms import adapter_for
from workers.bots.platforms.base import JoinCancelled, JoinRequest, PageState, Phase, PlatformAdapter
from workers.bots.recording import store_recording
from workers.bots.reporting import BotReporter, Heartbeat
from workers.context import WorkerContext
from workers.transcription import start_automatic_jobs

log = logging.getLogger("meetbot.bot")

# Page phases that end the bot, with the sub_code and whether it is an error (FATAL).
TERMINAL_PHASES: dict[Phase, tuple[str, bool]] = {
    Phase.ENDED: ("meeting_ended", False),
    Phase.REMOVED: ("removed_by_host", False),
    Phase.DENIED: ("join_denied", False),
    Phase.NOT_FOUND: ("meeting_not_found", True),
    Phase.SIGN_IN_REQUIRED: ("sign_in_required", True),
    Phase.BLOCKED: ("bot_detected", True),
}


@dataclass
class Outcome:
    sub_code: str
    description: str
    fatal: bool = False


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


class BotRunner:
    def __init__(self, ctx: WorkerContext, bot_id: int, attempt: int) -> None:
        self.ctx = ctx
        self.bot_id = bot_id
        self.attempt = attempt
        self.report = BotReporter(ctx.engine, bot_id)
        self.kill = ctx.kill_signals.watch(bot_id)
        self.phase = Phase.PREJOIN
        self.speaker: str | None = None
        self.chunker: LiveChunker | None = None  # transcription.auto: hands audio over while in call
        self.deployed_at: datetime | None = None

    # --- claim ------------------------------------------------------------------------------

    def claim(self) -> sa.Row | None:
        """DEPLOYING → JOINING_CALL for this message's attempt; None when another message owns the bot."""
        with self.ctx.engine.begin() as conn:
            row = conn.execute(sa.select(bots).where(bots.c.id == self.bot_id)).first()
            if row is None or row.status != S.DEPLOYING or row.deploy_attempt != self.attempt:
                return None
        moved = self.report.transition(
            S.JOINING_CALL,
            description=f"Picked up by worker {self.ctx.worker_id}",
            worker_id=self.ctx.worker_id,
            last_heartbeat=now_utc(),
        )
        if moved:
            self.deployed_at = row.deployed_at  # deploy → IN_CALL latency (meetbot/metrics/worker.py)
            self.ctx.slots_changed.set()  # the bots still waiting move up: their queue positions are re-announced
        return row if moved else None

    # --- main -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            row = self.claim()
            if row is None:
                log.info("deploy message ignored: bot not awaiting it", extra={"bot_id": self.bot_id})
                return
            self._run_claimed(row)
        finally:
            self.ctx.kill_signals.unwatch(self.bot_id)

    def _run_claimed(self, row: sa.Row) -> None:
        config = BotSettings.model_validate(opened_config(row.config, self.ctx.secret_keys))
        self.config = config
        self.user_id: int = row.user_id
        settings = self.ctx.settings
        heartbeat = Heartbeat(
            self.ctx.engine,
            self.bot_id,
            config.heartbeat_interval / 1000,
            settings.kill_check_interval_seconds,
            self.kill,
        )
        heartbeat.start()
        media: BotMedia | None = None
        outcome = Outcome("internal_error", "The bot stopped unexpectedly", fatal=True)
        try:
            bus, pulse = self.ctx.desktop()
            audio_only = config.recording_settings.audio_only
            media = BotMedia(self.bot_id, settings, bus, pulse, self.report.log, audio_only=audio_only)
            outcome = self._attend(config, media)
        except Exception as exc:
            # After a kill or shutdown, whatever failed next (a page load cut short, the driver of an aborted
            # browser) is the stop's doing: the stop is the outcome.
            outcome = self._stop_requested() or self._failure(exc)
        finally:
            try:
                self._finish(row, media, outcome)  # heartbeats go on while the recording is stored
            finally:
                heartbeat.stop()

    def _failure(self, exc: Exception) -> Outcome:
        """The outcome of a bot that stopped on `exc` without being asked to."""
        if isinstance(exc, JoinCancelled):
            return Outcome("killed", "Join cancelled")
        if isinstance(exc, BotError):
            return Outcome(exc.sub_code, str(exc.detail), fatal=True)
        if isinstance(exc, WebDriverException):
            return Outcome("internal_error", f"Browser failure: {exc.msg or type(exc).__name__}", fatal=True)
        log.error("bot runner failed", exc_info=exc, extra={"bot_id": self.bot_id})
        return Outcome("internal_error", f"{type(exc).__name__}: {exc}", fatal=True)

    def _attend(self, config: BotSettings, media: BotMedia) -> Outcome:
        settings = self.ctx.settings
        early = self._stop_requested()
        if early:
            return early
        info = config.meeting_info
        # Checked again where it is used: a URL stored before the check was tightened never reaches the browser.
        refused = check_meeting_url(info.platform, info.meeting_url, settings.allow_simulator)
        if refused:
            raise BotError(f"meeting URL refused: {refused}", sub_code="invalid_meeting_url")
        media.start(str(config.bot_image) if config.bot_image else None)
        assert media.browser is not None
        request = JoinRequest(info.meeting_url, config.bot_display_name, info.meeting_password)
        adapter: PlatformAdapter = adapter_for(info.platform)(
            media.browser.driver, request, self.report.log, should_stop=lambda: self._stop_requested() is not None
        )
        media.start_recorder()  # ffmpeg takes ~1 s to capture: start it while the page loads
        with self._unblocked_by_stop(media):
            adapter.join(settings.join_timeout_seconds)
        self.report.log("join requested")
        return self._follow(config, media, adapter)

    @contextmanager
    def _unblocked_by_stop(self, media: BotMedia, grace_s: float = 2.0) -> Iterator[None]:
        """The join loop sees a kill within a poll, unless the browser is stuck loading a page that never
        answers: then, `grace_s` after the kill, the browser is torn down so the kill still lands in time."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.25):
                if self._stop_requested() is not None:
                    if not done.wait(grace_s) and media.browser is not None:
                        self.report.log("the page did not let go after the stop request: closing the browser")
                        media.browser.abort()
                    return

        watcher = threading.Thread(target=watch, name=f"bot-{self.bot_id}-stop-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()
            watcher.join()

    def _stop_requested(self) -> Outcome | None:
        if self.kill.is_set():
            return Outcome("killed", "Kill requested")
        if self.ctx.shutdown.is_set():
            return Outcome("worker_shutdown", "The worker process is shutting down")
        return None

    def _follow(self, config: BotSettings, media: BotMedia, adapter: PlatformAdapter) -> Outcome:
        settings = self.ctx.settings
        rules = LeaveRules(config.automatic_leave, config.end_time, settings.max_in_call_minutes * 60)
        patterns = (
            config.automatic_leave.bot_detection.using_participant_names.name_patterns
            if config.automatic_leave.bot_detection and config.automatic_leave.bot_detection.using_participant_names
            else []
        )
        now = time.monotonic()
        obs = Observations(started_at=now)
        join_deadline = now + settings.join_timeout_seconds
        while True:
            stop = self._stop_requested()
            if stop:
                adapter.leave()
                return stop
            state = adapter.read_state()
            now = time.monotonic()
            outcome = self._on_phase(state, obs, now, media)
            if outcome:
                return outcome
            if self.phase == Phase.IN_CALL:
                if state.phase == Phase.IN_CALL:  # a read that missed the call's page says nothing of who left
                    self._on_people(state, obs, now, patterns)
                if self.chunker is not None:
                    self.chunker.poll(media.media_position())
                decision = rules.in_call(obs, now, now_utc(), media.seconds_since_sound())
            else:
                decision = rules.before_admission(obs, now)
                if decision is None and self.phase == Phase.PREJOIN and now > join_deadline:
                    raise BotError("The meeting page never admitted or queued the bot", sub_code="internal_error")
                if decision is None and config.end_time and now_utc() >= config.end_time:
                    decision = LeaveDecision("end_time_reached", "The bot's endTime was reached")
            if decision:
                adapter.leave()
                return Outcome(decision.sub_code, decision.description)
            self.kill.wait(settings.page_poll_interval_seconds)

    def _on_phase(self, state: PageState, obs: Observations, now: float, media: BotMedia) -> Outcome | None:
        phase = state.phase
        if phase in TERMINAL_PHASES:
            sub_code, fatal = TERMINAL_PHASES[phase]
            return Outcome(sub_code, state.detail or f"Meeting page shows {phase}", fatal=fatal)
        if phase == self.phase or phase in (Phase.UNKNOWN, Phase.PREJOIN):
            return None
        if phase == Phase.WAITING_ROOM and self.phase == Phase.PREJOIN:
            obs.waiting_since = now
            media.discard_recording()  # keep only the call itself; restarted on admission
            self.report.transition(S.IN_WAITING_ROOM, description=state.detail or "Waiting to be admitted")
        elif phase == Phase.IN_CALL:
            obs.in_call_since = now
            media.start_recorder()
            self.report.transition(S.IN_CALL, description=state.detail or "Admitted to the call", joined_at=now_utc())
            observe_join(self.deployed_at, self.config.start_time)
            transcription = self.config.transcription
            if transcription.auto:
                self.chunker = LiveChunker(
                    self.ctx, self.bot_id, self.user_id, media.recording_path, transcription.language
                )
        else:
            return None
        self.phase = phase
        return None

    def _on_people(self, state: PageState, obs: Observations, now: float, patterns: list[str]) -> None:
        before = set(obs.participants)
        update_presence(obs, state.participants, now, patterns)
        after = set(state.participants)
        for name in sorted(after - before):
            self.report.event("PARTICIPANT_JOIN", {"name": name})
        for name in sorted(before - after):
            self.report.event("PARTICIPANT_LEAVE", {"name": name})
        if state.active_speaker != self.speaker:
            self.speaker = state.active_speaker
            self.report.event("ACTIVE_SPEAKER", {"name": self.speaker})  # its createdAt is when

    # --- finish -----------------------------------------------------------------------------

    def _finish(self, row: sa.Row, media: BotMedia | None, outcome: Outcome) -> None:
        """Leave bookkeeping: CALL_ENDED at once, then the recording, then DONE (or FATAL)."""
        self.report.log(f"leaving: {outcome.sub_code}: {outcome.description}")
        if not outcome.fatal:
            self.report.transition(S.CALL_ENDED, outcome.sub_code, outcome.description, left_at=now_utc())
        else:
            self.report.update(left_at=now_utc(), deployment_error=outcome.description)
        if media is None:
            return self._end(outcome, keep_spool=False, media=None)
        try:
            path = media.stop_recorder()
        finally:
            media.stop()
        if path is not None and self.phase == Phase.IN_CALL:
            try:
                store_recording(
                    self.ctx,
                    row.user_id,
                    self.bot_id,
                    path,
                    self.report,
                    media.recording_started_at,
                    media.content_type,
                    automatic_jobs=self.chunker is None,
                )
            except Exception:
                log.exception("recording upload failed", extra={"bot_id": self.bot_id})
                self.report.log("recording could not be stored; it stays in the spool", "ERROR")
                return self._end(outcome, keep_spool=True, media=media)
            self._finish_live_transcript()
        self._end(outcome, keep_spool=False, media=media)

    def _finish_live_transcript(self) -> None:
        """The last chunk of a live transcript; if live chunks failed, the whole recording is transcribed."""
        if self.chunker is None:
            return
        try:
            self.chunker.finish()
        except Exception:
            log.exception("live transcript not finished", extra={"bot_id": self.bot_id})
            self.report.log("live transcription failed: the whole recording is transcribed instead", "WARNING")
            start_automatic_jobs(self.ctx, self.user_id, self.bot_id)

    def _end(self, outcome: Outcome, keep_spool: bool, media: BotMedia | None) -> None:
        if outcome.fatal:
            self.report.transition(S.FATAL, outcome.sub_code, outcome.description)
        else:
            self.report.transition(S.DONE, outcome.sub_code, "Bot finished")
        if media is not None and not keep_spool:
            media.remove_spool()


def run_bot(ctx: WorkerContext, bot_id: int, attempt: int) -> None:
    BotRunner(ctx, bot_id, attempt).run()
