"""Bot runtime benchmark: join latency, end-detection latency, CPU and PSS per recording bot, concurrency.

Runs the embedded stack (API + in-process worker) against the meeting simulator on this machine and prints
figures; it asserts nothing. Memory per bot is PSS, peak and median over the whole call (from deploy on), of every
process of the bots (Xvfb, chromedriver, Chromium and its helpers, ffmpeg, strays such as crashpad) plus their
share of the worker's PulseAudio and D-Bus. Examples:

    python bench/bot_runtime.py --latency-runs 5 --concurrency 1,2,4,6 --record-seconds 30
    python bench/bot_runtime.py --audio-only --latency-runs 0 --concurrency 10,20 --record-seconds 60
    # side by side with another checkout of the project (e.g. `git archive HEAD | tar -x -C /tmp/ref`):
    python bench/bot_runtime.py --latency-runs 0 --concurrency 1,6 --record-seconds 180 --reference-tree /tmp/ref
    # A/V drift of one recording over 30 minutes (the simulator's flash + beep clock, sync=N):
    python bench/bot_runtime.py --latency-runs 0 --concurrency "" --drift-minutes 30
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

# The code measured: this checkout, or another one (--reference-tree runs this script again against that tree).
sys.path.insert(0, os.environ.get("MEETBOT_BENCH_CODE_ROOT") or str(Path(__file__).resolve().parents[1]))

from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from meetbot.db import migrate
from meetbot.queue import build_broker
from meetbot.settings import Settings
from tests.support import control, make_speech, running_simulator, wait_for
from workers.bots.processes import BOT_TAG_ENV, ProcRef, command_name, cpu_seconds, descendants, pss_bytes
from workers.process import WorkerProcess

SHARED = ("pulseaudio", "dbus-daemon")  # one per worker process, not per bot
# Issue 10's targets, printed next to the figures.
TARGETS = {"video_pss_mb_per_bot_peak": 400, "six_bots_cores": 1.5, "dropped_frames_pct": 1.0}
TARGETS_AUDIO = {"bots": 20, "pss_mb_per_bot_peak": 150}


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
            # Its own host name: bot ids restart at 1 in this scratch database, and a test stack on this machine
            # cleaning up its own bot 1 of the default host must not take this run's bot 1 with it.
            worker_host=f"bench-{os.getpid()}",
            access_token_ttl_seconds=24 * 3600,  # a --drift-minutes 30 run outlives the default 15 min login
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
    """This process (its runner threads), every child (the bots' processes and the shared daemons) and the strays
    Chromium double-forks out of the tree (crashpad handlers), found by their bot tag's worker pid."""
    own = ProcRef.of(me)
    tree = descendants(me)
    pids = {me, *(ref.pid for ref in tree)}
    strays = []
    for proc in psutil.process_iter(["name", "ppid"]):
        if proc.info["ppid"] == 1 and proc.info["name"] == "chrome_crashpad_handler":
            try:
                tag = proc.environ().get(BOT_TAG_ENV, "")
                run_pid = tag.rsplit("/", 1)[-1].split("-", 1)[0]
                if run_pid.isdigit() and int(run_pid) in pids and (ref := ProcRef.of(proc.pid)):
                    strays.append(ref)
            except psutil.Error:
                continue
    return tree + strays + ([own] if own else [])


class PssSampler(threading.Thread):
    """PSS of the bots' processes and the shared daemons (not this process) every `interval` seconds, from start()
    to stop(); the CPU this thread used is kept aside so that it can be left out of the bots' figure."""

    def __init__(self, interval: float = 1.0) -> None:
        super().__init__(name="pss-sampler", daemon=True)
        self.interval = interval
        self.samples: list[int] = []
        self.cpu_seconds = 0.0
        self.peak_at = 0.0
        self.peak_by_kind: dict[str, float] = {}
        self.peak_uss_by_kind: dict[str, float] = {}
        self._halt = threading.Event()
        self._me = os.getpid()

    def run(self) -> None:
        began = time.monotonic()
        while True:
            refs = [r for r in bot_processes(self._me) if r.pid != self._me]
            self.samples.append(pss_bytes(refs))
            if self.samples[-1] == max(self.samples):  # where the peak is: which processes, how long after deploy
                self.peak_at = round(time.monotonic() - began, 1)
                self.peak_by_kind, self.peak_uss_by_kind = memory_by_kind(refs)
            self.cpu_seconds = time.thread_time()
            if self._halt.wait(self.interval):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join()


def process_kind(ref: ProcRef) -> str:
    """A process's command name, with Chromium's --type (renderer, gpu-process, utility...) when it has one."""
    try:  # Chromium rewrites its title, so its arguments may arrive space-joined
        args = " ".join(psutil.Process(ref.pid).cmdline()).split()
    except psutil.Error:
        return command_name(ref)
    kinds = [a.removeprefix("--type=") for a in args if a.startswith("--type=")]
    subtypes = [a.removeprefix("--utility-sub-type=").split(".")[-1] for a in args if a.startswith("--utility-sub")]
    return "/".join([command_name(ref), *kinds, *subtypes])


def memory_by_kind(refs: list[ProcRef]) -> tuple[dict[str, float], dict[str, float]]:
    """MB of PSS and of USS per process kind, largest first, from one reading of each process's memory. USS
    (memory no other process shares), unlike PSS, does not depend on what else runs Chromium or ffmpeg on the
    machine, so it shows a change's effect through other load."""
    pss: dict[str, int] = {}
    uss: dict[str, int] = {}
    for ref in refs:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(ref.pid).memory_full_info()
            kind = process_kind(ref)
            pss[kind] = pss.get(kind, 0) + info.pss
            uss[kind] = uss.get(kind, 0) + info.uss
    return _megabytes_largest_first(pss), _megabytes_largest_first(uss)


def _megabytes_largest_first(totals: dict[str, int]) -> dict[str, float]:
    return {k: round(v / 2**20, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def frame_gaps(path: Path, fps: int) -> tuple[int, int, float]:
    """(frames, frames missing, seconds until the screen capture began).

    Missing frames are gaps in the video timestamps longer than 1.5 frame intervals, counted from the first frame
    the screen input captured on: the recording's media time 0 is when ffmpeg was spawned, and the interval before
    the screen input opens (after PulseAudio, up to ~1.6 s) holds one frame, stamped 0. That start is reported as
    the third figure, not as dropped frames.
    """
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time", "-of", "json",
         str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    times = sorted(float(p["pts_time"]) for p in json.loads(out)["packets"] if p.get("pts_time") not in (None, "N/A"))
    step = 1.0 / fps
    captured = times[1:]
    missing = sum(round((b - a) / step) - 1 for a, b in itertools.pairwise(captured) if b - a > 1.5 * step)
    return len(captured), missing, captured[0] if captured else 0.0


def concurrent(stack: Stack, count: int, seconds: float) -> dict[str, Any]:
    sampler = PssSampler()
    sampler.start()  # from the first deploy: the peak covers joining too
    bots = [stack.deploy("google") for _ in range(count)]
    for bot_id, meeting, _ in bots:
        stack.wait(bot_id, "IN_CALL", timeout=120)
        control(stack.simulator, "google", meeting, action="join", name="Speaker")
        for _ in range(int(seconds // 8) + 2):
            control(stack.simulator, "google", meeting, action="speak", name="Speaker", audio="long.wav")
    time.sleep(3)  # let every page settle into playback
    me = os.getpid()
    refs = bot_processes(me)
    before = cpu_seconds(refs)
    before_each = {ref: cpu_seconds([ref]) for ref in refs}
    sampler_before = sampler.cpu_seconds
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    others = [r for r in bot_processes(me) if r.pid != me]
    breakdown, _ = memory_by_kind(others)
    sampler_cpu = sampler.cpu_seconds - sampler_before
    cores = (cpu_seconds(bot_processes(me)) - before - sampler_cpu) / elapsed
    cpu_by_kind: dict[str, float] = {}
    for ref, used in before_each.items():
        if not ref.alive():  # gone during the window: its last CPU reading is lost with it
            continue
        kind = "runner (python)" if ref.pid == me else process_kind(ref)
        spent = cpu_seconds([ref]) - used - (sampler_cpu if ref.pid == me else 0.0)
        cpu_by_kind[kind] = cpu_by_kind.get(kind, 0.0) + spent / elapsed
    cpu_by_kind = {k: round(v, 3) for k, v in sorted(cpu_by_kind.items(), key=lambda kv: -kv[1])}
    for _, meeting, _ in bots:
        control(stack.simulator, "google", meeting, action="end")
    sampler.stop()
    gaps: list[float] = []
    starts: list[float] = []
    complete = 0
    for bot_id, _, _ in bots:
        stack.wait(bot_id, "DONE", timeout=120)
        recording = stack.bot(bot_id)["recording"]
        complete += bool(recording and recording["durationSeconds"] >= seconds)
        if stack.audio_only:
            continue
        frames, missing, start = frame_gaps(
            stack.settings.data_dir / "storage" / recording["key"], stack.settings.video_framerate
        )
        gaps.append(missing / max(1, frames + missing))
        starts.append(start)
    return {
        "audio_only": stack.audio_only,
        "recordings_complete": f"{complete}/{count}",
        "bots": count,
        "cpu_cores_total": round(cores, 2),
        "cpu_cores_per_bot": round(cores / count, 3),
        "pss_mb_per_bot_peak": round(max(sampler.samples) / count / 2**20, 1),
        "pss_mb_per_bot_median": round(statistics.median(sampler.samples) / count / 2**20, 1),
        "dropped_frames_worst_pct": round(100 * max(gaps), 2) if gaps else None,
        "video_capture_began_s_worst": round(max(starts), 2) if starts else None,
        "pss_mb_by_process_kind": breakdown,
        "peak_s_after_deploy": sampler.peak_at,
        "pss_mb_by_process_kind_at_peak": sampler.peak_by_kind,
        "uss_mb_by_process_kind_at_peak": sampler.peak_uss_by_kind,
        "uss_mb_at_peak": round(sum(sampler.peak_uss_by_kind.values()), 1),
        "cpu_cores_by_process_kind": cpu_by_kind,
    }


def speech_media(folder: Path) -> Path:
    """The simulator's speech files, plus long.wav: a speaker who goes on for the whole recording window."""
    media = make_speech(folder)
    text = " ".join(["The meeting continues with a long update on the project plan and its milestones."] * 6)
    subprocess.run(["espeak-ng", "-w", str(media / "long.wav"), text], check=True)
    return media


def drift_run(stack: Stack, minutes: float, period: int) -> dict[str, Any]:
    """One bot records the simulator's sync clock (a flash and a beep together every `period` s) for `minutes`."""
    from meetbot.simulator.sync_clock import drift  # here: a --reference-tree checkout may not have it

    bot_id, meeting, _ = stack.deploy("google", f"sync={period}")
    stack.wait(bot_id, "IN_CALL", timeout=120)
    control(stack.simulator, "google", meeting, action="join", name="Speaker")  # the bot is not alone
    time.sleep(minutes * 60)
    control(stack.simulator, "google", meeting, action="end")
    stack.wait(bot_id, "DONE", timeout=600)
    recording = stack.bot(bot_id)["recording"]
    figures = drift(stack.settings.data_dir / "storage" / recording["key"], period)
    return {"minutes": minutes, "duration_s": recording["durationSeconds"], **figures, "target_drift_ms": 100}


def reference_level(tree: Path, args: argparse.Namespace, count: int) -> dict[str, Any] | None:
    """The same measurement at `count` bots with the code of another checkout (this script, run against it)."""
    cmd = [sys.executable, __file__, "--latency-runs", "0", "--concurrency", str(count)]
    cmd += ["--record-seconds", str(args.record_seconds)] + (["--audio-only"] if args.audio_only else [])
    env = {**os.environ, "MEETBOT_BENCH_CODE_ROOT": str(tree)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    for line in done.stdout.splitlines():
        if line.startswith("{") and json.loads(line).get("measure") == "recording":
            return dict(json.loads(line))
    print(json.dumps({"measure": "reference failed", "bots": count, "stderr": done.stderr[-1500:]}), flush=True)
    return None


def side_by_side(reference: dict[str, Any], figures: dict[str, Any]) -> dict[str, Any]:
    """Reference, this checkout and their ratio for each headline figure, and the issue's targets."""
    keys = ["pss_mb_per_bot_peak", "pss_mb_per_bot_median", "cpu_cores_total", "dropped_frames_worst_pct"]
    row: dict[str, Any] = {"measure": "recording vs reference", "bots": figures["bots"]}
    for key in keys:
        ref, new = reference.get(key, reference.get("pss_mb_per_bot") if key.startswith("pss") else None), figures[key]
        ratio = round(new / ref, 2) if isinstance(ref, int | float) and isinstance(new, int | float) and ref else None
        row[key] = {"reference": ref, "this": new, "ratio": ratio}
    row["recordings_complete"] = {
        "reference": reference.get("recordings_complete"),
        "this": figures["recordings_complete"],
    }
    row["targets"] = TARGETS_AUDIO if figures["audio_only"] else TARGETS
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--concurrency", default="1,2,4,6")
    parser.add_argument("--record-seconds", type=float, default=30)
    parser.add_argument("--platforms", default="google,zoom,teams")
    parser.add_argument("--audio-only", action="store_true", help="bots with recordingSettings.audioOnly")
    parser.add_argument("--reference-tree", type=Path, help="another checkout, measured at each level before this one")
    parser.add_argument("--drift-minutes", type=float, default=0, help="record one bot this long, print its A/V drift")
    parser.add_argument("--drift-period", type=int, default=5, help="seconds between the sync clock's flash+beeps")
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
                    reference = reference_level(args.reference_tree, args, count) if args.reference_tree else None
                    figures = concurrent(stack, count, args.record_seconds)
                    print(json.dumps({"measure": "recording", **figures}), flush=True)
                    if reference is not None:
                        print(json.dumps({"measure": "reference", **reference}), flush=True)
                        print(json.dumps(side_by_side(reference, figures)), flush=True)
                if args.drift_minutes > 0:
                    figures = drift_run(stack, args.drift_minutes, args.drift_period)
                    print(json.dumps({"measure": "av drift", **figures}), flush=True)
            finally:
                stack.close()


if __name__ == "__main__":
    main()
