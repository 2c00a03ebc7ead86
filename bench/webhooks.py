"""Webhook delivery benchmark: N bot events fanned out to 3 webhooks on a loopback receiver, one failing half.

Bot events are written the way bots write them (record_event, one transaction each, from a few producer
threads); each becomes 3 deliveries in the same transaction (the outbox), enqueued after commit and sent by an
in-process `webhooks` worker (Dramatiq StubBroker, webhook_concurrency threads) to a uvicorn receiver in its
own process. Two webhooks always answer 200; the third answers 500 to half its requests at random, so its
deliveries go through the retry schedule (a short one here, printed). Figures per database: successful
deliveries per second, attempts per second, event → receipt p50/p99 per receiver (the first 2xx receipt of
each event; createdAt is the event's own time), and how many deliveries failed for good or arrived twice.
Each database runs twice: flat out (the producers write as fast as they can: throughput; when they outpace
the workers, event → receipt is mostly time spent in the backlog), then paced at --latency-rate events/s
(latency at a load the workers keep up with). The reference is the same signed POSTs sent straight from the
same number of threads (a fresh connection each, as the workers do) with no database or queue. Prints JSON
lines; it asserts nothing. Example:

    python bench/webhooks.py --events 10000 --databases sqlite,postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from meetbot import outbound
from meetbot.db import get_engine, migrate
from meetbot.db.tables import webhook_attempts, webhook_deliveries
from meetbot.domain import accounts, bot_states
from meetbot.domain import webhooks as hooks
from meetbot.domain.bots import create_bot
from meetbot.queue import build_broker
from meetbot.schemas.bots import BotCreate
from meetbot.schemas.webhooks import WebhookCreate
from meetbot.settings import Settings
from meetbot.webhooks import envelope, signing
from tests.support import empty_postgres_database, free_port, wait_for
from workers.process import WorkerProcess

FAIL_RATIO = "BENCH_FAIL_RATIO"
SCHEDULE = "0.2,0.4,0.8,1.6,3.2,6.4,6.4,6.4,6.4,6.4"  # 11 attempts: a 50 % receiver fails one in 2048 for good
PG_ADMIN_URL = os.environ.get("MEETBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def receiver_app() -> Starlette:
    """The receiver (a uvicorn factory): /ok/* answers 200, /flaky 500 to $BENCH_FAIL_RATIO of requests."""
    fail_ratio = float(os.environ.get(FAIL_RATIO, "0.5"))
    hits: list[tuple[str, str, float, int]] = []  # path, webhook-id, event → receipt seconds, status

    async def hook(request: Request) -> Response:
        body = await request.body()
        created = datetime.fromisoformat(json.loads(body)["createdAt"].replace("Z", "+00:00")).timestamp()
        path = request.url.path
        status = 500 if path == "/flaky" and random.random() < fail_ratio else 200
        hits.append((path, request.headers.get("webhook-id", ""), time.time() - created, status))
        return PlainTextResponse("ok" if status == 200 else "failing", status_code=status)

    async def stats(_request: Request) -> Response:
        return JSONResponse(hits)

    async def reset(_request: Request) -> Response:
        hits.clear()
        return PlainTextResponse("ok")

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/stats", stats),
            Route("/reset", reset, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/{path:path}", hook, methods=["POST"]),
        ]
    )


@contextlib.contextmanager
def receiver(log: Path, fail_ratio: float) -> Iterator[str]:
    base = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "uvicorn", "bench.webhooks:receiver_app", "--factory", "--no-access-log"]
    cmd += ["--host", "127.0.0.1", "--port", base.rsplit(":", 1)[1], "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ | {FAIL_RATIO: str(fail_ratio)}, stdout=out, stderr=out)
    try:
        wait_for(lambda: _healthy(base, proc), 30, "the receiver", interval=0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(15)


def _healthy(base: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the receiver exited"
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


@contextlib.contextmanager
def database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    with empty_postgres_database(PG_ADMIN_URL, "meetbot_bench") as url:
        yield url


def run_meetbot(kind: str, base: str, tmp: Path, args: argparse.Namespace, events: int, rate: float) -> dict[str, Any]:
    with database(kind, tmp) as url:
        migrate(url)
        settings = Settings(
            data_dir=tmp / f"data-{kind}-{rate}",
            database_url=url,
            webhook_allow_private=True,
            webhook_retry_schedule_seconds=SCHEDULE,
            webhook_concurrency=args.concurrency,
            log_level="WARNING",
        )
        engine = get_engine(url)
        with engine.begin() as conn:
            user = accounts.create_user(conn, f"bench-{uuid.uuid4().hex[:6]}@example.com", "benchmark!", "Bench")
            meeting = {"meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"}}
            bot_id = create_bot(conn, user.id, BotCreate.model_validate(meeting), settings.resolved_secret_key()).id
            for path in ("/ok/1", "/ok/2", "/flaky"):
                hooks.create_webhook(conn, user.id, WebhookCreate(url=base + path), 50)
        workers = WorkerProcess(settings, build_broker(settings), queues={"webhooks"})
        workers.start()
        try:
            started = time.time()
            produce(engine, bot_id, events, args.producers, rate)
            produced_s = time.time() - started
            wait_for(lambda: _settled(engine), args.timeout, "every delivery to settle", interval=0.25)
            wall = time.time() - started
        finally:
            workers.stop(timeout_s=10)
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    sa.select(webhook_deliveries.c.status, sa.func.count()).group_by(webhook_deliveries.c.status)
                ).all()
            )
            a = webhook_attempts
            outcomes = {
                str(code or (error or "")[:60]): n
                for code, error, n in conn.execute(
                    sa.select(a.c.status_code, a.c.error, sa.func.count()).group_by(a.c.status_code, a.c.error)
                )
            }
            attempts = sum(outcomes.values())
            failed_after = conn.execute(
                sa.select(webhook_deliveries.c.attempts).where(webhook_deliveries.c.status == "failed")
            ).scalars()
            failed_after = list(failed_after)
            first_done = conn.execute(sa.select(sa.func.max(a.c.created_at)).where(a.c.attempt == 1)).scalar_one()
        first_attempts_s = first_done.timestamp() - started
    hits = httpx.get(f"{base}/stats", timeout=60).json()
    httpx.post(f"{base}/reset")
    first: dict[tuple[str, str], float] = {}
    accepted: dict[tuple[str, str], int] = {}
    for path, event_id, latency, status in hits:
        if status == 200:
            key = (path, event_id)
            accepted[key] = accepted.get(key, 0) + 1
            first.setdefault(key, latency)
    per_receiver = {}
    for path in ("/ok/1", "/ok/2", "/flaky"):
        latencies = [latency for (p, _), latency in first.items() if p == path]
        per_receiver[path] = {"received": len(latencies), "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99)}
    return {
        "measure": "meetbot",
        "database": kind,
        "mode": f"paced at {rate:g} events/s" if rate else "as fast as the producers write",
        "events": events,
        "deliveries": sum(counts.values()),
        "delivered": counts.get("delivered", 0),
        "failed": counts.get("failed", 0),
        "failed_after_attempts": failed_after,  # each failed delivery's attempts (the schedule allows 11)
        "duplicates": sum(n - 1 for n in accepted.values()),
        "attempts": attempts,
        "events_written_per_s": round(events / produced_s, 1),
        # every delivery's first attempt made (sent and recorded) per second, from the first event written
        "deliveries_per_s": round(sum(counts.values()) / first_attempts_s, 1),
        "first_attempts_done_s": round(first_attempts_s, 2),
        "settled_s": round(wall, 2),  # until the last retry: the retry schedule's tail
        "attempt_outcomes": outcomes,
        "event_to_receipt": per_receiver,
    }


def produce(engine: sa.Engine, bot_id: int, events: int, producers: int, rate: float) -> None:
    """events bot events from `producers` threads; at `rate` events/s in all when rate > 0, else flat out."""
    started = time.monotonic()

    def write(first: int) -> None:
        for index in range(first, events, producers):
            if rate:
                time.sleep(max(0.0, started + index / rate - time.monotonic()))
            with engine.begin() as conn:
                bot_states.record_event(conn, bot_id, "PARTICIPANT_JOIN", {"name": f"participant {index}"})

    threads = [threading.Thread(target=write, args=(first,)) for first in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _settled(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return not conn.execute(sa.select(sa.func.count()).where(webhook_deliveries.c.status == "pending")).scalar_one()


def run_reference(base: str, args: argparse.Namespace) -> dict[str, Any]:
    """The same signed POSTs straight to the healthy receiver path: HTTP alone, no database or queue."""
    secret = signing.new_secret()
    tls = outbound.tls_context()  # built once, as the guard's transports share it
    total = args.events * 3
    counter = iter(range(total))
    lock = threading.Lock()

    def send() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            event = envelope.ping(index, datetime.now().astimezone())
            body = envelope.body(event)
            headers = {"content-type": "application/json", **signing.sign_headers(secret, event["id"], body)}
            with httpx.Client(timeout=10, verify=tls) as client:  # a fresh connection per request, as in workers
                client.post(f"{base}/ok/reference", content=body, headers=headers)

    started = time.time()
    threads = [threading.Thread(target=send) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.time() - started
    hits = httpx.get(f"{base}/stats", timeout=60).json()
    httpx.post(f"{base}/reset")
    latencies = [latency for _, _, latency, _ in hits]
    return {
        "measure": "reference",
        "requests": total,
        "requests_per_s": round(total / wall, 1),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--databases", default="sqlite", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--concurrency", type=int, default=16, help="delivery threads (webhook_concurrency)")
    parser.add_argument("--producers", type=int, default=4, help="threads writing bot events")
    parser.add_argument("--latency-events", type=int, default=1000, help="events of the paced run (0: none)")
    parser.add_argument("--latency-rate", type=float, default=20, help="events/s of the paced run (x3 deliveries)")
    parser.add_argument("--fail-ratio", type=float, default=0.5, help="share of /flaky requests answered 500")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for every delivery to settle")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meetbot-bench-webhooks-", dir="/tmp") as name:
        tmp = Path(name)
        with receiver(tmp / "receiver.log", args.fail_ratio) as base:
            setup = {
                "setup": f"{args.events} events x 3 webhooks (2 healthy, 1 failing {args.fail_ratio:.0%} at random); "
                f"{args.concurrency} delivery threads, {args.producers} producers; receiver: uvicorn, 1 process; "
                f"retry schedule {SCHEDULE} s ±20 %",
                "cpus": os.cpu_count(),
            }
            print(json.dumps(setup), flush=True)
            print(json.dumps(run_reference(base, args)), flush=True)
            for kind in args.databases.split(","):
                print(json.dumps(run_meetbot(kind.strip(), base, tmp, args, args.events, 0)), flush=True)
                if args.latency_events:
                    paced = run_meetbot(kind.strip(), base, tmp, args, args.latency_events, args.latency_rate)
                    print(json.dumps(paced), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
