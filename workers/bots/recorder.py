"""ffmpeg screen + sink-monitor (or sink-monitor only) recording into crash-safe fragmented MP4, its silence
tracking, and ffprobe."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Self

from meetbot.errors import BotError
from workers.bots.desktop import Lifecycle, spawn, terminate

_SILENCE_START = re.compile(r"silence_start:\s*(-?[\d.]+)")
_SILENCE_END = re.compile(r"silence_end:\s*(-?[\d.]+)")
_STATS_TIME = re.compile(r"time=\s*(-?)(\d+):(\d+):([\d.]+)")


@dataclass(frozen=True)
class MediaPosition:
    """How far the recording is, the silence going on (if any) and the last silences that ended (oldest first)."""

    media_time: float
    silent_since: float | None
    pauses: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    has_audio: bool
    has_video: bool
    size_bytes: int


def probe_media(path: Path, timeout: float = 30.0) -> MediaInfo:
    """Duration, streams and size of a media file, read with ffprobe (a fragmented MP4 is fine)."""
    path = Path(path)
    if not path.is_file():
        raise BotError(f"no media file at {path}", sub_code="internal_error")
    cmd = ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type,duration"]
    cmd += ["-of", "json", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        data = json.loads(done.stdout or "{}")
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        raise BotError(f"ffprobe failed on {path}: {exc}", sub_code="internal_error") from exc
    if done.returncode != 0:
        raise BotError(f"ffprobe failed on {path}: {done.stderr[-500:]}", sub_code="internal_error")
    streams = data.get("streams", [])
    durations = [_float(data.get("format", {}).get("duration"))]
    durations += [_float(stream.get("duration")) for stream in streams]
    return MediaInfo(
        duration_s=max(durations),
        has_audio=any(stream.get("codec_type") == "audio" for stream in streams),
        has_video=any(stream.get("codec_type") == "video" for stream in streams),
        size_bytes=path.stat().st_size,
    )


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


class SoundTracker:
    """Turns ffmpeg silencedetect and progress lines into "when was sound last heard".

    Media time 0 is `zero_mono` (monotonic). silencedetect only speaks after `min_silence` seconds of
    silence (silence_start, giving the media time the silence began) and when sound resumes
    (silence_end), so sound is known with that resolution: outside a reported silence, once sound was
    heard, seconds_since_sound() is 0.
    """

    # The audio starts at media time 0 (padded with silence); a first silence_start later than this
    # means there was sound before it.
    START_EPSILON = 0.05
    # Progress `time=` may run a little ahead of the audio filter; only past min_silence + this much
    # media time without any silence_start do we conclude there was sound from the start.
    LAG_MARGIN = 1.0

    def __init__(self, min_silence: float, zero_mono: float) -> None:
        self.min_silence = min_silence
        self.zero_mono = zero_mono
        self.heard = False
        self.silent_since: float | None = None  # media time the current reported silence began
        self.media_time = 0.0  # latest progress time ffmpeg reported
        self.pauses: deque[tuple[float, float]] = deque(maxlen=32)  # (start, end) of silences that ended
        self._reported_silence = False
        self._frozen = False
        self._lock = threading.Lock()

    def freeze(self) -> None:
        """Ignore what follows: on shutdown silencedetect closes an open silence with a silence_end."""
        with self._lock:
            self._frozen = True

    def feed(self, line: str) -> None:
        if self._frozen:
            return
        if match := _SILENCE_START.search(line):
            start = float(match.group(1))
            with self._lock:
                if start > self.START_EPSILON:
                    self.heard = True
                self.silent_since = start
                self._reported_silence = True
        elif match := _SILENCE_END.search(line):
            with self._lock:
                self.heard = True
                if self.silent_since is not None:
                    self.pauses.append((self.silent_since, float(match.group(1))))
                self.silent_since = None
        elif match := _STATS_TIME.search(line):
            sign, hours, minutes, seconds = match.groups()
            media_time = -1.0 if sign else int(hours) * 3600 + int(minutes) * 60 + float(seconds)
            with self._lock:
                self.media_time = max(self.media_time, media_time)
                if not self._reported_silence and media_time > self.min_silence + self.LAG_MARGIN:
                    self.heard = True  # that long without a silence_start: there was sound from the start

    def position(self) -> MediaPosition:
        """Media seconds ffmpeg has processed, the media second the current silence began, the recent pauses."""
        with self._lock:
            return MediaPosition(self.media_time, self.silent_since, tuple(self.pauses))

    def seconds_since_sound(self, now: float) -> float:
        """`now` is time.monotonic()."""
        with self._lock:
            if not self.heard:
                return max(0.0, now - self.zero_mono)
            if self.silent_since is None:
                return 0.0
            return max(0.0, now - (self.zero_mono + self.silent_since))


LEAN_FFMPEG = "meetbot-ffmpeg"


def recorder_ffmpeg_binary(configured: str | None) -> str:
    """The ffmpeg bots record with: the configured one, else meetbot-ffmpeg where it is installed, else ffmpeg.

    meetbot-ffmpeg (scripts/build-recorder-ffmpeg.sh) is FFmpeg built with only the recorder's parts: Debian's
    ffmpeg links ~215 shared libraries whose pages cost each recorder ~40 MB more PSS (docs/density.md). It is
    looked for beside the Python interpreter (the virtual environment's bin folder, where the install puts it)
    and then on PATH.
    """
    if configured:
        return configured
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(LEAN_FFMPEG, path=search) or "ffmpeg"


class Recorder(Lifecycle):
    """ffmpeg recording one bot's X display and its sink's monitor into a fragmented MP4.

    With `display=None` it records the sink's monitor alone (AAC, no video input or encoder at all): the
    audio-only mode. Fragments are cut at every video keyframe (two seconds), or every second when there is
    no video, so a killed ffmpeg still leaves a playable file. stop() sends SIGINT to ffmpeg itself, waits,
    then SIGKILLs.
    """

    # Audio-only fragments: +frag_keyframe only cuts at *video* keyframes, so without video it would write
    # nothing playable until ffmpeg exits cleanly; cut by duration instead (microseconds).
    AUDIO_FRAGMENT_US = 1_000_000
    # Raw frames the screen input may queue ahead of the encoder: one second at 15 fps (was 1024, i.e. unbounded).
    VIDEO_QUEUE_FRAMES = 16

    def __init__(
        self,
        display: str | None,
        monitor_source: str,
        pulse_env: Mapping[str, str],
        out_path: Path,
        width: int,
        height: int,
        framerate: int,
        *,
        silence_threshold_db: float = -50.0,
        silence_min_seconds: float = 0.6,  # a pause between sentences: live transcript chunks are cut in these
        log_path: Path | None = None,
        preset: str = "ultrafast",  # x264's speed/size trade-off (settings.video_preset)
        ffmpeg: str | None = None,  # settings.recorder_ffmpeg (None: recorder_ffmpeg_binary's choice)
    ) -> None:
        self.display = display
        self.ffmpeg = recorder_ffmpeg_binary(ffmpeg)
        self.preset = preset
        self.monitor_source = monitor_source
        self.pulse_env = dict(pulse_env)
        self.out_path = Path(out_path)
        self.width = width
        self.height = height
        self.framerate = framerate
        self.silence_threshold_db = silence_threshold_db
        self.silence_min_seconds = silence_min_seconds
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        # Epoch seconds of media time 0 (when ffmpeg was spawned): both streams are re-based on it.
        self.started_at: float | None = None
        self.capturing_after: float | None = None  # seconds from spawn until audio flowed
        self.returncode: int | None = None
        self._started_mono = 0.0
        self._tracker = SoundTracker(silence_min_seconds, 0.0)
        self._capturing = threading.Event()
        self._reader: threading.Thread | None = None
        self._tail: deque[str] = deque(maxlen=60)
        self._log: IO[bytes] | None = None

    @property
    def audio_only(self) -> bool:
        return self.display is None

    def command(self, zero: float) -> list[str]:
        """The ffmpeg command line; `zero` (epoch seconds) becomes media time 0 of both streams.

        Both live inputs stamp packets with the wall clock. Without -copyts ffmpeg re-bases each input
        to its own first packet, and PulseAudio's first packet comes 0.1-2 s after the first frame (a
        null sink idles in 2 s blocks), which skewed audio against video by up to half a second in
        tests; re-basing both on one wall-clock instant keeps them within a frame. aresample pads the
        audio with silence from 0 to its first sample and fills any later gap, so it stays in sync (and, audio
        only, media time 0 is still `zero`, so the speaker timeline lines up the same way).
        -tune zerolatency: with x264's ~1 s lookahead ffmpeg reads the audio input ~1 s behind and
        drops that backlog on SIGINT (the recording lost its last second of audio); zerolatency also
        used less CPU, for ~25 % larger files. Keyframes every 2 s cut the fragments.
        Density (bench/bot_runtime.py, docs/density.md): x264 `ultrafast` with one thread costs ~15 % less CPU and
        ~6-10 MB less memory than `veryfast` for ~20 % larger files (a setting: MEETBOT_VIDEO_PRESET); the screen
        input's queue holds at most VIDEO_QUEUE_FRAMES raw frames (3.7 MB each at 720p, MIT-SHM segments that
        Xvfb maps too), so an encoder that falls behind under load costs dropped frames, not ever more memory.
        The audio input is opened first: opening PulseAudio takes up to 1.6 s, and a screen input opened before it
        starts its frame clock at once, then captures the missed frames back to back to catch up; that burst filled
        the queue, and x11grab's pool of shared-memory frames never shrinks (18 segments, 66 MB PSS per bot between
        ffmpeg and Xvfb, against 2 segments in this order).
        """
        cmd = [self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "info", "-stats", "-stats_period", "0.5"]
        cmd += ["-copyts"]
        cmd += ["-thread_queue_size", "1024", "-f", "pulse", "-sample_rate", "48000", "-channels", "2"]
        cmd += ["-i", self.monitor_source]
        if self.display is not None:
            size = f"{self.width}x{self.height}"
            cmd += ["-thread_queue_size", str(self.VIDEO_QUEUE_FRAMES), "-f", "x11grab", "-draw_mouse", "0"]
            cmd += ["-video_size", size, "-framerate", str(self.framerate), "-i", self.display]
            cmd += ["-map", "1:v", "-map", "0:a"]
            cmd += ["-vf", f"setpts=PTS-{zero:.6f}/TB", "-c:v", "libx264", "-preset", self.preset, "-crf", "28"]
            cmd += ["-tune", "zerolatency", "-threads", "1", "-pix_fmt", "yuv420p", "-g", str(self.framerate * 2)]
            fragments = ["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]
        else:
            cmd += ["-map", "0:a", "-vn"]
            fragments = ["-movflags", "+empty_moov+default_base_moof", "-frag_duration", str(self.AUDIO_FRAGMENT_US)]
        silence = f"silencedetect=noise={self.silence_threshold_db}dB:d={self.silence_min_seconds}"
        audio_filter = f"asetpts=PTS-{zero:.6f}/TB,aresample=async=1:first_pts=0,{silence}"
        cmd += ["-af", audio_filter, "-c:a", "aac", "-b:a", "128k"]
        cmd += [*fragments, "-flush_packets", "1", "-f", "mp4", str(self.out_path)]
        return cmd

    def start(self) -> Self:
        if self.proc is not None:
            return self
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
        env.update(self.pulse_env)
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._capturing = threading.Event()
        self._tail.clear()
        self.returncode = self.capturing_after = None
        self._started_mono = time.monotonic()
        self.started_at = time.time()
        self._tracker = SoundTracker(self.silence_min_seconds, self._started_mono)
        try:
            self.proc = spawn(self.command(self.started_at), env=env, stderr=subprocess.PIPE)
        except BotError:
            self.stop()
            raise
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        self._reader = threading.Thread(target=self._read_stderr, args=(fd,), name="ffmpeg-stderr", daemon=True)
        self._reader.start()
        return self

    def _read_stderr(self, fd: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if self._log is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._log.write(chunk)
                    self._log.flush()
            pending += chunk
            *lines, pending = re.split(rb"[\r\n]", pending)
            now = time.monotonic()
            for raw in lines:
                if line := raw.decode(errors="replace").strip():
                    self._line(line, now)

    def _line(self, line: str, now: float) -> None:
        self._tail.append(line)
        audio_input = "Input #0" if self.audio_only else "Input #1"
        if not self._capturing.is_set() and (line.startswith(audio_input) or "time=" in line):
            # The audio input is described once its first packets arrived: from here on, what the
            # sink plays is recorded.
            self.capturing_after = now - self._started_mono
            self._capturing.set()
        self._tracker.feed(line)

    # ------------------------------------------------------------ status

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_until_capturing(self, timeout: float = 10.0) -> bool:
        """Block until ffmpeg has opened its inputs (the audio source last); False on timeout or exit."""
        deadline = time.monotonic() + timeout
        while not self._capturing.wait(0.05):
            if not self.is_running() or time.monotonic() > deadline:
                return False
        return True

    @property
    def capturing(self) -> bool:
        return self._capturing.is_set()

    @property
    def heard_sound(self) -> bool:
        return self._tracker.heard

    def seconds_since_sound(self) -> float:
        """Seconds since audio was last above the threshold (since start when there never was any)."""
        if self.started_at is None:
            return 0.0
        return self._tracker.seconds_since_sound(time.monotonic())

    def media_position(self) -> MediaPosition:
        """Where the recording is (media seconds), the ongoing silence and the pauses that ended lately."""
        return self._tracker.position()

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._tail)[-lines:])

    # ------------------------------------------------------------ stop

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT so ffmpeg writes its last fragment, SIGKILL after `timeout`; idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            self._tracker.freeze()
            terminate(proc, timeout=timeout, sig=signal.SIGINT, close=False)
            self.returncode = proc.returncode
        if self._reader is not None:
            self._reader.join(5)  # ffmpeg is gone: its stderr hits EOF as soon as the last lines are read
            self._reader = None
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def raise_if_failed(self) -> None:
        """Raise BotError with ffmpeg's last words when it exited on its own before stop()."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BotError(
                f"ffmpeg exited (rc={self.proc.returncode}): {self.stderr_tail(8)}", sub_code="internal_error"
            )
