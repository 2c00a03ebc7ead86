"""Live event stream benchmark: event → SSE client latency with many open streams, across processes.

One API process (`meetbot api`, uvicorn), a writer process that commits bot events through
meetbot.domain.bot_states.record_event at a steady rate, and this process holding --streams open SSE streams
(half GET /bots/{id}/events/stream, half GET /events/stream of the same user, so every event reaches every
stream). Latency: the client's receipt time minus the writer's time right after the commit (one host, one
clock). Side by side in one run: the Redis notice (the design), and the reference without it (the database
poll alone, every --poll-seconds). Prints JSON lines; it asserts nothing. Example:

    python bench/events_stream.py --streams 100 --events 200 --rate 20 \
        --database-url postgresql://postgres@127.0.0.1:5432/meetbot_bench
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from meetbot.db import get_engine, migrate, now_utc
from meetbot.db.tables import bots
from meetbot.domain import accounts
from tests.support import clean_env, free_port, wait_for

WRITER = """
import sys, time
from meetbot.db import get_engine
from meetbot.domain.bot_states import record_event
from meetbot.event_bus import publish_commits

db_url, redis_url = sys.argv[1], sys.argv[2]
bot_id, count, rate = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
engine = get_engine(db_url)
if redis_url != "-":
    publish_commits(engine, redis_url)
sys.stdin.readline()  # go
start = time.monotonic()
for n in range(count):
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
    with engine.begin() as conn:
        event_id = record_event(conn, bot_id, "LOG", {"n": n})
    print(event_id, time.time(), flush=True)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup_database(url: str) -> tuple[str, int]:
    """A user with an API key and one bot on a migrated database: (key, bot id)."""
    migrate(url)
    with get_engine(url).begin() as conn:
        user = accounts.create_user(conn, f"bench-{os.getpid()}-{time.time_ns()}@example.com", "bench-password", "B")
        _, key = accounts.create_api_key(conn, user.id, "bench")
        now = now_utc()
        values = {"user_id": user.id, "status": "IN_CALL", "platform": "google", "config": {}, "created_at": now}
        bot_id = conn.execute(bots.insert().values(updated_at=now, **values).returning(bots.c.id)).scalar_one()
    return key, bot_id


async def listen(
    client: httpx.AsyncClient, path: str, key: str, received: dict[int, float], ready: asyncio.Event
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with client.stream("GET", path, headers=headers) as response:
        response.raise_for_status()
        ready.set()
        event_id = None
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                event_id = int(line[3:].strip())
            elif not line and event_id is not None:
                received.setdefault(event_id, time.time())
                event_id = None


async def run_case(base: str, key: str, bot_id: int, args: argparse.Namespace, writer_cmd: list[str]) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.streams + 10, max_keepalive_connections=args.streams + 10)
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0), limits=limits) as client:
        streams: list[dict[int, float]] = [{} for _ in range(args.streams)]
        readies = [asyncio.Event() for _ in range(args.streams)]
        paths = [f"/bots/{bot_id}/events/stream" if n % 2 == 0 else "/events/stream" for n in range(args.streams)]
        # A bot's stream replays its history: start those after what an earlier case wrote (the newest event).
        newest = await client.get("/events", params={"page_size": 1}, headers={"Authorization": f"Bearer {key}"})
        last = next((event["id"] for event in newest.json()["events"]), 0)
        paths = [path + (f"?lastEventId={last}" if path.startswith("/bots") else "") for path in paths]
        tasks = [
            asyncio.create_task(listen(client, path, key, received, ready))
            for path, received, ready in zip(paths, streams, readies, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in readies)), 60)
        await asyncio.sleep(0.5)
        writer = await asyncio.create_subprocess_exec(
            *writer_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=os.environ | {"PYTHONPATH": str(ROOT)}
        )
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write(b"go\n")
        await writer.stdin.drain()
        committed: dict[int, float] = {}
        while len(committed) < args.events:
            line = await writer.stdout.readline()
            if not line:
                break
            event_id, at = line.split()
            committed[int(event_id)] = float(at)
        await writer.wait()
        deadline = time.monotonic() + args.poll_seconds + 5
        while time.monotonic() < deadline and any(len(s) < len(committed) for s in streams):
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [s[i] - t for i, t in committed.items() for s in streams if i in s]
    slowest = [max(s[i] for s in streams) - t for i, t in committed.items() if all(i in s for s in streams)]
    missing = len(committed) * len(streams) - len(latencies)
    ms = lambda v: round(v * 1000, 1)  # noqa: E731
    return {
        "deliveries": len(latencies),
        "missing": missing,
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies)),
        "mean_ms": ms(statistics.fmean(latencies)),
        "over_1s": sum(1 for value in latencies if value > 1.0),
        "all_streams_p50_ms": ms(percentile(slowest, 50)),
        "all_streams_p99_ms": ms(percentile(slowest, 99)),
    }


def start_api(tmp: Path, db_url: str, redis_url: str, poll: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = clean_env(
        tmp / "data",
        MEETBOT_DATABASE_URL=db_url,
        MEETBOT_REDIS_URL=redis_url,
        MEETBOT_SECRET_KEY="bench-secret-" + "x" * 40,
        MEETBOT_RATE_LIMIT_PER_MINUTE="100000",
        MEETBOT_RATE_LIMIT_PER_HOUR="1000000",
        MEETBOT_SSE_POLL_SECONDS=str(poll),
        MEETBOT_LOG_LEVEL="WARNING",
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meetbot.cli", "api", "--port", str(port)], env=env, stdout=out, stderr=out, cwd=ROOT
        )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, f"the API exited; see {log}"
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{base}/healthz").status_code == 200
        return False

    wait_for(healthy, 30, "the API")
    return proc, f"{base}/api/v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--events", type=int, default=200, help="events written per case")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--redis-url", default=os.environ.get("MEETBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--poll-seconds", type=float, default=3.0, help="the streams' database poll (the default)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meetbot-bench-sse-", dir="/tmp") as name:
        tmp = Path(name)
        db_url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
        key, bot_id = setup_database(db_url)
        proc, base = start_api(tmp, db_url, args.redis_url, args.poll_seconds, tmp / "api.log")
        try:
            setup = {"streams": args.streams, "events": args.events, "rate_per_s": args.rate,
                     "database": db_url.split(":", 1)[0], "poll_seconds": args.poll_seconds}  # fmt: skip
            print(json.dumps({"bench": "events_stream", "setup": setup}), flush=True)
            for case, redis_url in (("redis_notice", args.redis_url), ("reference_poll_only", "-")):
                writer = [
                    sys.executable,
                    "-c",
                    WRITER,
                    db_url,
                    redis_url,
                    str(bot_id),
                    str(args.events),
                    str(args.rate),
                ]
                figures = asyncio.run(run_case(base, key, bot_id, args, writer))
                print(json.dumps({"bench": "events_stream", "case": case, **figures}), flush=True)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
