"""Fleet benchmark: bots across separate worker processes on PostgreSQL + Redis, with API load while they record.

Runs the production shape on this machine: `meetbot api` (2 processes, as the Procfile) and N
`meetbot worker --queues bots` processes (each with its slots), a fresh PostgreSQL database, a Redis database of its
own, the meeting simulator. Deploys all bots at once and prints, as JSON lines:
- deploy -> IN_CALL p50/p95/max (from the bots' own status events);
- CPU cores and PSS per bot over the recording window (worker process trees, shared daemons included);
- the API's p50/p99 and achieved rate for `GET /api/v1/bots` at a target rate while the bots record;
- dropped video frames per recording (gaps in the stored MP4's timestamps).
It asserts nothing. The fault drills (worker killed, Redis or PostgreSQL restarted, S3 down) are tests:
tests/test_fault_drills.py, tests/test_bot_fleet.py, tests/test_crash_recovery.py, tests/test_storage.py. Example:

    python bench/fleet.py --bots 8 --workers 2 --slots 4 --record-seconds 60 --api-rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
import psutil
import redis

from bench.api import postgres_database, start, stop
from bench.bot_runtime import frame_gaps, parse_time, speech_media
from meetbot.db import migrate
from tests.support import clean_env, control, free_port, running_simulator, wait_for

PG_ADMIN_URL = os.environ.get("MEETBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEETBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
FRAMERATE = 15


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@contextlib.contextmanager
def fleet(args: argparse.Namespace, tmp: Path, db_url: str, simulator: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The API and the worker processes; yields the API's base URL and an authenticated user's headers."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = clean_env(
        tmp / "data",
        MEETBOT_DATABASE_URL=db_url,
        MEETBOT_REDIS_URL=REDIS_URL,
        MEETBOT_SECRET_KEY="fleet-bench-" + "x" * 32,
        MEETBOT_ALLOW_SIMULATOR="true",
        MEETBOT_RATE_LIMIT_PER_MINUTE="1000000",
        MEETBOT_RATE_LIMIT_PER_HOUR="100000000",
        MEETBOT_LOG_LEVEL="WARNING",
        MEETBOT_DRAIN_TIMEOUT="0",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api_cmd = [sys.executable, "-m", "meetbot.cli", "api", "--port", str(port), "--workers", str(args.api_workers)]
    api = start(api_cmd, env, tmp / "api.log", base)
    workers = []
    for n in range(args.workers):
        cmd = [sys.executable, "-m", "meetbot.cli", "worker", "--queues", "bots", "--bots-per-process", str(args.slots)]
        with (tmp / f"worker-{n}.log").open("ab") as out:
            workers.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=out, cwd=ROOT))
    try:
        email = f"fleet-{uuid.uuid4().hex[:6]}@example.com"
        httpx.post(f"{base}/api/v1/auth/register", json={"email": email, "password": "benchmark!", "name": "F"})
        login = httpx.post(f"{base}/api/v1/auth/login", json={"email": email, "password": "benchmark!"}).json()
        time.sleep(2)  # the workers' consumers are up
        yield base, {"Authorization": f"Bearer {login['accessToken']}"}
    finally:
        for worker in workers:
            stop(worker)  # type: ignore[arg-type]
        stop(api)


def status_times(base: str, headers: dict[str, str], bot_id: int) -> dict[str, float]:
    url = f"{base}/api/v1/bots/{bot_id}/events"
    events = httpx.get(url, params={"page_size": 100}, headers=headers).json()["events"]
    return {e["status"]: parse_time(e["createdAt"]) for e in events if e["type"] == "STATUS_CHANGE"}


def worker_trees() -> list[psutil.Process]:
    """Every `meetbot worker` process of this benchmark and all its descendants (browsers, ffmpeg, Xvfb...)."""
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "worker" in child.cmdline() and "meetbot.cli" in child.cmdline():
                found += [child, *child.children(recursive=True)]
    return found


def sample_usage(seconds: float) -> tuple[float, float]:
    """(CPU cores used, median PSS bytes) of the worker trees over `seconds`."""
    procs = worker_trees()
    before = {p.pid: sum(p.cpu_times()[:2]) for p in procs if p.is_running()}
    pss: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        total = 0
        for proc in worker_trees():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_full_info().pss
        pss.append(total)
        time.sleep(2)
    used = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            used += sum(proc.cpu_times()[:2]) - before.get(proc.pid, 0.0)
    return used / (time.monotonic() - started), statistics.median(pss) if pss else 0.0


async def api_load(base: str, headers: dict[str, str], rate: float, seconds: float) -> dict[str, float]:
    """GET /bots at `rate` requests per second (open loop) for `seconds`: latency percentiles and what was served."""
    latencies: list[float] = []
    errors = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal errors
        started = time.perf_counter()
        try:
            response = await client.get(f"{base}/api/v1/bots?page_size=20", headers=headers)
            errors += response.status_code != 200
        except httpx.TransportError:  # a dropped connection counts as a failed request, not a crashed benchmark
            errors += 1
        latencies.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as client:
        tasks = []
        began = time.perf_counter()
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client)))
        await asyncio.gather(*tasks)
        took = time.perf_counter() - began
    return {
        "api_target_rps": rate,
        "api_served_rps": round(len(latencies) / took, 1),
        "api_p50_ms": round(percentile(latencies, 0.5), 1),
        "api_p99_ms": round(percentile(latencies, 0.99), 1),
        "api_errors": errors,
    }


def run(args: argparse.Namespace, tmp: Path, simulator: str, db_url: str) -> None:
    with fleet(args, tmp, db_url, simulator) as (base, headers):
        bots: list[tuple[int, str, float]] = []
        for _ in range(args.bots):
            meeting = f"f{uuid.uuid4().hex[:8]}"
            body = {"meetingInfo": {"platform": "google", "meetingUrl": f"{simulator}/google/{meeting}"}}
            bot_id = httpx.post(f"{base}/api/v1/bots", json=body, headers=headers).json()["id"]
            bots.append((bot_id, meeting, 0.0))
        deployed = {}
        for bot_id, _, _ in bots:  # all at once, as a burst of deploys
            deployed[bot_id] = time.time()
            httpx.post(f"{base}/api/v1/bots/{bot_id}/deploy", headers=headers)

        def in_call(bot_id: int) -> bool:
            return httpx.get(f"{base}/api/v1/bots/{bot_id}", headers=headers).json()["status"] == "IN_CALL"

        for bot_id, meeting, _ in bots:
            wait_for(lambda bot_id=bot_id: in_call(bot_id), 180, f"bot {bot_id} in call")
            control(simulator, "google", meeting, action="join", name="Speaker")
            for _ in range(int(args.record_seconds // 8) + 2):
                control(simulator, "google", meeting, action="speak", name="Speaker", audio="long.wav")
        joins = [status_times(base, headers, bot_id)["IN_CALL"] - deployed[bot_id] for bot_id, _, _ in bots]
        print(json.dumps({
            "measure": "deploy_to_in_call", "bots": args.bots, "workers": args.workers, "slots": args.slots,
            "p50_s": round(percentile(joins, 0.5), 2), "p95_s": round(percentile(joins, 0.95), 2),
            "max_s": round(max(joins), 2),
        }), flush=True)  # fmt: skip

        time.sleep(3)
        load = asyncio.run(api_load(base, headers, args.api_rate, min(args.record_seconds, 30)))
        cores, pss = sample_usage(args.record_seconds)
        print(json.dumps({
            "measure": "recording", "bots": args.bots, "api_workers": args.api_workers,
            "cpu_cores_total": round(cores, 2),
            "cpu_cores_per_bot": round(cores / args.bots, 3), "pss_mb_per_bot": round(pss / args.bots / 2**20, 1),
            **load,
        }), flush=True)  # fmt: skip

        for _, meeting, _ in bots:
            control(simulator, "google", meeting, action="end")
        dropped = []
        for bot_id, _, _ in bots:

            def done(bot_id: int = bot_id) -> dict[str, Any] | None:
                bot = httpx.get(f"{base}/api/v1/bots/{bot_id}", headers=headers).json()
                return bot if bot["status"] in ("DONE", "FATAL") and bot["recording"] else None

            bot = wait_for(done, 120, f"bot {bot_id} done")
            frames, missing = frame_gaps(tmp / "data" / "storage" / bot["recording"]["key"], FRAMERATE)
            dropped.append(100 * missing / max(1, frames + missing))
        print(json.dumps({
            "measure": "recordings", "bots": args.bots,
            "dropped_frames_median_pct": round(statistics.median(dropped), 2),
            "dropped_frames_worst_pct": round(max(dropped), 2),
        }), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4, help="bot slots per worker process")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn processes of the API (the Procfile's 2)")
    parser.add_argument("--record-seconds", type=float, default=60)
    parser.add_argument("--api-rate", type=float, default=200, help="GET /bots per second while the bots record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = speech_media(tmp / "media")
        with running_simulator(media, tmp / "sim") as simulator, postgres_database(PG_ADMIN_URL) as db_url:
            migrate(db_url)
            run(args, tmp, simulator, db_url)


if __name__ == "__main__":
    main()
