"""Capture stack end to end with real processes: Xvfb, PulseAudio, D-Bus, Chromium, ffmpeg."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from meetbot.settings import Settings
from meetbot.simulator.app import STATIC_DIR
from meetbot.simulator.sync_clock import drift
from workers.bots.browser import BrowserSession, prepare_camera_file
from workers.bots.desktop import NullSink, PulseAudioServer, SessionBus, XvfbDisplay
from workers.bots.processes import ProcRef, processes_matching, pss_bytes
from workers.bots.recorder import Recorder, SoundTracker, probe_media

TOOLS = ("Xvfb", "pulseaudio", "pactl", "dbus-daemon", "ffmpeg", "ffprobe", "chromedriver", "espeak-ng")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
needs_desktop = pytest.mark.skipif(bool(MISSING), reason=f"missing tools: {', '.join(MISSING)}")

SPEECH_PAGE = """<!doctype html><html><body style="background:#2a6;color:#fff"><h1>Speaking</h1>
<audio id="a" autoplay src="speech.wav"></audio></body></html>"""
SILENT_PAGE = """<!doctype html><html><body style="background:#36c;color:#fff"><h1>Quiet</h1></body></html>"""
# The simulator's A/V sync clock alone: a white flash and a beep together every second.
SYNC_PAGE = """<!doctype html><html><body style="background:#444"><h1>Sync</h1>
<script id="sim-config" type="application/json">{"syncSeconds": 1}</script>
<script src="sync.js"></script></body></html>"""
RECORD_SECONDS = 4.0


# ---------------------------------------------------------------- helpers


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def max_volume_db(path: Path) -> float:
    """Loudest sample of the file's audio in dBFS (-91 for digital silence)."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:a", "-af", "volumedetect"]
    done = subprocess.run([*cmd, "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    match = re.search(r"max_volume:\s*(-?[\d.]+|-inf) dB", done.stderr)
    assert match, done.stderr[-2000:]
    return float(match.group(1)) if match.group(1) != "-inf" else -200.0


@dataclass
class Bot:
    display: XvfbDisplay
    sink: NullSink
    browser: BrowserSession
    pulse: PulseAudioServer

    def recorder(self, out: Path) -> Recorder:
        assert self.display.display is not None
        width, height = self.display.width, self.display.height
        return Recorder(self.display.display, self.sink.monitor, self.pulse.env, out, width, height, 15)


@contextmanager
def start_bot(
    name: str, bus: SessionBus, pulse: PulseAudioServer, settings: Settings, camera_file: Path | None = None
) -> Iterator[Bot]:
    with ExitStack() as stack:
        display = stack.enter_context(XvfbDisplay(settings.screen_width, settings.screen_height))
        sink = stack.enter_context(pulse.create_sink(name))
        assert display.display is not None
        browser = BrowserSession(
            display.display, sink.name, pulse.env, dbus_address=bus.address, settings=settings, camera_file=camera_file
        )
        stack.enter_context(browser)
        yield Bot(display, sink, browser, pulse)


def wait_for_playback(browser: BrowserSession, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if browser.driver.execute_script("const a = document.getElementById('a'); return a && a.currentTime > 0"):
            return
        time.sleep(0.05)
    raise AssertionError("the page's <audio> never started playing")


def record(bot: Bot, out: Path, url: str, seconds: float = RECORD_SECONDS) -> tuple[Recorder, float, list[float]]:
    """Start recording, open url, record `seconds` after capture began; returns (recorder, wall, samples)."""
    recorder = bot.recorder(out).start()
    try:
        assert recorder.wait_until_capturing(10), recorder.stderr_tail()
        bot.browser.driver.get(url)
        samples: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(recorder.seconds_since_sound())
            time.sleep(0.25)
        assert recorder.is_running(), recorder.stderr_tail()
    finally:
        recorder.stop()
    assert recorder.started_at is not None
    return recorder, time.time() - recorder.started_at, samples


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("capture"))


@pytest.fixture(scope="module")
def bus(settings: Settings) -> Iterator[SessionBus]:
    with SessionBus(settings.runtime_dir) as session_bus:
        yield session_bus


@pytest.fixture(scope="module")
def pulse(settings: Settings) -> Iterator[PulseAudioServer]:
    with PulseAudioServer(settings.runtime_dir) as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local web server with a speaking page and a silent one; yields its base URL."""
    root = tmp_path_factory.mktemp("site")
    text = "Hello everyone, this is the meeting bot speaking. One, two, three, four, five, six."
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(root / "speech.wav"), text], check=True, timeout=30)
    (root / "speech.html").write_text(SPEECH_PAGE)
    (root / "silent.html").write_text(SILENT_PAGE)
    (root / "sync.html").write_text(SYNC_PAGE)
    shutil.copy(STATIC_DIR / "sync.js", root / "sync.js")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def bot_a(bus: SessionBus, pulse: PulseAudioServer, settings: Settings) -> Iterator[Bot]:
    with start_bot("bot_a", bus, pulse, settings) as bot:
        yield bot


# ---------------------------------------------------------------- tests


def test_sound_tracker_reads_silencedetect() -> None:
    tracker = SoundTracker(min_silence=2.0, zero_mono=100.0)
    assert tracker.seconds_since_sound(103.0) == pytest.approx(3.0) and not tracker.heard
    tracker.feed("[silencedetect @ 0x1] silence_start: 0")
    assert not tracker.heard and tracker.seconds_since_sound(104.0) == pytest.approx(4.0)
    tracker.feed("[silencedetect @ 0x1] silence_end: 4.5 | silence_duration: 4.5")
    assert tracker.heard and tracker.seconds_since_sound(105.0) == 0.0
    tracker.feed("[silencedetect @ 0x1] silence_start: 6.25")
    assert tracker.seconds_since_sound(110.0) == pytest.approx(3.75)
    # Sound from the very start: no silence_start for long enough means sound was heard.
    loud = SoundTracker(min_silence=2.0, zero_mono=0.0)
    loud.feed("frame=   10 fps=0.0 q=0.0 size=       1kB time=00:00:01.00 bitrate=N/A")
    assert not loud.heard
    loud.feed("frame=   70 fps= 15 q=28.0 size=      40kB time=00:00:03.50 bitrate=93.6kbits/s")
    assert loud.heard and loud.seconds_since_sound(4.0) == 0.0


@pytest.mark.browser
@needs_desktop
def test_records_speech_with_audio_and_video(bot_a: Bot, site: str, tmp_path: Path) -> None:
    out = tmp_path / "a.mp4"
    started = time.monotonic()
    recorder = bot_a.recorder(out).start()
    try:
        assert recorder.wait_until_capturing(10), recorder.stderr_tail()
        capture_after = time.monotonic() - started
        bot_a.browser.driver.get(f"{site}/speech.html")
        wait_for_playback(bot_a.browser)
        before_sound = recorder.seconds_since_sound()
        time.sleep(RECORD_SECONDS)
        assert recorder.is_running(), recorder.stderr_tail()
        assert recorder.heard_sound, recorder.stderr_tail()
        during_speech = recorder.seconds_since_sound()
    finally:
        recorder.stop()
    assert recorder.started_at is not None
    wall = time.time() - recorder.started_at
    info = probe_media(out)
    print(f"capture after {capture_after:.2f} s, recorded {wall:.2f} s, {info}")
    assert info.has_audio and info.has_video
    assert abs(info.duration_s - wall) <= 1.5, (info, wall)
    assert info.size_bytes > 10_000
    assert max_volume_db(out) > -40
    # Counted from the start while nothing played; back to 0 once the speech was heard.
    assert before_sound >= capture_after - 0.5
    assert during_speech == 0.0


@pytest.mark.browser
@needs_desktop
def test_recording_keeps_sound_and_picture_in_sync(bot_a: Bot, site: str, tmp_path: Path) -> None:
    """A flash and a beep played together land together in the recording, from its start to its end."""
    out = tmp_path / "sync.mp4"
    record(bot_a, out, f"{site}/sync.html", seconds=14)
    figures = drift(out, period=1, edge_events=3)
    print(figures)
    assert figures.get("pairs", 0) >= 10, figures
    assert abs(figures["offset_start_ms"]) <= 100, figures
    assert abs(figures["drift_ms"]) <= 70, figures  # one frame at 15 fps


@pytest.mark.browser
@needs_desktop
def test_two_bots_keep_audio_apart(
    bot_a: Bot, bus: SessionBus, pulse: PulseAudioServer, settings: Settings, site: str, tmp_path: Path
) -> None:
    with start_bot("bot_b", bus, pulse, settings) as bot_b:
        results: dict[str, tuple[Recorder, float, list[float]]] = {}
        errors: list[BaseException] = []

        def run(name: str, bot: Bot, page: str) -> None:
            try:
                results[name] = record(bot, tmp_path / f"{name}.mp4", f"{site}/{page}")
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=("a", bot_a, "speech.html")),
            threading.Thread(target=run, args=("b", bot_b, "silent.html")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        sinks = pulse.pactl("list", "short", "sink-inputs").stdout
    rec_a, _, samples_a = results["a"]
    rec_b, wall_b, samples_b = results["b"]
    loud, quiet = max_volume_db(tmp_path / "a.mp4"), max_volume_db(tmp_path / "b.mp4")
    print(f"bot a max {loud} dB, bot b max {quiet} dB; sink inputs:\n{sinks}")
    assert loud > -40
    assert quiet < -60
    assert rec_a.heard_sound and min(samples_a) == 0.0
    assert not rec_b.heard_sound
    assert samples_b == sorted(samples_b) and samples_b[-1] > RECORD_SECONDS
    assert rec_b.seconds_since_sound() >= wall_b - 0.5
    assert probe_media(tmp_path / "b.mp4").has_video


@pytest.mark.browser
@needs_desktop
def test_killed_ffmpeg_leaves_playable_file(bot_a: Bot, site: str, tmp_path: Path) -> None:
    out = tmp_path / "killed.mp4"
    recorder = bot_a.recorder(out).start()
    try:
        assert recorder.wait_until_capturing(10), recorder.stderr_tail()
        bot_a.browser.driver.get(f"{site}/speech.html")
        time.sleep(4.5)
        assert recorder.proc is not None
        recorder.proc.kill()  # no chance to finalize anything
        recorder.proc.wait(5)
    finally:
        recorder.stop()
    info = probe_media(out)
    assert info.has_video and info.has_audio
    assert info.duration_s >= 1.5, info


def executable_name(pid: int) -> str | None:
    """The program a pid runs, or None once it has exited (Chromium's helper processes come and go)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        return None


@pytest.mark.browser
@needs_desktop
def test_stop_leaves_no_process_behind(
    bus: SessionBus, pulse: PulseAudioServer, settings: Settings, site: str, tmp_path: Path
) -> None:
    with start_bot("bot_c", bus, pulse, settings) as bot:
        recorder = bot.recorder(tmp_path / "c.mp4").start()
        assert recorder.wait_until_capturing(10)
        started = time.monotonic()
        bot.browser.driver.get(f"{site}/silent.html")
        page_loaded = time.monotonic() - started
        assert bot.display.proc is not None and recorder.proc is not None
        procs = bot.browser.processes()
        names = {name for ref in procs if (name := executable_name(ref.pid))}
        assert {"chromedriver", "chromium"} <= names, names
        procs += [ProcRef.of(bot.display.proc.pid), ProcRef.of(recorder.proc.pid)]  # type: ignore[list-item]
        profile = bot.browser.user_data_dir
        temp_dir = bot.browser.temp_dir
        print(
            f"browser start {bot.browser.started_seconds:.2f} s, page {page_loaded:.2f} s, "
            f"PSS browser+Xvfb+ffmpeg {pss_bytes(procs) / 2**20:.0f} MiB in {len(procs)} processes"
        )
        recorder.stop()
        recorder.stop()  # idempotent
    bot.browser.stop()
    bot.display.stop()
    bot.sink.remove()
    assert not [ref for ref in procs if ref is not None and ref.alive()]
    assert profile is not None and temp_dir is not None
    assert not processes_matching(str(temp_dir))
    assert not temp_dir.exists()
    assert "bot_c" not in pulse.pactl("list", "short", "sinks").stdout


CAMERA_PROBE = """
const done = arguments[arguments.length - 1];
navigator.mediaDevices.getUserMedia({video: true}).then(async (stream) => {
  const video = document.createElement("video");
  video.muted = true;
  video.srcObject = stream;
  await video.play();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const centre = ctx.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data;
  stream.getTracks().forEach((track) => track.stop());
  done({width: canvas.width, height: canvas.height, rgb: [centre[0], centre[1], centre[2]]});
}).catch((error) => done({error: String(error)}));
"""


@pytest.mark.browser
@needs_desktop
def test_fake_camera_shows_the_picture(
    bus: SessionBus, pulse: PulseAudioServer, settings: Settings, site: str, tmp_path: Path
) -> None:
    picture = tmp_path / "red.png"
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=320x240"]
    subprocess.run([*cmd, "-frames:v", "1", str(picture)], check=True, timeout=30)
    camera = prepare_camera_file(picture, tmp_path / "camera", 640, 360)
    assert camera.suffix == ".y4m" and camera.stat().st_size > 640 * 360
    assert prepare_camera_file(picture, tmp_path / "camera", 640, 360) == camera  # cached
    with start_bot("bot_cam", bus, pulse, settings, camera_file=camera) as bot:
        bot.browser.driver.get(f"{site}/silent.html")  # getUserMedia needs a secure origin: 127.0.0.1 is one
        bot.browser.driver.set_script_timeout(10)
        result = bot.browser.driver.execute_async_script(CAMERA_PROBE)
    assert "error" not in result, result
    assert (result["width"], result["height"]) == (640, 360)
    red, green, blue = result["rgb"]
    assert red > 200 and green < 60 and blue < 60, result
