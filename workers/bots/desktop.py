"""Per-worker desktop plumbing: a private D-Bus bus, a PulseAudio daemon with null sinks, Xvfb displays."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from meetbot.errors import BotError
from workers.bots.processes import BOT_TAG_ENV, WORKER_TAG_ENV, BotTag

# Linux caps sun_path at 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_SINK_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


# ---------------------------------------------------------------- process helpers (shared by bots/)


def terminate(
    proc: subprocess.Popen[bytes] | None, timeout: float = 5.0, sig: int = signal.SIGTERM, close: bool = True
) -> None:
    """Send `sig` to a child we spawned, wait up to `timeout`, then SIGKILL; always reaps it."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr) if close else ():
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        raise BotError(f"socket path too long for a unix socket: {path}", sub_code="internal_error")


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def spawn(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen in its own session (a Ctrl-C on the worker's terminal must not hit it), stdin closed."""
    kwargs.setdefault("stdout", subprocess.DEVNULL)
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)
    except OSError as exc:
        raise BotError(f"{cmd[0]} failed to start: {exc}", sub_code="internal_error") from exc


def spawn_reporting(
    make_cmd: Callable[[int], list[str]], timeout: float, **kwargs: Any
) -> tuple[subprocess.Popen[bytes], str | None]:
    """Spawn make_cmd(fd) and return it with the first line it writes to fd (None on exit or timeout)."""
    read_fd, write_fd = os.pipe()
    try:
        try:
            proc = spawn(make_cmd(write_fd), pass_fds=(write_fd,), **kwargs)
        finally:
            os.close(write_fd)
        return proc, _read_line(read_fd, timeout)
    finally:
        os.close(read_fd)


def _read_line(fd: int, timeout: float) -> str | None:
    """The first line written to pipe `fd`, or None on EOF / timeout; the write end must be closed here."""
    buf = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 256)
        if not chunk:
            return None
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace").strip()


class Lifecycle:
    """start()/stop() plus context-manager glue: __enter__ starts (and cleans up if that fails)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- D-Bus


class SessionBus(Lifecycle):
    """A private D-Bus session bus for one worker process (Chromium logs bus errors without one)."""

    def __init__(self, runtime_dir: Path, timeout: float = 10.0, worker_tag: str | None = None) -> None:
        self.worker_tag = worker_tag  # the worker id, as WORKER_TAG_ENV: how a dead worker's daemon is found
        self.dir = Path(runtime_dir) / "dbus"
        self.socket = self.dir / "bus"
        self.config = self.dir / "session.conf"
        self.timeout = timeout
        self.address: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"DBUS_SESSION_BUS_ADDRESS": self.address} if self.address else {}

    def start(self) -> Self:
        # --nofork instead of the recipe's --fork: the daemon stays our child, so stop() reaps it (a forked
        # one is re-parented to pid 1, which in a container often never reaps it).
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        _check_socket_path(self.socket)
        self.socket.unlink(missing_ok=True)
        # Our own config instead of --session: the same bus minus service activation, which would have the
        # bus double-fork at-spi-bus-launcher for Chromium, out of reach of stop().
        self.config.write_text(_BUS_CONFIG.format(socket=self.socket))
        args = ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile"]
        env = {**os.environ, WORKER_TAG_ENV: self.worker_tag} if self.worker_tag else None
        self.proc, line = spawn_reporting(lambda fd: [*args, f"--print-address={fd}"], self.timeout, env=env)
        if not line:
            self.stop()
            raise BotError("dbus-daemon did not report its address", sub_code="internal_error")
        self.address = line
        return self

    def stop(self) -> None:
        terminate(self.proc, timeout=2.0)
        self.proc = None
        self.address = None
        self.socket.unlink(missing_ok=True)


# ---------------------------------------------------------------- PulseAudio


@dataclass
class NullSink:
    """One bot's PulseAudio null sink; Chromium plays into it and ffmpeg records its monitor."""

    name: str
    module_id: int
    server: PulseAudioServer = field(repr=False)
    removed: bool = False

    @property
    def monitor(self) -> str:
        return f"{self.name}.monitor"

    def remove(self) -> None:
        if self.removed:
            return
        self.removed = True
        if self.server.running:
            self.server.pactl("unload-module", str(self.module_id), check=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()


class PulseAudioServer(Lifecycle):
    """One PulseAudio daemon per worker process, private sockets and state under runtime_dir/pulse."""

    IDLE_SINK = "meetbot_idle"

    def __init__(self, runtime_dir: Path, timeout: float = 10.0, worker_tag: str | None = None) -> None:
        self.worker_tag = worker_tag  # WORKER_TAG_ENV in the daemon's environment, as for the SessionBus
        self.dir = Path(runtime_dir) / "pulse"
        self.socket = self.dir / "native"
        self.runtime_path = self.dir / "runtime"
        self.home = self.dir / "home"
        self.config_file = self.dir / "meetbot.pa"
        self.client_config = self.dir / "client.conf"
        self.log_file = self.dir / "pulseaudio.log"
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """Variables a child needs to talk to this daemon (and never autospawn another)."""
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.client_config),
            "PULSE_RUNTIME_PATH": str(self.runtime_path),
        }

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _daemon_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DBUS_"))}
        env.update(
            HOME=str(self.home),
            XDG_RUNTIME_DIR=str(self.runtime_path),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            PULSE_RUNTIME_PATH=str(self.runtime_path),
            PULSE_STATE_PATH=str(self.dir / "state"),
            PULSE_CLIENTCONFIG=str(self.client_config),
        )
        if self.worker_tag:
            env[WORKER_TAG_ENV] = self.worker_tag
        return env

    def _write_config(self) -> None:
        for path in (self.runtime_path, self.home, self.dir / "state"):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.client_config.write_text("autospawn = no\n")
        idle = self.IDLE_SINK
        self.config_file.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name={idle} rate=48000 channels=2"
            f" sink_properties=device.description={idle}\n"
            f"set-default-sink {idle}\n"
            f"set-default-source {idle}.monitor\n"
        )

    def start(self) -> Self:
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        _check_socket_path(self.socket)
        self.socket.unlink(missing_ok=True)
        self._write_config()
        cmd = ["pulseaudio", "-n", "-F", str(self.config_file), "--exit-idle-time=-1", "--daemonize=no"]
        cmd += ["--system=no", "--use-pid-file=no", "--realtime=no", "--high-priority=no", "--log-target=stderr"]
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        try:
            self.proc = spawn(cmd, env=self._daemon_env(), stdout=self._log, stderr=self._log)
        except BotError:
            self.stop()
            raise
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.stop()
                raise BotError(f"pulseaudio exited (rc={rc}): {_tail(self.log_file)}", sub_code="internal_error")
            if self.socket.exists() and self.pactl("info", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise BotError("pulseaudio did not answer in time", sub_code="internal_error")
            time.sleep(0.05)

    def client_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                ["pactl", *args],
                env=self.client_env(),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            if check:
                raise BotError(f"pactl {' '.join(args)} failed: {exc}", sub_code="internal_error") from exc
            return subprocess.CompletedProcess(["pactl", *args], 1, "", str(exc))
        if check and done.returncode != 0:
            raise BotError(f"pactl {' '.join(args)} failed: {done.stderr.strip()[-500:]}", sub_code="internal_error")
        return done

    def create_sink(self, name: str) -> NullSink:
        if not _SINK_NAME.match(name) or name == self.IDLE_SINK:
            raise BotError(f"invalid sink name {name!r}", sub_code="internal_error")
        if not self.running:
            raise BotError("pulseaudio is not running", sub_code="internal_error")
        args = [f"sink_name={name}", "rate=48000", "channels=2", f"sink_properties=device.description={name}"]
        done = self.pactl("load-module", "module-null-sink", *args)
        return NullSink(name=name, module_id=int(done.stdout.strip()), server=self)

    def stop(self) -> None:
        terminate(self.proc, timeout=5.0)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.socket.unlink(missing_ok=True)


# ---------------------------------------------------------------- Xvfb


OWNER_ENV = "MEETBOT_OWNER"


class XvfbDisplay(Lifecycle):
    """One virtual X display per bot; Xvfb picks a free display number itself (-displayfd)."""

    def __init__(
        self, width: int, height: int, timeout: float = 10.0, owner: str | None = None, tag: BotTag | None = None
    ) -> None:
        self.width = width
        self.height = height
        self.timeout = timeout
        self.owner = owner  # in Xvfb's environment as OWNER_ENV, and the tag as BOT_TAG_ENV: how leftovers are found
        self.tag = tag
        self.display: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None

    def start(self) -> Self:
        if self.proc is not None and self.proc.poll() is None:
            return self
        # stderr to an unlinked temp file, not a pipe: a pipe nobody drains would stall Xvfb later.
        self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        args = ["-screen", "0", f"{self.width}x{self.height}x24", "-nolisten", "tcp", "-ac", "-noreset"]
        # Chromium runs with --disable-gpu; without GLX, Xvfb loads no Mesa drivers: ~50 MB less per bot.
        args += ["-extension", "GLX"]
        try:
            tags = {OWNER_ENV: self.owner, BOT_TAG_ENV: str(self.tag) if self.tag else None}
            env = {**os.environ, **{name: value for name, value in tags.items() if value}}
            self.proc, line = spawn_reporting(
                lambda fd: ["Xvfb", "-displayfd", str(fd), *args], self.timeout, stderr=self._err, env=env
            )
        except BotError:
            self.stop()
            raise
        if not line or not line.isdigit():
            self._err.seek(0)
            err = self._err.read()[-500:].decode(errors="replace")
            self.stop()
            raise BotError(f"Xvfb did not report a display: {err}", sub_code="internal_error")
        self.display = f":{line}"
        return self

    def stop(self) -> None:
        terminate(self.proc, timeout=5.0)
        self.proc = None
        self.display = None
        if self._err is not None:
            self._err.close()
            self._err = None
