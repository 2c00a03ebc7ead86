"""Process-tree bookkeeping on /proc: pids pinned by start time, descendants, cleanup, memory (PSS), CPU."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcRef:
    """A pid plus its kernel start time, so a recycled pid is never signalled by mistake."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcRef | None:
        fields = _stat_fields(pid)
        return cls(pid, int(fields[19])) if fields else None

    def alive(self) -> bool:
        fields = _stat_fields(self.pid)
        return bool(fields) and int(fields[19]) == self.start_ticks and fields[0] not in ("Z", "X")

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; comm may hold spaces, so split after the last ')'."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def descendants(root: int) -> list[ProcRef]:
    """Every live process below pid `root` (not root itself), from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[ProcRef] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if ref := ProcRef.of(pid):
            found.append(ref)
        stack.extend(children.get(pid, []))
    return found


def processes_matching(needle: str) -> list[ProcRef]:
    """Live processes whose command line contains `needle` (finds a session's re-parented strays)."""
    found: list[ProcRef] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if needle.encode() in cmdline and (ref := ProcRef.of(int(entry.name))) and ref.alive():
            found.append(ref)
    return found


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
    """Proportional set size of the given processes together (from /proc/<pid>/smaps_rollup)."""
    total = 0
    for ref in refs:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{ref.pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def cpu_seconds(refs: Iterable[ProcRef]) -> float:
    """User + system CPU time the given live processes have used so far."""
    ticks = 0
    for ref in refs:
        if fields := _stat_fields(ref.pid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def command_name(ref: ProcRef) -> str:
    try:
        return Path(f"/proc/{ref.pid}/comm").read_text().strip()
    except OSError:
        return ""


def processes_owned_by(owner: str, variable: str = "MEETBOT_OWNER") -> list[ProcRef]:
    """Live processes whose environment says `variable=owner` (Xvfb's command line names no path)."""
    needle = f"{variable}={owner}".encode()
    found: list[ProcRef] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and (ref := ProcRef.of(int(entry.name))) and ref.alive():
            found.append(ref)
    return found
