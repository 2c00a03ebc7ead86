"""A worker killed mid-call (SIGKILL): on restart its bot ends FATAL/worker_lost, leaves, and its recording is kept."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.support import clean_env, control, free_port, start_meetbot_up, wait_for
from tests.test_bot_runtime import loud_seconds, probe
from workers.bots.processes import command_name, processes_matching, processes_of_bot, processes_owned_by

pytestmark = pytest.mark.browser


def test_recording_survives_a_killed_worker(tmp_path: Path, simulator: str) -> None:
    data = tmp_path / "data"
    env = clean_env(data, MEETBOT_ALLOW_SIMULATOR="true")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api/v1"
    proc, key = start_meetbot_up(env, port, expect_key=True)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        body = {"meetingInfo": {"platform": "google", "meetingUrl": f"{simulator}/google/crash-test-1"}}
        bot_id = httpx.post(f"{api}/bots", json=body, headers=headers).json()["id"]
        httpx.post(f"{api}/bots/{bot_id}/deploy", headers=headers)
        wait_for(
            lambda: httpx.get(f"{api}/bots/{bot_id}", headers=headers).json()["status"] == "IN_CALL", 30, "IN_CALL"
        )
        control(simulator, "google", "crash-test-1", action="speak", name="Alice", audio="alice.wav")
        time.sleep(4)
    finally:
        proc.send_signal(signal.SIGKILL)  # no cleanup of any kind
        proc.wait()
    host = socket.gethostname()  # spool folders carry their host: spool/<host>/<bot id>
    spool = data / "spool" / host / str(bot_id)
    assert processes_matching(str(spool)), "the killed worker's browser and ffmpeg were expected to linger"
    assert processes_owned_by(str(spool)), "and its Xvfb"
    tagged = {name for ref in processes_of_bot(host, bot_id) if (name := command_name(ref))}
    assert {"Xvfb", "chromedriver"} <= tagged and any(n.endswith("ffmpeg") for n in tagged)  # Debian's or ours
    assert any("chrom" in n and n != "chromedriver" for n in tagged)

    proc, _ = start_meetbot_up(env, port, expect_key=False)
    try:
        bot = wait_for(
            lambda: (b := httpx.get(f"{api}/bots/{bot_id}", headers=headers).json())["recording"] and b,
            30,
            "the recovered recording",
        )
        assert bot["status"] == "FATAL"
        events = httpx.get(f"{api}/bots/{bot_id}/events", headers=headers).json()["events"]
        assert events[-2]["data"]["sub_code"] == "worker_lost" and events[-1]["type"] == "RECORDING_READY"
        recording = data / "storage" / bot["recording"]["key"]
        media = probe(recording)
        assert media["streams"] == {"audio", "video"} and media["duration"] >= 3
        assert loud_seconds(recording) >= 1.0
        assert not processes_matching(str(spool))  # the orphaned browser left the meeting
        assert not processes_owned_by(str(spool))  # and its X display is gone
        assert not processes_of_bot(host, bot_id)  # and every process that carried its tag
        assert not processes_matching(str(data / "run"))  # and the dead worker's PulseAudio and D-Bus are gone
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
