"""Process ownership and bookkeeping through psutil: exact tags, pids pinned by start time, trees, cleanup, PSS, CPU."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import psutil

# Every process a bot starts (Xvfb, chromedriver, Chromium and its helpers, ffmpeg) carries BOT_TAG_ENV=<BotTag> in
# its environment; a worker's own daemons (D-Bus, PulseAudio) carry WORKER_TAG_ENV=<worker id>. Children inherit
# both, so re-parented strays are still found, and only by their exact owner.
BOT_TAG_ENV = "MEETBOT_BOT_TAG"
WORKER_TAG_ENV = "MEETBOT_WORKER_TAG"
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class BotTag:
    """Who owns a bot's process: the host, the bot, and the run (worker pid and a per-run token)."""

    host: str
    bot_id: int
    run: str

    def __str__(self) -> str:
        return f"{self.host}/{self.bot_id}/{self.run}"

    @classmethod
    def parse(cls, value: str | None) -> BotTag | None:
        host, _, rest = (value or "").partition("/")
        bot_id, _, run = rest.partition("/")
        if not _HOST.match(host) or not bot_id.isdigit() or not run or "/" in run:
            return None
        return cls(host, int(bot_id), run)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` plus this tag: the environment to start one of the bot's processes with."""
        return {**base, BOT_TAG_ENV: str(self)}


@dataclass(frozen=True)
class ProcRef:
    """A pid plus its start time, so a recycled pid is never signalled by mistake."""

    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcRef | None:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return None

    def process(self) -> psutil.Process | None:
        """The live process, or None once it exited, became a zombie or its pid went to another process."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() != self.started or proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return None
            return proc
        except psutil.Error:
            return None

    def alive(self) -> bool:
        return self.process() is not None

    def signal(self, sig: int) -> None:
        if proc := self.process():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)


def _ref(proc: psutil.Process) -> ProcRef | None:
    try:
        return ProcRef(proc.pid, proc.create_time())
    except psutil.Error:
        return None


def descendants(root: int) -> list[ProcRef]:
    """Every live process below pid `root` (not root itself)."""
    try:
        children = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []
    return [ref for child in children if (ref := _ref(child)) and ref.alive()]


def _processes_where(test: Callable[[psutil.Process], bool]) -> list[ProcRef]:
    found: list[ProcRef] = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if test(proc) and (ref := _ref(proc)) and ref.alive():
                found.append(ref)
    return found


@lru_cache(maxsize=256)
def _path_pattern(path: str) -> re.Pattern[str]:
    # The path as a whole path: not preceded by another path character, followed by "/" or the argument's end.
    return re.compile(r"(?<![\w.~/-])" + re.escape(path.rstrip("/")) + r"(?=/|$)")


def processes_matching(path: str) -> list[ProcRef]:
    """Live processes with `path` (or a path below it) in one of their arguments, matched at its boundaries:
    `spool/12` finds `--user-data-dir=…/spool/12/browser` and `…/spool/12/recording.mp4`, never `…/spool/123`."""
    pattern = _path_pattern(path)
    return _processes_where(lambda proc: any(pattern.search(arg) for arg in proc.cmdline()))


def processes_owned_by(owner: str, variable: str = "MEETBOT_OWNER") -> list[ProcRef]:
    """Live processes whose environment says exactly `variable=owner` (by default the spool folder an Xvfb was
    started for: desktop.OWNER_ENV)."""
    return _processes_where(lambda proc: proc.environ().get(variable) == owner)


def processes_of_bot(host: str, bot_id: int) -> list[ProcRef]:
    """Live processes tagged as bot `bot_id` of `host` (any run of it), compared part by part."""

    def owned(proc: psutil.Process) -> bool:
        tag = BotTag.parse(proc.environ().get(BOT_TAG_ENV))
        return tag is not None and tag.host == host and tag.bot_id == bot_id

    return _processes_where(owned)


def kill_all(refs: Iterable[ProcRef], grace: float = 2.0) -> None:
    """SIGTERM every process still alive, wait up to `grace` seconds, then SIGKILL the rest."""
    pending = [ref for ref in refs if ref.alive()]
    for ref in pending:
        ref.signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [ref for ref in pending if ref.alive()]
    for ref in pending:
        ref.signal(signal.SIGKILL)


def pss_bytes(refs: Iterable[ProcRef]) -> int:
    """Proportional set size of the given live processes together."""
    total = 0
    for ref in refs:
        if proc := ref.process():
            with contextlib.suppress(psutil.Error, AttributeError):
                total += proc.memory_full_info().pss
    return total


def cpu_seconds(refs: Iterable[ProcRef]) -> float:
    """User + system CPU time the given live processes have used so far."""
    total = 0.0
    for ref in refs:
        if proc := ref.process():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


def command_name(ref: ProcRef) -> str:
    proc = ref.process()
    try:
        return proc.name() if proc else ""
    except psutil.Error:
        return ""
