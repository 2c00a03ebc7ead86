"""Recording storage benchmark: serving a large recording through the API (local and S3) and uploading one to S3.

Side by side in one run, alternating (reference, MeetBot local, MeetBot S3, …) --repeat times, medians reported:
a bare Starlette FileResponse of the same file (the reference), MeetBot's /stream (whole body and 1 MB ranges)
and /download URL on the local store and on S3 (SeaweedFS `weed mini`), with each server's peak RSS growth; then
the time to put a 1-hour-sized recording from the spool into S3. Prints JSON lines; it asserts nothing. Example:

    python bench/storage.py --size-mb 500 --hour-mb 450 --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from meetbot.db import get_engine, migrate
from meetbot.domain.recordings import StoredRecording, save_recording
from meetbot.storage import ObjectStore, recording_key, store_from_url
from tests.support import clean_env, free_port, running_seaweedfs, wait_for

MB = 1024 * 1024
REFERENCE_FILE = "BENCH_REFERENCE_FILE"
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def reference_app() -> Starlette:
    """The reference server (a uvicorn factory): one FileResponse of the file named in $BENCH_REFERENCE_FILE."""
    path = os.environ[REFERENCE_FILE]

    async def file(_request: Request) -> Response:
        return FileResponse(path, media_type="video/mp4")

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/file", file), Route("/healthz", healthz)])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class PeakRss:
    """Samples a process's VmRSS every 50 ms in a thread; growth_mb: the peak minus the value before."""

    def __init__(self, pid: int) -> None:
        self.pid, self.stop, self.growth_mb = pid, threading.Event(), 0.0
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> PeakRss:
        self.base = self.peak = rss_mb(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.growth_mb = round(max(self.peak, rss_mb(self.pid)) - self.base, 1)


class Server:
    """A uvicorn server (one worker) in its own process on a free loopback port, stopped when `stack` closes."""

    def __init__(self, stack: contextlib.ExitStack, args: list[str], env: dict[str, str], log: Path) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        cmd = [sys.executable, *args, "--host", "127.0.0.1", "--port", self.base.rsplit(":", 1)[1]]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
        stack.callback(self.close)
        self.log = log
        wait_for(self._healthy, 60, f"{args[:3]} at {self.base}", interval=0.2)

    def _healthy(self) -> bool:
        assert self.proc.poll() is None, f"server exited: {self.log.read_text()[-3000:]}"
        try:
            return httpx.get(f"{self.base}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self.proc.terminate()  # neither server has children
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def random_file(path: Path, size_mb: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(MB))
    return path


def get_full(client: httpx.Client, url: str, headers: dict[str, str], size: int) -> int:
    with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, f"{url}: {response.status_code}"
        received = sum(len(chunk) for chunk in response.iter_raw())
    assert received == size, f"{url}: {received} of {size} bytes"
    return received


def get_ranges(client: httpx.Client, url: str, headers: dict[str, str], size: int) -> int:
    received = 0
    for start in range(0, size, MB):
        end = min(start + MB, size) - 1
        with client.stream("GET", url, headers={**headers, "Range": f"bytes={start}-{end}"}) as response:
            assert response.status_code == 206, f"{url} range {start}: {response.status_code}"
            received += sum(len(chunk) for chunk in response.iter_raw())
    assert received == size, f"{url}: {received} of {size} bytes in ranges"
    return received


def check_bytes(client: httpx.Client, url: str, headers: dict[str, str], source: Path) -> None:
    """A few ranges of the served object compared with the file (outside the timings)."""
    size = source.stat().st_size
    with source.open("rb") as file:
        for start in (0, size // 3, size - MB // 2):
            file.seek(start)
            expected = file.read(MB)
            response = client.get(url, headers={**headers, "Range": f"bytes={start}-{start + MB - 1}"})
            assert response.status_code == 206 and response.content == expected, f"{url}: wrong bytes at {start}"


class MeetBot:
    """Two `meetbot api` processes (local store, S3 store) on one SQLite database, each with a stored recording."""

    def __init__(self, stack: contextlib.ExitStack, tmp: Path, s3_url: str, source: Path, log: Path) -> None:
        data = tmp / "data"
        self.db_url = f"sqlite:///{data / 'meetbot.db'}"
        data.mkdir()
        migrate(self.db_url)
        stores = {"local": f"file://{data / 'storage'}", "s3": s3_url}
        common = {"MEETBOT_DATABASE_URL": self.db_url, "MEETBOT_SECRET_KEY": uuid.uuid4().hex * 2}
        common |= {"MEETBOT_RATE_LIMIT_PER_MINUTE": "1000000", "MEETBOT_RATE_LIMIT_PER_HOUR": "100000000"}
        self.servers: dict[str, Server] = {}
        for name, url in stores.items():
            env = clean_env(data, MEETBOT_STORAGE_URL=url, **common)
            self.servers[name] = Server(stack, ["-m", "meetbot.cli", "api"], env, log)
        api = self.servers["local"].base + "/api/v1"
        email, password = f"bench-{uuid.uuid4().hex[:6]}@example.com", "benchmark storage!"
        httpx.post(f"{api}/auth/register", json={"email": email, "password": password, "name": "Bench"})
        token = httpx.post(f"{api}/auth/login", json={"email": email, "password": password}).json()["accessToken"]
        auth = {"Authorization": f"Bearer {token}"}
        key = httpx.post(f"{api}/api-keys", json={"name": "bench"}, headers=auth).json()["key"]
        self.headers = {"Authorization": f"Bearer {key}"}
        user_id = httpx.get(f"{api}/users/me", headers=self.headers).json()["id"]
        meeting = {"meetingInfo": {"platform": "google", "meetingUrl": "https://meet.google.com/abc-defg-hij"}}
        self.bots: dict[str, int] = {}
        self.stores: dict[str, ObjectStore] = {}
        for name, url in stores.items():
            bot_id = httpx.post(f"{api}/bots", json=meeting, headers=self.headers).json()["id"]
            store = store_from_url(url)
            key_ = recording_key(user_id, bot_id)
            info = store.put_file(key_, source, "video/mp4")  # what workers.bots.recording.store_recording does
            stored = StoredRecording(key_, "video/mp4", info.size, 3600.0, [], None)
            with get_engine(self.db_url).begin() as conn:
                save_recording(conn, bot_id, user_id, stored, None)
            self.bots[name], self.stores[name] = bot_id, store
        self.local_file = data / "storage" / recording_key(user_id, self.bots["local"])

    def url(self, store: str, what: str) -> str:
        return f"{self.servers[store].base}/api/v1/recordings/{self.bots[store]}/{what}"

    def download_url(self, store: str) -> str:
        response = httpx.get(self.url(store, "download"), headers=self.headers)
        assert response.status_code == 200, response.text
        return str(response.json()["url"])


Case = tuple[str, int, Callable[[], int]]  # (name, pid of the serving process, transfer → bytes)


def cases(client: httpx.Client, ref: Server, bot: MeetBot, size: int) -> list[list[Case]]:
    """The cases in groups, one group per server, in the order they alternate."""
    ref_url, pid = f"{ref.base}/file", ref.proc.pid
    full, ranges = "reference FileResponse full", "reference FileResponse 1MB ranges"
    groups = [[(full, pid, partial(get_full, client, ref_url, {}, size))]]
    groups[0].append((ranges, pid, partial(get_ranges, client, ref_url, {}, size)))
    for store in ("local", "s3"):
        pid, url, name = bot.servers[store].proc.pid, bot.url(store, "stream"), f"meetbot {store}"
        download = lambda s=store: get_full(client, bot.download_url(s), {}, size)  # noqa: E731 (a fresh URL)
        served_by = "API-signed /file" if store == "local" else "presigned, served by SeaweedFS"
        groups.append([
            (f"{name} /stream full", pid, partial(get_full, client, url, bot.headers, size)),
            (f"{name} /stream 1MB ranges", pid, partial(get_ranges, client, url, bot.headers, size)),
            (f"{name} /download URL ({served_by})", pid, download),
        ])  # fmt: skip
    return groups


def measure(name: str, pid: int, run: int, transfer: Callable[[], int]) -> dict[str, Any]:
    with PeakRss(pid) as memory:
        started = time.perf_counter()
        received = transfer()
        seconds = time.perf_counter() - started
    figure = {"case": name, "run": run, "mb_per_s": round(received / MB / seconds, 1), "seconds": round(seconds, 2)}
    figure["server_rss_growth_mb"] = memory.growth_mb
    print(json.dumps(figure), flush=True)
    return figure


def upload_hour(store: ObjectStore, tmp: Path, hour_mb: int) -> dict[str, Any]:
    path = random_file(tmp / "hour.mp4", hour_mb)
    with PeakRss(os.getpid()) as memory:
        started = time.perf_counter()
        store.put_file("bench/one-hour-recording.mp4", path, "video/mp4")
        seconds = time.perf_counter() - started
    store.delete("bench/one-hour-recording.mp4")
    path.unlink()
    figure = {
        "case": "upload 1 h recording spool -> S3 (store.put_file)",
        "file": f"{hour_mb} MB of random bytes (the size of 1 h of 720p15 recording, not real video)",
        "seconds": round(seconds, 2),
        "mb_per_s": round(hour_mb / seconds, 1),
        "bench_rss_growth_mb": memory.growth_mb,
    }
    print(json.dumps(figure), flush=True)
    return figure


def summarize(figures: list[dict[str, Any]], upload: dict[str, Any]) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for figure in figures:
        runs.setdefault(figure["case"], []).append(figure)
    speed = {case: round(statistics.median(f["mb_per_s"] for f in found), 1) for case, found in runs.items()}
    memory = {case: max(f["server_rss_growth_mb"] for f in found) for case, found in runs.items()}
    full = speed["meetbot local /stream full"] / speed["reference FileResponse full"]
    ranges = speed["meetbot local /stream 1MB ranges"] / speed["reference FileResponse 1MB ranges"]
    worst = max(growth for case, growth in memory.items() if case.startswith("meetbot"))
    return {
        "summary": "medians of MB/s, max of RSS growth over the runs",
        "median_mb_per_s": speed,
        "max_server_rss_growth_mb": memory,
        "local_stream_over_fileresponse": {"full": round(full, 2), "ranges": round(ranges, 2), "target": ">= 0.8"},
        "ratios_met": full >= 0.8 and ranges >= 0.8,
        "meetbot_max_rss_growth_mb": {"value": worst, "target": "< 50", "met": worst < 50},
        "upload_1h_to_s3": {k: upload[k] for k in ("seconds", "mb_per_s", "bench_rss_growth_mb")},
    }


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500, help="size of the served object (random bytes)")
    parser.add_argument("--hour-mb", type=int, default=450, help="size of the 1-hour recording uploaded to S3")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of every case; medians reported")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)  # a TERM cleans up like Ctrl-C

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meetbot-bench-storage-", dir="/tmp")))
        log = tmp / "servers.log"
        weed = stack.enter_context(running_seaweedfs(tmp / "weed"))
        source = random_file(tmp / "recording.mp4", args.size_mb)
        bot = MeetBot(stack, tmp, weed.server.url("bench-recordings"), source, log)
        source.unlink()  # the local store's copy is the file every server serves from local disk
        env = os.environ | {REFERENCE_FILE: str(bot.local_file)}
        factory = ["-m", "uvicorn", "bench.storage:reference_app", "--factory", "--workers", "1", "--no-access-log"]
        ref = Server(stack, factory, env, log)
        client = stack.enter_context(httpx.Client(timeout=TIMEOUT))
        size = bot.local_file.stat().st_size
        check_bytes(client, f"{ref.base}/file", {}, bot.local_file)
        for store in ("local", "s3"):
            check_bytes(client, bot.url(store, "stream"), bot.headers, bot.local_file)
            check_bytes(client, bot.download_url(store), {}, bot.local_file)
        print(json.dumps({"setup": f"{args.size_mb} MB object of random bytes, servers: uvicorn, 1 worker each"}))
        figures = []
        for run in range(1, args.repeat + 1):
            for group in cases(client, ref, bot, size):
                figures += [measure(name, pid, run, transfer) for name, pid, transfer in group]
        upload = upload_hour(bot.stores["s3"], tmp, args.hour_mb)
        print(json.dumps(summarize(figures, upload)), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
