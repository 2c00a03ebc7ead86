"""`meetbot fleet`: the Procfile's process types run together under honcho, as a fleet runs them on many hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from honcho.environ import expand_processes, parse_procfile
from honcho.manager import Manager

from meetbot.errors import MeetBotError
from meetbot.settings import Settings

RELEASE = "release"  # run once, to completion, before the others start (Heroku's meaning)


class FleetError(MeetBotError):
    """The Procfile cannot be run as asked."""


def parse_concurrency(text: str | None) -> dict[str, int]:
    """`worker=2,api=1` → {"worker": 2, "api": 1}."""
    counts: dict[str, int] = {}
    for part in filter(None, (text or "").split(",")):
        name, _, count = part.partition("=")
        if not count.strip().isdigit() or int(count) < 1:
            raise FleetError(f"--concurrency wants type=count (count ≥ 1), not {part!r}")
        counts[name.strip()] = int(count)
    return counts


def process_types(procfile: Path, only: str | None) -> dict[str, str]:
    """The Procfile's process types (the release one aside), or the named ones of them."""
    if not procfile.is_file():
        raise FleetError(f"no Procfile at {procfile}")
    declared: dict[str, str] = dict(parse_procfile(procfile.read_text()).processes)
    wanted = [name.strip() for name in only.split(",")] if only else [name for name in declared if name != RELEASE]
    unknown = [name for name in wanted if name not in declared or name == RELEASE]
    if unknown:
        raise FleetError(f"not a process type of {procfile}: {', '.join(unknown)}")
    return {name: declared[name] for name in wanted}


def run_fleet(
    settings: Settings, procfile: Path, only: str | None, concurrency: str | None, release: bool = True
) -> int:
    """Run the release command, then every process type until SIGINT/SIGTERM or one of them exits."""
    if settings.embedded:
        raise FleetError("meetbot fleet needs MEETBOT_REDIS_URL (and a shared database and storage)")
    types = process_types(procfile, only)
    counts = parse_concurrency(concurrency)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # this install's `meetbot`
    release_command = dict(parse_procfile(procfile.read_text()).processes).get(RELEASE)
    if release and release_command:
        finished = subprocess.run(release_command, shell=True, env=env, cwd=procfile.parent, check=False)
        if finished.returncode != 0:
            return finished.returncode
    manager = Manager()
    for process in expand_processes(types, concurrency=counts, env=env, port=settings.port):
        manager.add_process(process.name, process.cmd, quiet=process.quiet, env=process.env, cwd=str(procfile.parent))
    manager.loop()
    return int(manager.returncode or 0)
