"""The spool's layout: spool/<host>/<bot id> folders (and old-layout spool/<bot id>), and moving a folder aside."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("meetbot.bot")
FAILED_FOLDER = "failed"  # spool/<host>/failed/<bot id>: folders that could not be recovered, kept for a person
SPOOL_LOCK_SPACE = 0x5B001  # the first key of the PostgreSQL advisory locks that claim a bot's folder for recovery


@dataclass(frozen=True)
class SpoolFolder:
    """One bot's spool folder; host None for the old layout (spool/<bot id>), written before folders named a host."""

    path: Path
    bot_id: int
    host: str | None


def spool_folders(root: Path) -> list[SpoolFolder]:
    """Every bot folder under the spool root, of every host.

    A digit-named folder directly under the root is an old-layout bot folder unless it holds bot folders itself
    (a host whose name is all digits).
    """
    found: list[SpoolFolder] = []
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        children = [child for child in entry.iterdir() if child.is_dir()]
        if entry.name.isdigit() and not any(c.name.isdigit() or c.name == FAILED_FOLDER for c in children):
            found.append(SpoolFolder(entry, int(entry.name), None))
            continue
        found += [SpoolFolder(c, int(c.name), entry.name) for c in sorted(children) if c.name.isdigit()]
    return found


def move_aside(root: Path, folder: SpoolFolder, host: str, reason: str) -> Path | None:
    """Move a folder that cannot be recovered to spool/<host>/failed/<bot id> (a suffix if that is taken), once:
    the recovery never looks there again. None if it could not be moved (it is then tried on the next pass)."""
    failed = root / host / FAILED_FOLDER
    target = failed / str(folder.bot_id)
    if target.exists():
        target = failed / f"{folder.bot_id}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    try:
        failed.mkdir(parents=True, exist_ok=True)
        folder.path.rename(target)
    except OSError:
        log.exception("spool folder could not be moved aside", extra={"bot_id": folder.bot_id})
        return None
    log.warning("spool folder moved aside: %s", reason, extra={"bot_id": folder.bot_id, "folder": str(target)})
    return target
