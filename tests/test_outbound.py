"""The outbound guard and Standard Webhooks signing (no database): address policy, pinning, no refused connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from meetbot import outbound
from meetbot.webhooks import envelope, signing
from tests.webhook_receiver import Receiver
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
