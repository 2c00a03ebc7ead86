"""One bot's desktop: its X display (none for audio-only bots), audio sink, browser and recorder, started together
and always cleaned up."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from meetbot import outbound
from meetbot.errors import BotError
from meetbot.settings import Settings
from workers.bots.browser import BrowserSession, prepare_camera_file
from workers.bots.desktop import NullSink, PulseAudioServer, SessionBus, XvfbDisplay
from workers.bots.processes import BotTag
from workers.bots.recorder import MediaPosition, Recorder

log = logging.getLogger("meetbot.bot")
MAX_IMAGE_BYTES = 5 * 1024 * 1024
SPOOL_RECORDING = "recording.mp4"  # the file ffmpeg writes in a bot's spool folder (video bots)
SPOOL_AUDIO_RECORDING = "recording.m4a"  # the same for audio-only bots: AAC in fragmented MP4
VIDEO_CONTENT_TYPE = "video/mp4"
AUDIO_CONTENT_TYPE = "audio/mp4"
SPOOL_CONTENT_TYPES = {SPOOL_RECORDING: VIDEO_CONTENT_TYPE, SPOOL_AUDIO_RECORDING: AUDIO_CONTENT_TYPE}


def find_spooled_recording(folder: Path) -> tuple[Path, str] | None:
    """The non-empty recording a bot left in its spool folder and its content type, or None.

    A bot writes only one of the two names; should both be there, the one written last wins.
    """
    found: list[tuple[float, Path, str]] = []
    for name, content_type in SPOOL_CONTENT_TYPES.items():
        path = Path(folder) / name
        with contextlib.suppress(OSError):
            stat = path.stat()
            if path.is_file() and stat.st_size > 0:
                found.append((stat.st_mtime, path, content_type))
    if not found:
        return None
    _, path, content_type = max(found, key=lambda item: item[0])
    return path, content_type


class BotMedia:
    """Owns every process and file of one bot; stop() is safe at any point of start().

    An audio-only bot has no X display: its Chromium runs headless (audio still goes to its sink) and
    ffmpeg records the sink's monitor alone into recording.m4a.
    """

    def __init__(
        self,
        bot_id: int,
        settings: Settings,
        bus: SessionBus,
        pulse: PulseAudioServer,
        report: Callable[[str], None],
        *,
        audio_only: bool = False,
    ) -> None:
        self.bot_id = bot_id
        self.settings = settings
        self.bus = bus
        self.pulse = pulse
        self.report = report
        self.audio_only = audio_only
        self.spool = settings.spool_dir / str(bot_id)  # spool/<host>/<bot id>
        # Every process of this run (Xvfb, chromedriver, Chromium, ffmpeg) carries this tag in its environment.
        self.tag = BotTag(settings.effective_worker_host, bot_id, f"{os.getpid()}-{secrets.token_hex(3)}")
        self.display: XvfbDisplay | None = None
        self.sink: NullSink | None = None
        self.browser: BrowserSession | None = None
        self.recorder: Recorder | None = None
        self.recording_path = self.spool / (SPOOL_AUDIO_RECORDING if audio_only else SPOOL_RECORDING)
        self.recording_started_at: float | None = None  # epoch seconds of the recording's media time 0

    @property
    def content_type(self) -> str:
        return AUDIO_CONTENT_TYPE if self.audio_only else VIDEO_CONTENT_TYPE

    def start(self, bot_image: str | None) -> None:
        started = time.monotonic()
        self.spool.mkdir(parents=True, exist_ok=True)
        s = self.settings
        if not self.audio_only:
            self.display = XvfbDisplay(s.screen_width, s.screen_height, owner=str(self.spool), tag=self.tag).start()
        self.sink = self.pulse.create_sink(f"bot{self.bot_id}")
        camera = self._camera_file(bot_image) if bot_image else None  # the fake camera needs no display
        self.browser = BrowserSession(
            self.display.display if self.display else None,
            self.sink.name,
            self.tag.env(self.pulse.env),  # the sink's server, and the tag for chromedriver and Chromium
            dbus_address=self.bus.address,
            camera_file=camera,
            settings=s,
            temp_root=self.spool / "browser",
            log_path=self.spool / "chromium.log",
        ).start()
        where = f"on display {self.display.display}" if self.display else "headless (audio only, no display)"
        took = time.monotonic() - started
        self.report(f"browser started {where} in {took:.2f} s")  # also logged, with the bot's id

    def _camera_file(self, url: str) -> Path | None:
        """Fetch botImage and turn it into the fake camera's video; a bad image is logged, not fatal.

        The fetch goes through the one outbound guard (docs: README, MEETBOT_ALLOW_PRIVATE_URLS): loopback and
        private hosts only when allowed, link-local/metadata never, every redirect hop checked and pinned again.
        The bot's log says a generic reason; the URL itself (it may carry credentials or a signed query) is never
        logged.
        """
        s = self.settings
        target = self.spool / "bot-image"
        policy = outbound.PRIVATE_OK if s.allow_private_urls else outbound.PUBLIC
        try:
            outbound.download(
                url, policy, target, max_bytes=MAX_IMAGE_BYTES, timeout_seconds=s.bot_image_timeout_seconds
            )
        except outbound.DownloadFailed as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "-"
            log.info("botImage not used: %s (%s)", exc.detail, cause, extra={"bot_id": self.bot_id})
            self.report(f"botImage not used: {exc.detail}")
            return None
        try:
            camera = prepare_camera_file(target, self.spool, s.screen_width, s.screen_height)
        except BotError:
            log.info("botImage could not be converted", exc_info=True, extra={"bot_id": self.bot_id})
            self.report("botImage not used: it is not a picture that can be read")
            return None
        self.report("botImage set as the camera picture")
        return camera

    def start_recorder(self) -> None:
        if self.recorder is not None or self.sink is None or (self.display is None and not self.audio_only):
            return
        s = self.settings
        self.recording_path.unlink(missing_ok=True)
        self.recorder = Recorder(
            self.display.display if self.display else None,  # None: the sink's monitor alone
            self.sink.monitor,
            self.tag.env(self.pulse.env),  # the sink's server, and the tag for ffmpeg
            self.recording_path,
            s.screen_width,
            s.screen_height,
            s.video_framerate,
            preset=s.video_preset,
            ffmpeg=s.recorder_ffmpeg,
        )
        self.recorder.start()
        self.recording_started_at = self.recorder.started_at

    def discard_recording(self) -> None:
        """Drop what was recorded so far (e.g. the pre-join screen before a long waiting room)."""
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        self.recording_path.unlink(missing_ok=True)
        self.recording_started_at = None

    def media_position(self) -> MediaPosition | None:
        """Where the recorder is and the silences it heard lately; None when not recording."""
        return self.recorder.media_position() if self.recorder is not None else None

    def seconds_since_sound(self) -> float | None:
        return self.recorder.seconds_since_sound() if self.recorder is not None else None

    def stop_recorder(self) -> Path | None:
        """Finalize the recording; returns its path when there is one worth keeping."""
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        if self.recording_path.is_file() and self.recording_path.stat().st_size > 0:
            return self.recording_path
        return None

    def stop(self) -> None:
        """Tear everything down in reverse order; each step runs even if an earlier one fails."""
        steps: list[Callable[[], None]] = []
        if self.recorder is not None:
            steps.append(self.recorder.stop)
        if self.browser is not None:
            steps.append(self.browser.stop)
        if self.sink is not None:
            steps.append(self.sink.remove)
        if self.display is not None:
            steps.append(self.display.stop)
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("cleanup step failed", extra={"bot_id": self.bot_id})
        self.recorder = None
        self.browser = self.sink = self.display = None

    def remove_spool(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.spool)
