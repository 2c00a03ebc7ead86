"""The outbound guard, botImage fetches through it, and Standard Webhooks signing (no database)."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from meetbot import outbound
from meetbot.logs import configure_logging
from meetbot.settings import Settings
from meetbot.webhooks import envelope, signing
from tests.webhook_receiver import Receiver
from workers.bots.desktop import PulseAudioServer, SessionBus
from workers.bots.media import BotMedia
from workers.webhook_post import post


@pytest.fixture
def listener() -> Iterator[tuple[int, socket.socket]]:
    """A listening loopback socket that keeps any connection made to it in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock.getsockname()[1], sock
    sock.close()


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


LOOPBACK_FORMS = ["localhost", "127.0.0.1", "[::1]", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_every_spelling_is_refused_without_a_connection(
    host: str, listener: tuple[int, socket.socket]
) -> None:
    port, sock = listener
    url = f"http://{host}:{port}/hook"
    with pytest.raises(outbound.OutboundRefused, match="loopback"):
        outbound.resolve(url, outbound.PUBLIC)
    with outbound.client(outbound.PUBLIC) as client, pytest.raises(outbound.OutboundRefused):
        client.get(url)
    outcome = post(url, b"{}", {}, policy=outbound.PUBLIC, timeout=2, excerpt_bytes=1024)
    assert outcome.status_code is None and outcome.error is not None and "refused" in outcome.error
    assert connections(sock) == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://100.64.0.1/", "private"),  # carrier-grade NAT
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://168.63.129.16/", "metadata"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[64:ff9b::a9fe:a9fe]/", "metadata"),  # NAT64 of 169.254.169.254
    ],
)
def test_private_and_special_ranges_are_refused(url: str, reason: str) -> None:
    with pytest.raises(outbound.OutboundRefused, match=reason):
        outbound.resolve(url, outbound.PUBLIC)


def test_allowing_private_targets_never_allows_metadata_or_link_local() -> None:
    assert outbound.resolve("http://localhost:1/", outbound.PRIVATE_OK)
    assert outbound.resolve("http://10.1.2.3/", outbound.PRIVATE_OK)
    assert outbound.resolve("http://[::1]/", outbound.PRIVATE_OK)
    for url in ("http://169.254.169.254/", "http://[fe80::1]/", "http://[fd00:ec2::254]/", "http://0.0.0.0/"):
        with pytest.raises(outbound.OutboundRefused):
            outbound.resolve(url, outbound.PRIVATE_OK)
    assert outbound.resolve("https://93.184.216.34/", outbound.PUBLIC)  # public: no look-up, no connection


def test_only_http_and_https() -> None:
    for url in ("ftp://93.184.216.34/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "http:///nohost"):
        with pytest.raises(outbound.OutboundRefused):
            outbound.resolve(url, outbound.PRIVATE_OK)


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host() -> None:
    receiver = Receiver().start()
    try:
        with outbound.client(outbound.PRIVATE_OK) as client:
            response = client.post(receiver.url(host="localhost"), content=b"hello")
        assert response.status_code == 200 and response.request.url.host == "localhost"
        [hit] = receiver.hits
        assert hit.headers["host"] == f"localhost:{receiver.port}" and hit.body == b"hello"
    finally:
        receiver.stop()


def test_redirects_are_checked_hop_by_hop() -> None:
    receiver = Receiver(mode="redirect", redirect_to="http://169.254.169.254/latest/meta-data/").start()
    try:
        with (
            outbound.client(outbound.PRIVATE_OK, follow_redirects=True) as client,
            pytest.raises(outbound.OutboundRefused, match="metadata"),
        ):
            client.get(receiver.url())
        with outbound.client(outbound.PRIVATE_OK) as client:  # by default nothing is followed
            assert client.get(receiver.url()).status_code == 302
    finally:
        receiver.stop()


def test_an_unresolvable_host_is_a_connection_error_not_a_refusal() -> None:
    with pytest.raises(httpx.ConnectError):
        outbound.resolve("http://no-such-host.invalid/", outbound.PUBLIC)
    with pytest.raises(outbound.OutboundRefused, match="does not resolve"):
        outbound.check_target("http://no-such-host.invalid/", outbound.PUBLIC)


def test_a_silent_receiver_costs_the_timeout_and_no_more() -> None:
    receiver = Receiver(mode="never").start()
    try:
        started = time.monotonic()
        outcome = post(receiver.url(), b"{}", {}, policy=outbound.PRIVATE_OK, timeout=0.5, excerpt_bytes=1024)
        assert time.monotonic() - started < 1.5
    finally:
        receiver.stop()
    assert outcome.status_code is None and outcome.error == "timed out after 0.5 s"


# Signing: what a receiver's standardwebhooks verifier accepts and refuses.


def signed() -> tuple[str, bytes, dict[str, str]]:
    secret = signing.new_secret()
    event = envelope.ping(7, datetime.now(UTC))
    body = envelope.body(event)
    return secret, body, signing.sign_headers(secret, event["id"], body)


def test_a_signed_body_verifies() -> None:
    secret, body, headers = signed()
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(body, headers)["type"] == "ping"
    assert headers["webhook-signature"].startswith("v1,") and headers["webhook-id"].startswith("evt_ping_7_")


def test_a_changed_body_is_rejected() -> None:
    secret, body, headers = signed()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"ping", b"pong"), headers)


def test_a_wrong_secret_is_rejected() -> None:
    _, body, headers = signed()
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_an_old_timestamp_is_rejected() -> None:
    secret, body, _ = signed()
    old = signing.sign_headers(secret, "evt_old", body, at=datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, old)
    replayed = {**old, "webhook-timestamp": str(int(time.time()))}  # a fresh timestamp on an old signature
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, replayed)


# botImage: the bot fetches it through the same guard (workers/bots/media.py), with a size and time cap and a
# generic reason in the bot's log.


class ImageHandler(BaseHTTPRequestHandler):
    """/face.png: a real PNG; /big: 6 MiB; /drip: one byte every 0.1 s; /to-metadata: a redirect there."""

    picture: bytes = b""

    def do_GET(self) -> None:
        if self.path.startswith("/face.png"):
            self._send(200, self.picture, "image/png")
        elif self.path == "/big":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must count what arrives
            with contextlib.suppress(OSError):
                for _ in range(96):
                    self.wfile.write(b"x" * 65536)
        elif self.path == "/drip":
            self.send_response(200)
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(600):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
        elif self.path == "/to-metadata":
            self.send_response(302)
            self.send_header("Location", "http://[::ffff:169.254.169.254]/latest/meta-data/")
            self.end_headers()
        else:
            self._send(404, b"no", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    png = tmp_path_factory.mktemp("image") / "face.png"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=64x48", "-frames:v", "1", str(png)],
        check=True,
    )
    ImageHandler.picture = png.read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def bot_media(tmp_path: Path, allow_private_urls: bool, lines: list[str], **overrides: Any) -> BotMedia:
    settings = Settings(
        data_dir=tmp_path / "data", allow_private_urls=allow_private_urls, secret_key="k" * 40, **overrides
    )
    media = BotMedia(1, settings, cast(SessionBus, None), cast(PulseAudioServer, None), lines.append)
    media.spool.mkdir(parents=True)
    return media


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "0x7f.1", "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "10.0.0.1"],
)
def test_bot_image_on_loopback_private_or_metadata_is_refused_without_a_connection(
    host: str, listener: tuple[int, socket.socket], tmp_path: Path
) -> None:
    port, sock = listener
    lines: list[str] = []
    media = bot_media(tmp_path, allow_private_urls=False, lines=lines)
    assert media._camera_file(f"http://{host}:{port}/face.png") is None
    assert lines == ["botImage not used: its address is not allowed (such addresses are never fetched)"]
    assert connections(sock) == 0


def test_bot_image_from_a_private_host_when_allowed_becomes_the_camera(image_server: str, tmp_path: Path) -> None:
    lines: list[str] = []
    camera = bot_media(tmp_path, allow_private_urls=True, lines=lines)._camera_file(f"{image_server}/face.png")
    assert lines == ["botImage set as the camera picture"]
    assert camera is not None and camera.read_bytes().startswith(b"YUV4MPEG2 W1280 H720")
    refused: list[str] = []
    strict = bot_media(tmp_path / "b", allow_private_urls=False, lines=refused)
    assert strict._camera_file(f"{image_server}/face.png") is None
    assert refused and "not allowed" in refused[0]


def test_metadata_stays_refused_when_private_urls_are_allowed(image_server: str, tmp_path: Path) -> None:
    lines: list[str] = []
    media = bot_media(tmp_path, allow_private_urls=True, lines=lines)
    assert media._camera_file("http://169.254.169.254/latest/meta-data/") is None
    assert media._camera_file(f"{image_server}/to-metadata") is None  # the redirect hop is checked again
    assert lines == ["botImage not used: its address is not allowed (such addresses are never fetched)"] * 2
    assert not (media.spool / "bot-image").exists()


def test_bot_image_size_and_time_are_capped(image_server: str, tmp_path: Path) -> None:
    lines: list[str] = []
    media = bot_media(tmp_path, allow_private_urls=True, lines=lines, bot_image_timeout_seconds=1)
    assert media._camera_file(f"{image_server}/big") is None
    started = time.monotonic()
    assert media._camera_file(f"{image_server}/drip") is None
    assert time.monotonic() - started < 2.5  # the drip would take a minute
    assert lines == ["botImage not used: it is larger than 5 MiB", "botImage not used: it took longer than 1 s"]
    assert not (media.spool / "bot-image").exists()


def test_closed_and_silent_ports_read_the_same_in_the_bots_log(tmp_path: Path) -> None:
    """No socket error text: a closed port and one that never answers are indistinguishable (no port scanner)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = Receiver(mode="never").start()
    lines: list[str] = []
    try:
        media = bot_media(tmp_path, allow_private_urls=True, lines=lines, bot_image_timeout_seconds=0.5)
        assert media._camera_file(f"http://127.0.0.1:{closed_port}/a.png") is None
        assert media._camera_file(silent.url("/a.png")) is None
        assert media._camera_file("http://no-such-host.invalid/a.png") is None
    finally:
        silent.stop()
    assert lines == ["botImage not used: " + outbound.UNREACHABLE] * 3


def test_image_urls_with_credentials_or_signed_queries_are_never_logged(image_server: str, tmp_path: Path) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", as_json=True)
        root.handlers[0].stream = stream  # type: ignore[attr-defined]
        lines: list[str] = []
        media = bot_media(tmp_path, allow_private_urls=True, lines=lines)
        url = image_server.replace("http://", "http://user:hunter2@") + "/face.png?X-Amz-Signature=SIGNED123"
        assert media._camera_file(url) is not None
        assert media._camera_file(url.replace("/face.png", "/missing.png")) is None
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert lines == ["botImage set as the camera picture", "botImage not used: the server answered 404"]
    logged = stream.getvalue()
    assert "hunter2" not in logged and "SIGNED123" not in logged and "face.png" not in logged
