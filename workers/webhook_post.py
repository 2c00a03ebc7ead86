"""One signed webhook POST through the outbound guard, bounded as a whole by the timeout, reading ≤ 1 KiB back."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from meetbot import outbound

USER_AGENT = "MeetBot-Webhooks/1.0"
ERROR_MAX = 500


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    duration_ms: float
    excerpt: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def _post(url: str, body: bytes, headers: dict[str, str], policy: outbound.Policy, limit: int) -> Outcome:
    started = time.perf_counter()
    # The per-operation timeouts only keep httpx from waiting forever; the caller's deadline bounds the whole.
    async with (
        outbound.async_client(policy, timeout=httpx.Timeout(60.0), follow_redirects=False) as client,
        client.stream("POST", url, content=body, headers=headers) as response,
    ):
        excerpt = bytearray()
        if limit:
            async for chunk in response.aiter_raw():  # raw: no decompression of what the receiver sends
                excerpt += chunk[: limit - len(excerpt)]
                if len(excerpt) >= limit:
                    break  # the rest is never read: leaving the block closes the connection
        text = excerpt.decode("utf-8", errors="replace") if excerpt else None
        return Outcome(response.status_code, _ms(started), text, None)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def post(
    url: str, body: bytes, headers: dict[str, str], *, policy: outbound.Policy, timeout: float, excerpt_bytes: int
) -> Outcome:
    """POST body; never raises for what the receiver does (refusal, DNS, connection, timeout: in `error`)."""
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "accept-encoding": "identity",
        **headers,
    }
    started = time.perf_counter()

    async def bounded() -> Outcome:
        return await asyncio.wait_for(_post(url, body, headers, policy, excerpt_bytes), timeout)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except outbound.OutboundRefused as exc:
        error = f"refused: {exc.detail}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Outcome(None, _ms(started), None, error[:ERROR_MAX])
