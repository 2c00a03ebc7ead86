"""API throughput benchmark: MeetBot's authenticated endpoints against a bare Starlette app, side by side.

Both are one uvicorn process on loopback. The bare app answers the same routes with the same JSON bodies from
memory (what MeetBot answered once), so the ratio is what MeetBot's request path costs: authentication, rate
limits, validation, SQL, the request log. Cases, each run against the bare app and MeetBot alternately in one
run: `GET /api/v1/bots?page_size=20` with an API key, the same with a JWT access token, and `POST /api/v1/bots`
with an API key. Load: `wrk -t1 -c32 -d10s` (apt-get install wrk). Databases: SQLite (a file in a temporary
directory) and PostgreSQL (a fresh database, dropped afterwards). Prints JSON lines; it asserts nothing.
Targets (issue 9): GET at least 0.5x bare with p99 at most 50 ms, POST at least 0.25x. Example:

    python bench/api.py --duration 10 --connections 32 --databases sqlite,postgresql
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
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
from meetbot.schemas.bots import BotCreate
from tests.support import clean_env, empty_postgres_database, free_port, wait_for

SECRET = "bench-secret-" + "x" * 40
BOT_BODY = {
    "botDisplayName": "Bench",
    "meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"},
}
SEEDED_BOTS = 40

# The bare reference: the same routes, the same bodies (files written by this script), nothing else.
BARE_APP = """
import json, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

listing = open(sys.argv[1], "rb").read()
created = open(sys.argv[2], "rb").read()

async def list_bots(request):
    return Response(listing, media_type="application/json")

async def create_bot(request):
    await request.body()
    return Response(created, status_code=201, media_type="application/json")

async def healthz(request):
    return Response(b'{"status":"ok"}', media_type="application/json")

app = Starlette(routes=[Route("/api/v1/bots", list_bots, methods=["GET"]),
                        Route("/api/v1/bots", create_bot, methods=["POST"]),
                        Route("/healthz", healthz)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_config=None, access_log=False)
"""

WRK_SCRIPT = """
wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""


def prepare_database(url: str) -> tuple[str, str]:
    """A user with an API key, a login session and SEEDED_BOTS bots on a migrated database: (key, JWT)."""
    migrate(url)
    policy = accounts.TokenPolicy(SECRET, 24 * 3600, 24 * 3600)
    with get_engine(url).begin() as conn:
        user = accounts.create_user(conn, f"bench-{os.getpid()}-{time.time_ns()}@example.com", "bench-password", "B")
        _, key = accounts.create_api_key(conn, user.id, "bench")
        jwt_token = accounts.start_session(conn, user.id, policy).access_token
        now = now_utc()
        config = BotCreate.model_validate(BOT_BODY).model_dump(mode="json", by_alias=True)
        for _ in range(SEEDED_BOTS):
            conn.execute(
                bots.insert().values(
                    user_id=user.id,
                    status="READY_TO_DEPLOY",
                    platform="google",
                    config=config,
                    created_at=now,
                    updated_at=now,
                )
            )
    return key, jwt_token


def postgres_database(admin_url: str) -> contextlib.AbstractContextManager[str]:
    return empty_postgres_database(admin_url, "meetbot_bench_api")


def start(cmd: list[str], env: dict[str, str], log: Path, base: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, cwd=ROOT)

    def healthy() -> bool:
        assert proc.poll() is None, f"the server exited; see {log}"
        with contextlib.suppress(httpx.TransportError):
            return httpx.get(f"{base}/healthz").status_code == 200
        return False

    wait_for(healthy, 60, "the server")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parse_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, method: str, token: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    script = tmp / f"{method.lower()}.lua"
    body = json.dumps(json.dumps(BOT_BODY)) if method == "POST" else "nil"
    script.write_text(WRK_SCRIPT.format(method=method, token=token, body=body))
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "-s", str(script), url]
    output = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = parse_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = parse_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "req_s": round(rps, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else None,
    }


def bench_database(db_url: str, label: str, args: argparse.Namespace, tmp: Path) -> None:
    key, jwt_token = prepare_database(db_url)
    meetbot_port, bare_port = free_port(), free_port()
    env = clean_env(
        tmp / "data",
        MEETBOT_DATABASE_URL=db_url,
        MEETBOT_SECRET_KEY=SECRET,
        MEETBOT_RATE_LIMIT_PER_MINUTE="100000000",
        MEETBOT_RATE_LIMIT_PER_HOUR="1000000000",
        MEETBOT_LOG_LEVEL="WARNING",
        **dict(item.split("=", 1) for item in args.env),
    )
    meetbot_base = f"http://127.0.0.1:{meetbot_port}"
    cmd = [sys.executable, "-m", "meetbot.cli", "api", "--port", str(meetbot_port)]
    meetbot = start(cmd, env, tmp / f"meetbot-{label}.log", meetbot_base)
    try:
        auth = {"Authorization": f"Bearer {key}"}
        listing = httpx.get(f"{meetbot_base}/api/v1/bots?page_size=20", headers=auth)
        created = httpx.post(f"{meetbot_base}/api/v1/bots", json=BOT_BODY, headers=auth)
        assert listing.status_code == 200 and created.status_code == 201, (listing.text, created.text)
        (tmp / "listing.json").write_bytes(listing.content)
        (tmp / "created.json").write_bytes(created.content)
        bare_base = f"http://127.0.0.1:{bare_port}"
        bodies = [str(tmp / "listing.json"), str(tmp / "created.json")]
        bare_cmd = [sys.executable, "-c", BARE_APP, *bodies, str(bare_port)]
        bare = start(bare_cmd, env, tmp / "bare.log", bare_base)
        try:
            cases = {
                "get-key": ("GET /bots?page_size=20 (API key)", "GET", "/api/v1/bots?page_size=20", key),
                "get-jwt": ("GET /bots?page_size=20 (JWT)", "GET", "/api/v1/bots?page_size=20", jwt_token),
                "post": ("POST /bots (API key)", "POST", "/api/v1/bots", key),
                "healthz": ("GET /healthz (no caller: the app's floor)", "GET", "/healthz", key),
            }
            for case, method, path, token in (cases[name] for name in args.cases.split(",")):
                results: dict[str, list[dict[str, Any]]] = {"bare": [], "meetbot": []}
                for _ in range(args.rounds):  # alternated, so both see the same machine load
                    results["bare"].append(run_wrk(bare_base + path, method, token, args, tmp))
                    results["meetbot"].append(run_wrk(meetbot_base + path, method, token, args, tmp))
                best = {name: max(runs, key=lambda r: r["req_s"]) for name, runs in results.items()}
                line = {
                    "bench": "api",
                    "database": label,
                    "case": case,
                    "connections": args.connections,
                    "meetbot": best["meetbot"],
                    "bare": best["bare"],
                    "ratio": round(best["meetbot"]["req_s"] / best["bare"]["req_s"], 3),
                }
                print(json.dumps(line), flush=True)
        finally:
            stop(bare)
    finally:
        stop(meetbot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="alternations per case (the best of each is shown)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--cases", default="get-key,get-jwt,post", help="any of get-key, get-jwt, post, healthz")
    parser.add_argument("--env", action="append", default=[], help="MEETBOT_X=value for the MeetBot process")
    parser.add_argument(
        "--pg-admin-url", default=os.environ.get("MEETBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    setup = {"duration_s": args.duration, "connections": args.connections, "rounds": args.rounds, "env": args.env}
    print(json.dumps({"bench": "api", "setup": setup}), flush=True)
    for label in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="meetbot-bench-api-", dir="/tmp") as name:
            tmp = Path(name)
            if label == "sqlite":
                bench_database(f"sqlite:///{tmp / 'bench.db'}", label, args, tmp)
            else:
                with postgres_database(args.pg_admin_url) as url:
                    bench_database(url, label, args, tmp)


if __name__ == "__main__":
    main()
