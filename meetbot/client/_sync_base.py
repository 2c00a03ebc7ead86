"""The synchronous client's transport: requests with 429 retries, pages, files with Range resume, event streams."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import httpx

from meetbot.client import _core as core
from meetbot.client import sse
from meetbot.client._core import M, RetryPolicy, check, parse, query_of
from meetbot.client._waits import JobWait
from meetbot.client.errors import NotFoundError
from meetbot.client.streams import EventStream
from meetbot.schemas.auth import TokenPair
from meetbot.schemas.transcripts import JobState


class SyncBase:
    """The synchronous client's connection, credentials and retry policy; the endpoints are in its subclass."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = core.DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.base_url = core.api_base(base_url)
        self.token = api_key  # an API key, or the access token login() got
        self.refresh_token: str | None = None
        self.retry = retry or RetryPolicy()
        self._http = http_client or httpx.Client(timeout=timeout, headers=core.default_headers())
        self._owns_http = http_client is None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> SyncBase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Send a request (an API path, or an absolute URL), waiting out 429s as the retry policy allows."""
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        sent = dict(headers or {})
        if auth and self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        attempt = 0
        while True:
            request = self._http.build_request(method, url, params=params, json=json, headers=sent, **extra)
            response = self._http.send(request, stream=stream)
            wait = self.retry.wait(response, attempt)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)
            attempt += 1

    @contextmanager
    def _stream(self, path: str, **options: Any) -> Iterator[httpx.Response]:
        """A streamed GET, closed on leaving the block."""
        response = self._request("GET", path, stream=True, **options)
        try:
            yield response
        finally:
            response.close()

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return parse(self._request("GET", path, params=query_of(**params)), model)

    def _send(self, method: str, path: str, model: type[M], body: Any = None, auth: bool = True) -> M:
        return parse(self._request(method, path, json=body, auth=auth), model)

    def _json(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        return check(self._request(method, path, json=body, params=query_of(**params))).json()

    def _delete(self, path: str) -> None:
        check(self._request("DELETE", path))

    def _keep(self, pair: TokenPair) -> TokenPair:
        self.token, self.refresh_token = pair.access_token, pair.refresh_token
        return pair

    def _pages(self, path: str, key: str, item: Callable[[Any], M], **params: Any) -> Iterator[M]:
        """Every item of a paginated list, walking `page` until `total`."""
        page = 1
        while True:
            data = self._json("GET", path, page=page, **params)
            items = data[key]
            yield from (item(value) for value in items)
            if core.page_done(page, data["page_size"], data["total"], len(items)):
                return
            page += 1

    def _to_file(self, url: str, dest: str | os.PathLike[str], resume: bool, auth: bool, attempts: int = 5) -> Path:
        """GET url into dest; a transfer cut short is resumed with Range (and If-Range: the same bytes)."""
        sink = core.FileSink(dest, resume)
        for attempt in range(attempts):
            try:
                with self._stream(url, headers=sink.request_headers(), auth=auth) as response:
                    if not sink.begin(response):
                        return sink.path
                    for chunk in response.iter_bytes(core.CHUNK_SIZE):
                        sink.write(chunk)
                if sink.complete():
                    return sink.path
            except sse.RETRYABLE:
                if attempt == attempts - 1:
                    raise
            finally:
                sink.end()
        raise httpx.RemoteProtocolError(f"the download of {url} kept ending early")

    def _wait(self, job: JobWait, timeout: float) -> None:
        """Return once the job is done, reading its state as its event stream says (or polling without one)."""
        deadline = time.monotonic() + timeout
        try:
            with closing(self._sse(f"/bots/{job.bot_id}/events/stream", sse.Reconnection(), deadline)) as items:
                for item in items:
                    if job.relevant(item) and job.finished(self._job_state(job)):
                        return
        except NotFoundError:  # no event stream here (or no such bot: the state read below says which)
            pass
        while not job.finished(self._job_state(job)):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"bot {job.bot_id}: no {job.kind} within {timeout} s")
            time.sleep(job.poll_interval)

    def _job_state(self, job: JobWait) -> JobState | None:
        try:
            return self._get(job.status_path, JobState)
        except NotFoundError:
            check(self._request("GET", f"/bots/{job.bot_id}"))  # no such bot: raise, do not wait
            return None

    def _events(self, path: str, last_event_id: str | int | None, max_reconnects: int | None) -> EventStream:
        last = str(last_event_id) if last_event_id is not None else None
        link = sse.Reconnection(max_reconnects=max_reconnects, last_event_id=last)
        return EventStream(self._sse(path, link, None), link)

    def _sse(self, path: str, link: sse.Reconnection, deadline: float | None) -> Generator[sse.StreamItem, None, None]:
        """Raw stream items (OPENED on each connection, HEARTBEAT, events), reconnecting; ends at the deadline."""
        while deadline is None or time.monotonic() < deadline:
            error: Exception | None = None
            try:
                timeout = sse.read_timeout(deadline)
                with self._stream(path, headers=link.headers(), timeout=timeout) as response:
                    if not link.opened(response):
                        return
                    yield sse.OPENED
                    decoder = sse.SSEDecoder(last_event_id=link.last_event_id)
                    for line in response.iter_lines():
                        item = decoder.feed(line)
                        if item is not None:
                            link.seen(decoder)
                            yield item
                        if deadline is not None and time.monotonic() >= deadline:
                            return
            except sse.RETRYABLE as exc:
                error = exc
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(link.dropped(error))
