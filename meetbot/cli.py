"""The `meetbot` command: up (everything in one process), api, worker, migrate, users, api-keys, simulator."""

from __future__ import annotations

import argparse
import getpass
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Sequence

from meetbot.settings import Settings, get_settings

log = logging.getLogger("meetbot.cli")
FIRST_USER_EMAIL = "admin@example.com"


def _setup(args: argparse.Namespace) -> Settings:
    from meetbot.logs import configure_logging

    settings = get_settings()
    overrides = {key: getattr(args, key) for key in ("host", "port") if getattr(args, key, None) is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, settings.log_json)
    return settings


def _migrate(settings: Settings) -> None:
    from meetbot.db import migrate

    migrate(settings.effective_database_url)


def _bootstrap_first_user(settings: Settings) -> None:
    """On an empty database, create a local user and print one ready-to-use API key (shown once)."""
    from meetbot.db import get_engine
    from meetbot.domain import accounts

    with get_engine(settings.effective_database_url).begin() as conn:
        if accounts.count_users(conn):
            return
        password = secrets.token_urlsafe(12)
        user = accounts.create_user(conn, FIRST_USER_EMAIL, password, "Local admin")
        _, key = accounts.create_api_key(conn, user.id, "first-run")
    base = f"http://{settings.host}:{settings.port}"
    print(
        "\nMeetBot created a local user (shown once, keep it):\n"
        f"  API key:  {key}\n"
        f"  Login:    {FIRST_USER_EMAIL} / {password}\n"
        f"  Try:      curl -H 'Authorization: Bearer {key}' {base}/api/v1/bots\n"
        f"  Docs:     {base}/docs\n",
        flush=True,
    )


def _serve(settings: Settings, app: object) -> None:
    from meetbot.serving import serve

    serve(app, settings.host, settings.port)


def cmd_up(args: argparse.Namespace) -> int:
    from api.app import create_app
    from api.services import Services
    from meetbot.queue import build_broker
    from workers.process import WorkerProcess

    settings = _setup(args)
    _migrate(settings)
    _bootstrap_first_user(settings)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, bots_per_process=args.bots_per_process or 0)
    workers.start()
    try:
        _serve(settings, create_app(settings, Services.from_settings(settings, broker=broker)))
    finally:
        workers.stop(drain_timeout_s=0)  # one process on a laptop: its bots leave at once and keep their recordings
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    settings = _setup(args)
    if settings.embedded:
        log.warning("no MEETBOT_REDIS_URL: deploys from this API reach no worker; use `meetbot up` for one process")
    workers = args.workers or settings.api_workers
    if workers > 1:
        import os

        from meetbot.serving import API_APP_FACTORY, serve_workers

        # The worker processes read their settings from the environment: the command line's host and port too.
        os.environ.update(MEETBOT_HOST=settings.host, MEETBOT_PORT=str(settings.port))
        metrics_dir = settings.runtime_dir / f"api-{os.getpid()}-metrics"
        serve_workers(API_APP_FACTORY, settings.host, settings.port, workers, metrics_dir)
        return 0
    from api.app import create_app

    _serve(settings, create_app(settings))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from meetbot.queue import build_broker
    from workers.process import WorkerProcess

    settings = _setup(args)
    if settings.embedded:
        print("meetbot worker needs MEETBOT_REDIS_URL (use `meetbot up` for the embedded mode)", file=sys.stderr)
        return 2
    queues = set(filter(None, args.queues.split(","))) if args.queues else None
    if queues is None or "transcribe" in queues:
        from meetbot.errors import TranscriptionError
        from meetbot.transcription.engine import resolve_model_dir

        try:  # a model that is not on this machine is said at start, not at the first job
            resolve_model_dir(settings.whisper_model)
        except TranscriptionError as exc:
            print(f"meetbot worker: {exc.detail}", file=sys.stderr)
            return 2
    workers = WorkerProcess(settings, build_broker(settings), queues, args.bots_per_process or 0)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workers.start()
    stop.wait()
    workers.stop()
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from pathlib import Path

    from meetbot.fleet import FleetError, run_fleet

    settings = _setup(args)
    try:
        return run_fleet(settings, Path(args.procfile).resolve(), args.only, args.concurrency, not args.no_release)
    except FleetError as exc:
        print(f"meetbot fleet: {exc.detail}", file=sys.stderr)
        return 2


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _setup(args)
    _migrate(settings)
    print("database is up to date")
    return 0


def _read_new_password(from_stdin: bool) -> str | None:
    """The new user's password: from stdin (--password-stdin, or when stdin is not a terminal) or a prompt typed
    twice; never from argv, where other users see it in the process list and it stays in the shell's history.
    None (after saying why on stderr) when there is none."""
    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            print("error: the passwords differ", file=sys.stderr)
            return None
    if not password:
        print("error: no password given (type it at the prompt, or pipe it with --password-stdin)", file=sys.stderr)
        return None
    if not 8 <= len(password) <= 256:  # the same rule as POST /auth/register
        print("error: the password must be 8 to 256 characters long", file=sys.stderr)
        return None
    return password


def cmd_users_create(args: argparse.Namespace) -> int:
    from meetbot.db import get_engine
    from meetbot.domain import accounts
    from meetbot.errors import MeetBotError

    password = _read_new_password(args.password_stdin)
    if password is None:
        return 2
    settings = _setup(args)
    _migrate(settings)
    try:
        with get_engine(settings.effective_database_url).begin() as conn:
            user = accounts.create_user(conn, args.email, password, args.name or args.email)
    except MeetBotError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 1
    print(f"user {user.id} created: {user.email}")
    return 0


def cmd_api_keys_create(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from meetbot.db import get_engine
    from meetbot.db.tables import users
    from meetbot.domain import accounts

    settings = _setup(args)
    _migrate(settings)
    with get_engine(settings.effective_database_url).begin() as conn:
        user_id = conn.execute(sa.select(users.c.id).where(users.c.email == args.email.strip().lower())).scalar()
        if user_id is None:
            print(f"error: no user {args.email}", file=sys.stderr)
            return 1
        _, key = accounts.create_api_key(conn, user_id, args.name)
    print(key)
    return 0


def cmd_simulator(args: argparse.Namespace) -> int:
    from meetbot.simulator.app import run

    settings = _setup(argparse.Namespace())
    run(args.host or settings.simulator_host, args.port or settings.simulator_port)
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meetbot", description="Self-hostable meeting bots.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="API and every worker in one process (embedded defaults)")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--bots-per-process", type=int)
    up.set_defaults(func=cmd_up)

    api = sub.add_parser("api", help="the HTTP API alone")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument(
        "--workers", type=_positive_int, help="worker processes on the port (default: MEETBOT_API_WORKERS, 1)"
    )
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="a worker process (needs MEETBOT_REDIS_URL)")
    worker.add_argument("--queues", help="comma-separated: bots,transcribe,summarize,webhooks,maintenance")
    worker.add_argument("--bots-per-process", type=int)
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(func=cmd_migrate)

    fleet = sub.add_parser("fleet", help="the Procfile's process types together (honcho), after its release step")
    fleet.add_argument("--procfile", default="Procfile")
    fleet.add_argument("--only", help="comma-separated process types (default: all but release)")
    fleet.add_argument("--concurrency", help="processes per type, e.g. worker=2,api=1")
    fleet.add_argument("--no-release", action="store_true", help="skip the release step (meetbot migrate)")
    fleet.set_defaults(func=cmd_fleet)

    users = sub.add_parser("users", help="manage users").add_subparsers(dest="action", required=True)
    create_user = users.add_parser("create", allow_abbrev=False)  # "--password" must not pass as --password-stdin
    create_user.add_argument("--email", required=True)
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (else a prompt asks for it)"
    )
    create_user.add_argument("--name")
    create_user.set_defaults(func=cmd_users_create)

    keys = sub.add_parser("api-keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create_key = keys.add_parser("create")
    create_key.add_argument("--email", required=True)
    create_key.add_argument("--name", default="cli")
    create_key.set_defaults(func=cmd_api_keys_create)

    simulator = sub.add_parser("simulator", help="the meeting simulator (Meet/Zoom/Teams look-alikes)")
    simulator.add_argument("--host")
    simulator.add_argument("--port", type=int)
    simulator.set_defaults(func=cmd_simulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
