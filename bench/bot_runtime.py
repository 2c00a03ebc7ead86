"""Bot runtime benchmark: join latency, end-detection latency, CPU and PSS per recording bot, concurrency.

Runs the embedded stack (API + in-process worker) against the meeting simulator on this machine and prints
figures; it asserts nothing. Example:

    python bench/bot_runtime.py --latency-runs 5 --concurrency 1,2,4,6 --record-seconds 30
    python bench/bot_runtime.py --audio-only --latency-runs 0 --concurrency 10,20 --record-seconds 60
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.support import control, make_speech, running_simulator, wait_for
from workers.bots.processes import ProcRef, command_name, cpu_seconds, descendants, pss_bytes
from workers.process import WorkerProcess

SHARED = ("pulseaudio", "dbus-daemon")  # one per worker process, not per bot


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Stack:
    def __init__(self, tmp: Path, simulator: str, slots: int, audio_only: bool = False) -> None:
        self.audio_only = audio_only
        db_url = f"sqlite:///{tmp / 'meetbot.db'}"
        migrate(db_url)
        self.settings = Settings(
            data_dir=tmp / "data",
            database_url=db_url,
            allow_simulator=True,
            bots_per_process=slots,
            rate_limit_per_minute=100_000,
            rate_limit_per_hour=1_000_000,
            log_level="WARNING",
        )
        broker = build_broker(self.settings)
        self.workers = WorkerProcess(self.settings, broker, queues={"bots"}, bots_per_process=slots)
        self.workers.start()
        self.client = TestClient(create_app(self.settings, Services.from_settings(self.settings, broker=broker)))
        self.client.base_url = self.client.base_url.join("/api/v1/")
        email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
        self.client.post("/auth/register", json={"email": email, "password": "benchmark!", "name": "Bench"})
        token = self.client.post("/auth/login", json={"email": email, "password": "benchmark!"}).json()
        self.headers = {"Authorization": f"Bearer {token['accessToken']}"}
        self.simulator = simulator

    def deploy(self, platform: str, query: str = "") -> tuple[int, str, float]:
        meeting = f"b{uuid.uuid4().hex[:8]}"
        url = f"{self.simulator}/{platform}/{meeting}" + (f"?{query}" if query else "")
        body: dict[str, Any] = {"meetingInfo": {"platform": platform, "meetingUrl": url}}
        if self.audio_only:
            body["recordingSettings"] = {"audioOnly": True}
        bot_id = self.client.post("/bots", json=body, headers=self.headers).json()["id"]
        sent = time.time()
        self.client.post(f"/bots/{bot_id}/deploy", headers=self.headers)
        return bot_id, meeting, sent

    def bot(self, bot_id: int) -> dict[str, Any]:
        return self.client.get(f"/bots/{bot_id}", headers=self.headers).json()

    def status_times(self, bot_id: int) -> dict[str, float]:
        events = self.client.get(f"/bots/{bot_id}/events", params={"page_size": 100}, headers=self.headers).json()
        return {e["status"]: parse_time(e["createdAt"]) for e in events["events"] if e["type"] == "STATUS_CHANGE"}

    def wait(self, bot_id: int, status: str, timeout: float = 60) -> None:
        wait_for(lambda: self.bot(bot_id)["status"] in (status, "FATAL"), timeout, f"{status}", interval=0.05)
        if self.bot(bot_id)["status"] == "FATAL":
            raise RuntimeError(f"bot {bot_id} failed: {self.bot(bot_id)['deploymentError']}")

    def close(self) -> None:
        self.workers.stop()


def latency(stack: Stack, platform: str, runs: int) -> dict[str, float]:
    joining, in_call, ended = [], [], []
    for _ in range(runs):
        bot_id, meeting, sent = stack.deploy(platform)
        stack.wait(bot_id, "IN_CALL")
        time.sleep(1.0)
        end_sent = time.time()
        control(stack.simulator, platform, meeting, action="end")
        stack.wait(bot_id, "DONE")
        times = stack.status_times(bot_id)
        joining.append(times["JOINING_CALL"] - sent)
        in_call.append(times["IN_CALL"] - sent)
        ended.append(times["CALL_ENDED"] - end_sent)
    return {
        "deploy_to_joining_s": statistics.median(joining),
        "deploy_to_in_call_s": statistics.median(in_call),
        "deploy_to_in_call_max_s": max(in_call),
        "end_noticed_s": statistics.median(ended),
        "end_noticed_max_s": max(ended),
    }


def bot_processes(me: int) -> list[ProcRef]:
    """This process (its runner threads) and every child but the per-worker shared daemons."""
    own = ProcRef.of(me)
    return [r for r in descendants(me) if command_name(r) not in SHARED] + ([own] if own else [])


def process_kind(ref: ProcRef) -> str:
    """A process's command name, with Chromium's --type (renderer, gpu-process, utility...) when it has one."""
    try:  # Chromium rewrites its title, so its arguments may arrive space-joined
        args = " ".join(psutil.Process(ref.pid).cmdline()).split()
    except psutil.Error:
        return command_name(ref)
    kinds = [a.removeprefix("--type=") for a in args if a.startswith("--type=")]
    subtypes = [a.removeprefix("--utility-sub-type=").split(".")[-1] for a in args if a.startswith("--utility-sub")]
    return "/".join([command_name(ref), *kinds, *subtypes])


def pss_by_kind(refs: list[ProcRef]) -> dict[str, float]:
    """MB of PSS per process kind, largest first."""
    totals: dict[str, int] = {}
    for ref in refs:
        kind = process_kind(ref)
        totals[kind] = totals.get(kind, 0) + pss_bytes([ref])
    return {k: round(v / 2**20, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def frame_gaps(path: Path, fps: int) -> tuple[int, int]:
    """(frames, frames missing): gaps in the video timestamps longer than 1.5 frame intervals."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "json",
         str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    times = sorted(float(p["pts_time"]) for p in json.loads(out)["packets"] if p.get("pts_time") not in (None, "N/A"))
    step = 1.0 / fps
    missing = sum(round((b - a) / step) - 1 for a, b in itertools.pairwise(times) if b - a > 1.5 * step)
    return len(times), missing


def concurrent(stack: Stack, count: int, seconds: float) -> dict[str, float]:
    bots = [stack.deploy("google") for _ in range(count)]
    for bot_id, meeting, _ in bots:
        stack.wait(bot_id, "IN_CALL", timeout=120)
        control(stack.simulator, "google", meeting, action="join", name="Speaker")
        for _ in range(int(seconds // 8) + 2):
            control(stack.simulator, "google", meeting, action="speak", name="Speaker", audio="long.wav")
    time.sleep(3)  # let every page settle into playback
    me = os.getpid()
    before = cpu_seconds(bot_processes(me))
    before_each = {ref: cpu_seconds([ref]) for ref in bot_processes(me)}
    started = time.monotonic()
    pss_samples = []
    while time.monotonic() - started < seconds:
        time.sleep(2)
        pss_samples.append(pss_bytes(r for r in descendants(me) if command_name(r) not in SHARED))
    elapsed = time.monotonic() - started
    breakdown = pss_by_kind([r for r in descendants(me) if command_name(r) not in SHARED])
    cores = (cpu_seconds(bot_processes(me)) - before) / elapsed
    cpu_by_kind: dict[str, float] = {}
    for ref, used in before_each.items():
        if not ref.alive():  # gone during the window: its last CPU reading is lost with it
            continue
        kind = "runner (python)" if ref.pid == me else process_kind(ref)
        cpu_by_kind[kind] = cpu_by_kind.get(kind, 0.0) + (cpu_seconds([ref]) - used) / elapsed
    cpu_by_kind = {k: round(v, 3) for k, v in sorted(cpu_by_kind.items(), key=lambda kv: -kv[1])}
    for _, meeting, _ in bots:
        control(stack.simulator, "google", meeting, action="end")
    gaps = []
    complete = 0
    for bot_id, _, _ in bots:
        stack.wait(bot_id, "DONE", timeout=120)
        recording = stack.bot(bot_id)["recording"]
        complete += bool(recording and recording["durationSeconds"] >= seconds)
        if stack.audio_only:
            continue
        frames, missing = frame_gaps(
            stack.settings.data_dir / "storage" / recording["key"], stack.settings.video_framerate
        )
        gaps.append(missing / max(1, frames + missing))
    return {
        "audio_only": stack.audio_only,
        "recordings_complete": f"{complete}/{count}",
        "bots": count,
        "cpu_cores_total": round(cores, 2),
        "cpu_cores_per_bot": round(cores / count, 3),
        "pss_mb_per_bot": round(statistics.median(pss_samples) / count / 2**20, 1),
        "dropped_frames_worst_pct": round(100 * max(gaps), 2) if gaps else None,
        "pss_mb_by_process_kind": breakdown,
        "cpu_cores_by_process_kind": cpu_by_kind,
    }


def speech_media(folder: Path) -> Path:
    """The simulator's speech files, plus long.wav: a speaker who goes on for the whole recording window."""
    media = make_speech(folder)
    text = " ".join(["The meeting continues with a long update on the project plan and its milestones."] * 6)
    subprocess.run(["espeak-ng", "-w", str(media / "long.wav"), text], check=True)
    return media


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--concurrency", default="1,2,4,6")
    parser.add_argument("--record-seconds", type=float, default=30)
    parser.add_argument("--platforms", default="google,zoom,teams")
    parser.add_argument("--audio-only", action="store_true", help="bots with recordingSettings.audioOnly")
    args = parser.parse_args()
    levels = [int(n) for n in args.concurrency.split(",") if n]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = speech_media(tmp / "media")
        with running_simulator(media, tmp / "sim") as simulator:
            stack = Stack(tmp, simulator, slots=max([*levels, 1]), audio_only=args.audio_only)
            try:
                for platform in args.platforms.split(",") if args.latency_runs > 0 else ():
                    figures = latency(stack, platform, args.latency_runs)
                    print(json.dumps({"measure": "latency", "platform": platform, **figures}), flush=True)
                for count in levels:
                    figures = concurrent(stack, count, args.record_seconds)
                    print(json.dumps({"measure": "recording", **figures}), flush=True)
            finally:
                stack.close()


if __name__ == "__main__":
    main()
