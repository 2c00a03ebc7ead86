"""Helpers shared by the browser tests: free ports, espeak-ng speech, the simulator's control API."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from meetbot.settings import Settings
from meetbot.simulator import create_app

SPEECH = {
    "alice.wav": "Hello everyone, this is Alice speaking in the simulated meeting.",
    "bob.wav": "Thanks Alice. Bob here, the quarterly numbers look good.",
    "host.wav": "Welcome to the weekly sync. Let us begin.",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_speech(media: Path) -> Path:
    media.mkdir(parents=True, exist_ok=True)
    for name, text in SPEECH.items():
        subprocess.run(["espeak-ng", "-w", str(media / name), text], check=True, capture_output=True)
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


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)
