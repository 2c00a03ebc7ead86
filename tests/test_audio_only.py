"""Audio-only bots (recordingSettings.audioOnly): headless Chromium, no X display, AAC in fragmented MP4."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meetbot.settings import Settings
from tests.support import control, wait_for_speech
from tests.test_bot_runtime import Runtime, loud_seconds, probe, runtime, seconds_between
from workers.bots.desktop import PulseAudioServer
from workers.bots.media import AUDIO_CONTENT_TYPE, SPOOL_AUDIO_RECORDING, find_spooled_recording
from workers.bots.processes import ProcRef, command_name, descendants, processes_matching, processes_owned_by
from workers.bots.recorder import LEAN_FFMPEG, Recorder, probe_media

pytestmark = pytest.mark.browser
__all__ = ["runtime"]  # the module-scoped embedded API + worker of test_bot_runtime, one for this module
AUDIO_ONLY = {"recordingSettings": {"audioOnly": True}}


def our_xvfbs() -> list[ProcRef]:
    """Xvfb servers started by this test process (its in-process worker spawns the bots' displays)."""
    return [ref for ref in descendants(os.getpid()) if command_name(ref) == "Xvfb"]


def cmdline(ref: ProcRef) -> str:
    try:
        return Path(f"/proc/{ref.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def test_audio_only_bot_records_sound_without_a_display(runtime: Runtime) -> None:
    assert not our_xvfbs()
    bot_id, meeting = runtime.create("google", **AUDIO_ONLY)
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")

    # While in the call: no X server for this bot, Chromium headless, ffmpeg grabbing no screen.
    spool = runtime.settings.spool_dir / str(bot_id)
    assert not processes_owned_by(str(spool)), "an Xvfb was started for the audio-only bot"
    assert not our_xvfbs(), "an Xvfb was started while the audio-only bot was in the call"
    commands = [cmdline(ref) for ref in processes_matching(str(spool))]
    assert any("--headless=new" in c for c in commands if "chromium" in c), commands
    recorders = [c for c in commands if Path(c.split(" ", 1)[0]).name in ("ffmpeg", LEAN_FFMPEG)]
    assert recorders and all("x11grab" not in c for c in recorders), recorders
    assert all(c.endswith(str(spool / SPOOL_AUDIO_RECORDING)) for c in recorders), recorders

    control(runtime.simulator, "google", meeting, action="join", name="Alice")
    control(runtime.simulator, "google", meeting, action="speak", name="Alice", audio="alice.wav")
    wait_for_speech(runtime.simulator, "google", meeting, "the speech to play")
    time.sleep(1)
    control(runtime.simulator, "google", meeting, action="end")
    bot = runtime.wait_status(bot_id, "DONE", timeout=30)

    assert runtime.status_path(bot_id)[-2:] == [("CALL_ENDED", "meeting_ended"), ("DONE", "meeting_ended")]
    recording = runtime.recording_file(bot)
    media = probe(recording)
    assert media["streams"] == {"audio"}  # no video stream at all
    assert bot["recording"]["hasAudio"] and not bot["recording"]["hasVideo"]
    in_call = seconds_between(runtime.events(bot_id), "IN_CALL", "CALL_ENDED")
    assert abs(media["duration"] - in_call) <= 2.0, (media["duration"], in_call)
    assert loud_seconds(recording) >= 2.0  # Alice's sentence is in it
    messages = [line["message"] for line in runtime.logs(bot_id)]
    assert any(m.startswith("browser started headless") for m in messages), messages


def test_silence_detection_works_for_audio_only_bots(runtime: Runtime) -> None:
    silence = {"silenceDetection": {"timeout": 4000, "activateAfter": 0}}
    bot_id, meeting = runtime.create("teams", automaticLeave=silence, **AUDIO_ONLY)
    runtime.deploy(bot_id)
    runtime.wait_status(bot_id, "IN_CALL")
    control(runtime.simulator, "teams", meeting, action="speak", name="Alice", audio="alice.wav")
    bot = runtime.wait_status(bot_id, "DONE", timeout=30)
    assert runtime.status_path(bot_id)[-2] == ("CALL_ENDED", "silence_timeout")
    # It stayed while Alice spoke (about 4 s) and left about 4 s after she stopped.
    assert loud_seconds(runtime.recording_file(bot)) >= 2.0


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseAudioServer]:
    with PulseAudioServer(Settings(data_dir=tmp_path).runtime_dir) as server:
        yield server


def test_killed_audio_only_ffmpeg_leaves_a_playable_m4a(pulse: PulseAudioServer, media_dir: Path) -> None:
    """SIGKILL, not SIGINT: the file must hold whole fragments up to about a second before the kill."""
    spool = Path(pulse.dir).parent / "spool" / "7"
    with pulse.create_sink("audioonly") as sink:
        recorder = Recorder(None, sink.monitor, pulse.env, spool / SPOOL_AUDIO_RECORDING, 0, 0, 0)
        recorder.start()
        try:
            assert recorder.wait_until_capturing(), recorder.stderr_tail()
            player = subprocess.run(
                ["paplay", f"--device={sink.name}", str(media_dir / "alice.wav")],
                env=pulse.client_env(),
                capture_output=True,
                timeout=30,
            )
            assert player.returncode == 0, player.stderr
            time.sleep(1.5)
            assert recorder.proc is not None
            os.kill(recorder.proc.pid, signal.SIGKILL)
            recorder.proc.wait(5)
        finally:
            recorder.stop()
    found = find_spooled_recording(spool)
    assert found == (spool / SPOOL_AUDIO_RECORDING, AUDIO_CONTENT_TYPE)
    info = probe_media(found[0])
    assert info.has_audio and not info.has_video and info.duration_s >= 3.0, info
    assert loud_seconds(found[0]) >= 2.0
