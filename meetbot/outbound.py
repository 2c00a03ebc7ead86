"""The one guard for every outbound fetch of a user-given URL: scheme, resolved-address policy, pinned connection.

A URL is fetched only over http(s). Its host is resolved once, every address it resolves to is checked against
a policy, and the connection goes to exactly the address that was checked (the URL's host is replaced by that
IP; the Host header and TLS SNI/certificate check keep the name), so a DNS answer that changes between the
check and the connection (DNS rebinding) reaches nothing. Link-local and cloud-metadata, multicast, unspecified
and reserved addresses are never reached; loopback and private ranges only when the policy allows them.
Redirects are the caller's choice (httpx follows none by default); each hop of a followed redirect goes
through the transport again, so it is checked and pinned the same way.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from meetbot.errors import MeetBotError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")
# Cloud metadata services; 169.254.169.254 is link-local anyway, the others are in private or public ranges.
METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server
        "192.0.0.192",  # Oracle Cloud
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host on this network": Linux connects 0.0.0.0 locally
# Lookups of the async transport run here, not in the event loop's default executor: asyncio.run() waits
# for that one at exit, so a resolver that hangs would outlast the caller's deadline.
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="outbound-dns")


class OutboundRefused(MeetBotError):
    """A URL the guard will not fetch: another scheme, or a host that resolves to a refused address."""

    status_code = 422
    default_detail = "URL refused"


class DownloadFailed(MeetBotError):
    """A guarded download that did not complete. Its detail is generic and safe to show the user who gave the
    URL: it never carries the URL (credentials, signed queries) nor a socket error (that would turn the message
    into a port scanner: refused, timed out and reset all read the same)."""

    status_code = 422
    default_detail = "could not be fetched"


class CannotResolve(httpx.ConnectError):
    """The host has no address (a connection error: it may resolve later)."""


@dataclass(frozen=True)
class Policy:
    """allow_private: loopback and private ranges (RFC 1918, ULA, CGNAT) may be reached; the rest never are."""

    allow_private: bool = False


PUBLIC = Policy(allow_private=False)
PRIVATE_OK = Policy(allow_private=True)


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), which is what a connection would reach."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: IPAddress, policy: Policy) -> str | None:
    """Why this address may not be reached under policy, or None when it may."""
    inner = _embedded_ipv4(ip)
    if inner is not None:
        return refusal(inner, policy)
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip in _THIS_NETWORK:
        return "an unspecified address"
    if ip.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
        return None if policy.allow_private else "a loopback address"
    if ip.is_reserved:
        return "a reserved address"
    if policy.allow_private:
        return None
    if not ip.is_global:
        return "a private address"
    return None


def parse_url(url: str | httpx.URL) -> httpx.URL:
    """The URL as httpx reads it; OutboundRefused unless it is http(s) with a host."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise OutboundRefused(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in SCHEMES:
        raise OutboundRefused("only http and https URLs are allowed")
    if not parsed.raw_host:
        raise OutboundRefused("the URL has no host")
    return parsed


def _host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii")  # IDNA-encoded by httpx; an IPv6 literal without its brackets


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _lookup(host: str, port: int) -> list[IPAddress]:
    """The host's addresses in the resolver's order (inet_aton forms such as 0x7f000001 resolve too)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise CannotResolve(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise CannotResolve(f"cannot resolve {host}: no addresses")
    return addresses


def checked(host: str, addresses: list[IPAddress], policy: Policy) -> list[IPAddress]:
    """addresses, when every one of them may be reached; else OutboundRefused naming the first refused."""
    for ip in addresses:
        reason = refusal(ip, policy)
        if reason is not None:
            where = f"{host} is" if _literal(host) == ip else f"{host} resolves to {ip},"
            raise OutboundRefused(f"{where} {reason}, which is not allowed as a target")
    return addresses


def resolve(url: str | httpx.URL, policy: Policy) -> list[IPAddress]:
    """The checked addresses of the URL's host (blocking lookup); OutboundRefused or CannotResolve otherwise."""
    parsed = parse_url(url)
    host = _host(parsed)
    literal = _literal(host)
    return checked(host, [literal] if literal else _lookup(host, _port(parsed)), policy)


async def aresolve(url: str | httpx.URL, policy: Policy) -> list[IPAddress]:
    parsed = parse_url(url)
    host = _host(parsed)
    literal = _literal(host)
    if literal is not None:
        return checked(host, [literal], policy)
    loop = asyncio.get_running_loop()
    addresses = await loop.run_in_executor(_RESOLVER, _lookup, host, _port(parsed))
    return checked(host, addresses, policy)


def _pinned(request: httpx.Request, ip: IPAddress) -> httpx.Request:
    """The same request sent to ip: Host header and TLS server name stay the URL's name."""
    host = _host(request.url)
    extensions: dict[str, Any] = dict(request.extensions)
    if request.url.scheme == "https" and _literal(host) is None:
        extensions["sni_hostname"] = host
    return httpx.Request(
        request.method,
        request.url.copy_with(host=str(ip)),
        headers=request.headers,  # its Host header was set from the name when the request was built
        stream=request.stream,
        extensions=extensions,
    )


# No connection is kept for a later request: the pool is keyed by the IP, and a TLS connection verified for one
# name must never carry a request for another name that resolves to the same address.
_NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for the process: building one (loading the CA bundle) costs milliseconds."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that resolves, checks, then connects to the checked address (trying each in turn)."""

    def __init__(self, policy: Policy, **transport_options: Any) -> None:
        self.policy = policy
        self.inner = httpx.HTTPTransport(**{"verify": tls_context(), "limits": _NO_KEEPALIVE, **transport_options})

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        addresses = resolve(request.url, self.policy)
        for index, ip in enumerate(addresses):
            try:
                return self.inner.handle_request(_pinned(request, ip))
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.inner.close()


class AsyncGuardedTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of GuardedTransport."""

    def __init__(self, policy: Policy, **transport_options: Any) -> None:
        self.policy = policy
        self.inner = httpx.AsyncHTTPTransport(**{"verify": tls_context(), "limits": _NO_KEEPALIVE, **transport_options})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        addresses = await aresolve(request.url, self.policy)
        for index, ip in enumerate(addresses):
            try:
                return await self.inner.handle_async_request(_pinned(request, ip))
            except httpx.ConnectError:
                if index == len(addresses) - 1:
                    raise
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.inner.aclose()


def client(policy: Policy, **options: Any) -> httpx.Client:
    """An httpx.Client whose every request goes through the guard; environment proxies are ignored."""
    return httpx.Client(transport=GuardedTransport(policy), trust_env=False, **options)


def async_client(policy: Policy, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=AsyncGuardedTransport(policy), trust_env=False, **options)


def check_target(url: str, policy: Policy) -> None:
    """What a stored URL must pass before it is accepted: http(s), and a host that resolves to allowed addresses.

    No connection is made. A host that does not resolve is refused too (a typo, or a name only a later DNS
    change would give an address to); the check is repeated at every fetch.
    """
    try:
        resolve(url, policy)
    except CannotResolve as exc:
        raise OutboundRefused(f"{_host(parse_url(url))} does not resolve") from exc


UNREACHABLE = "it could not be fetched (no answer, or the connection failed)"


def download(
    url: str, policy: Policy, target: Path, *, max_bytes: int, timeout_seconds: float, max_redirects: int = 5
) -> int:
    """Fetch url into target through the guard: every hop resolved, checked and pinned, at most max_bytes and
    timeout_seconds in all. Returns the size; DownloadFailed (and no target file) otherwise."""
    deadline = time.monotonic() + timeout_seconds
    size = 0
    try:
        with (
            client(policy, timeout=timeout_seconds, follow_redirects=True, max_redirects=max_redirects) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code >= 400:
                raise DownloadFailed(f"the server answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise DownloadFailed(f"it is larger than {max_bytes // (1024 * 1024)} MiB")
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadFailed(f"it is larger than {max_bytes // (1024 * 1024)} MiB")
                    if time.monotonic() > deadline:
                        raise DownloadFailed(f"it took longer than {timeout_seconds:g} s")
                    out.write(chunk)
    except DownloadFailed:
        target.unlink(missing_ok=True)
        raise
    except OutboundRefused as exc:
        target.unlink(missing_ok=True)
        raise DownloadFailed("its address is not allowed (such addresses are never fetched)") from exc
    except httpx.TooManyRedirects as exc:
        target.unlink(missing_ok=True)
        raise DownloadFailed(f"it redirects more than {max_redirects} times") from exc
    except (httpx.HTTPError, OSError) as exc:
        target.unlink(missing_ok=True)
        raise DownloadFailed(UNREACHABLE) from exc
    return size
