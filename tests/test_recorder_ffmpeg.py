"""Which ffmpeg bots record with: meetbot-ffmpeg (scripts/build-recorder-ffmpeg.sh) when installed, or the setting."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meetbot.settings import Settings
from workers.bots.recorder import LEAN_FFMPEG, Recorder, recorder_ffmpeg_binary

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "scripts" / "build-recorder-ffmpeg.sh"


def linked_libraries(binary: str) -> int:
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True)
    return sum(1 for line in ldd.stdout.splitlines() if ".so" in line)


def test_this_install_records_with_the_lean_ffmpeg() -> None:
    """The install (scripts/bootstrap.sh) built meetbot-ffmpeg, so every recording test here exercises it."""
    binary = recorder_ffmpeg_binary(None)
    assert Path(binary).name == LEAN_FFMPEG, f"bots would record with {binary}"
    version = subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    assert "meetbot-recorder" in version.stdout.splitlines()[0]
    # What makes it worth building: a fraction of the shared libraries whose pages each recorder pays for.
    debian = shutil.which("ffmpeg")
    assert debian is not None
    assert linked_libraries(binary) * 3 < linked_libraries(debian)


def test_the_lean_ffmpeg_has_every_part_the_recorder_names() -> None:
    binary = recorder_ffmpeg_binary(None)
    recorder = Recorder(":0", "sink.monitor", {}, Path("out.mp4"), 1280, 720, 15)
    command = recorder.command(0.0)
    listed = {
        kind: subprocess.run([binary, "-hide_banner", f"-{kind}"], capture_output=True, text=True, check=True).stdout
        for kind in ("devices", "encoders", "filters", "muxers")
    }
    for device in ("pulse", "x11grab"):
        assert f" {device} " in listed["devices"]
    for encoder in (command[command.index("-c:v") + 1], command[command.index("-c:a") + 1]):
        assert f" {encoder} " in listed["encoders"]
    for graph in (command[command.index("-vf") + 1], command[command.index("-af") + 1]):
        for name in (step.split("=", 1)[0] for step in graph.split(",")):
            assert f" {name} " in listed["filters"], name
    assert " mp4 " in listed["muxers"]


def test_a_configured_ffmpeg_is_the_one_bots_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEETBOT_RECORDER_FFMPEG", "/usr/bin/ffmpeg")
    settings = Settings()
    recorder = Recorder(None, "sink.monitor", {}, Path("out.m4a"), 0, 0, 0, ffmpeg=settings.recorder_ffmpeg)
    assert recorder.command(0.0)[0] == "/usr/bin/ffmpeg"


def test_without_the_lean_build_bots_record_with_ffmpeg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert recorder_ffmpeg_binary(None) == "ffmpeg"
    lean = tmp_path / "bin" / LEAN_FFMPEG
    lean.parent.mkdir()
    lean.write_text("#!/bin/sh\n")
    lean.chmod(0o755)
    assert recorder_ffmpeg_binary(None) == str(lean)  # beside the interpreter: a virtual environment's bin folder


def test_the_build_keeps_a_binary_of_its_recipe(tmp_path: Path) -> None:
    """A second install does not rebuild (nor download) what is already built."""
    shutil.copy(recorder_ffmpeg_binary(None), tmp_path / LEAN_FFMPEG)
    env = {"PATH": "/usr/bin:/bin", "FFMPEG_SOURCE": str(tmp_path / "no-such-tarball.tar.xz")}
    done = subprocess.run(["bash", str(BUILD_SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "already built" in done.stdout
