"""AsyncMeetBotClient: the asynchronous MeetBot API client over httpx."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from meetbot.client._async_base import AsyncBase
from meetbot.client._core import Body, body_of, check, parse, query_of
from meetbot.client._waits import JobWait
from meetbot.client.streams import AsyncEventStream
from meetbot.schemas.analytics import Analytics
from meetbot.schemas.auth import ApiKey, ApiKeyCreated, ApiKeyList, ApiKeyUsage, ApiLog, ApiLogList, TokenPair, Usage
from meetbot.schemas.auth import User as UserModel
from meetbot.schemas.bots import Bot, BotEvent, BotEventList, BotList, BotLog, BotLogList
from meetbot.schemas.recordings import DownloadLink, RecordingList, RecordingResource, SharedRecording, ShareLink
from meetbot.schemas.transcripts import JobState, SummaryResource, TranscriptResource
from meetbot.schemas.webhooks import (
    Delivery,
    DeliveryList,
    Webhook,
    WebhookCreated,
    WebhookList,
    WebhookTest,
    WebhookUpdated,
)

TextFormat = Literal["txt", "srt", "vtt"]


class AsyncMeetBotClient(AsyncBase):
    """The async MeetBot API client: `async with AsyncMeetBotClient("http://127.0.0.1:8000", api_key=...) as c:`.

    Methods return the API's pydantic models (snake_case attributes) or raise a MeetBotAPIError subclass;
    a 429 is waited out per its Retry-After, up to `retry.max_retries` times. Use it as an async context
    manager or call aclose().
    """

    async def __aenter__(self) -> AsyncMeetBotClient:
        return self

    # --- auth and the caller ----------------------------------------------------------------------

    async def register(self, email: str, password: str, name: str) -> UserModel:
        return await self._send(
            "POST", "/auth/register", UserModel, {"email": email, "password": password, "name": name}
        )

    async def login(self, email: str, password: str) -> TokenPair:
        """Log in; the client then authenticates with the access token (refresh() renews it)."""
        return self._keep(await self._send("POST", "/auth/login", TokenPair, {"email": email, "password": password}))

    async def refresh(self, refresh_token: str | None = None) -> TokenPair:
        body = {"refreshToken": refresh_token or self.refresh_token}
        return self._keep(await self._send("POST", "/auth/refresh", TokenPair, body, auth=False))

    async def logout(self, refresh_token: str | None = None) -> None:
        check(await self._request("POST", "/auth/logout", json={"refreshToken": refresh_token or self.refresh_token}))
        self.token = self.refresh_token = None

    async def get_me(self) -> UserModel:
        return await self._get("/users/me", UserModel)

    async def update_me(self, body: Body = None, **fields: Any) -> UserModel:
        return await self._send("PATCH", "/users/me", UserModel, body_of(body, fields))

    async def get_usage(self) -> Usage:
        return await self._get("/users/me/usage", Usage)

    async def get_analytics(self, days: int = 30) -> Analytics:
        """A daily series over the last `days` days (bots, minutes, requests, deliveries) and its totals."""
        return await self._get("/users/me/analytics", Analytics, days=days)

    async def list_api_logs(self, page: int = 1, page_size: int = 20) -> ApiLogList:
        return await self._get("/users/me/api-logs", ApiLogList, page=page, page_size=page_size)

    def iter_api_logs(self, page_size: int = 100) -> AsyncIterator[ApiLog]:
        return self._pages("/users/me/api-logs", "logs", ApiLog.model_validate, page_size=page_size)

    async def list_api_keys(self, page: int = 1, page_size: int = 20) -> ApiKeyList:
        return await self._get("/api-keys", ApiKeyList, page=page, page_size=page_size)

    def iter_api_keys(self, page_size: int = 100) -> AsyncIterator[ApiKey]:
        return self._pages("/api-keys", "apiKeys", ApiKey.model_validate, page_size=page_size)

    async def create_api_key(self, name: str = "default") -> ApiKeyCreated:
        return await self._send("POST", "/api-keys", ApiKeyCreated, {"name": name})

    async def delete_api_key(self, key_id: int) -> None:
        await self._delete(f"/api-keys/{key_id}")

    async def get_api_key_usage(self, key_id: int) -> ApiKeyUsage:
        return await self._get(f"/api-keys/{key_id}/usage", ApiKeyUsage)

    # --- bots -------------------------------------------------------------------------------------

    async def list_bots(
        self, page: int = 1, page_size: int = 20, status: str | None = None, platform: str | None = None
    ) -> BotList:
        return await self._get("/bots", BotList, page=page, page_size=page_size, status=status, platform=platform)

    def iter_bots(
        self, status: str | None = None, platform: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Bot]:
        return self._pages("/bots", "bots", Bot.model_validate, status=status, platform=platform, page_size=page_size)

    async def create_bot(self, body: Body = None, **fields: Any) -> Bot:
        """A bot from a BotCreate, a camelCase mapping, or keywords (`meeting_info={"platform": ..., ...}`)."""
        return await self._send("POST", "/bots", Bot, body_of(body, fields))

    async def get_bot(self, bot_id: int) -> Bot:
        return await self._get(f"/bots/{bot_id}", Bot)

    async def update_bot(self, bot_id: int, body: Body = None, **fields: Any) -> Bot:
        """A JSON merge patch of the bot's settings (a field set to None goes back to its default)."""
        return await self._send("PATCH", f"/bots/{bot_id}", Bot, body_of(body, fields))

    async def delete_bot(self, bot_id: int) -> None:
        await self._delete(f"/bots/{bot_id}")

    async def deploy_bot(self, bot_id: int) -> Bot:
        return await self._send("POST", f"/bots/{bot_id}/deploy", Bot)

    async def kill_bot(self, bot_id: int) -> Bot:
        return await self._send("POST", f"/bots/{bot_id}/kill", Bot)

    async def list_bot_events(
        self, bot_id: int, type: str | None = None, page: int = 1, page_size: int = 20
    ) -> BotEventList:
        return await self._get(f"/bots/{bot_id}/events", BotEventList, type=type, page=page, page_size=page_size)

    def iter_bot_events(self, bot_id: int, type: str | None = None, page_size: int = 100) -> AsyncIterator[BotEvent]:
        return self._pages(f"/bots/{bot_id}/events", "events", BotEvent.model_validate, type=type, page_size=page_size)

    async def list_bot_logs(
        self, bot_id: int, since: datetime | None = None, page: int = 1, page_size: int = 100
    ) -> BotLogList:
        return await self._get(f"/bots/{bot_id}/logs", BotLogList, since=since, page=page, page_size=page_size)

    def iter_bot_logs(self, bot_id: int, since: datetime | None = None, page_size: int = 100) -> AsyncIterator[BotLog]:
        return self._pages(f"/bots/{bot_id}/logs", "logs", BotLog.model_validate, since=since, page_size=page_size)

    # --- recordings -------------------------------------------------------------------------------

    async def list_recordings(
        self, page: int = 1, page_size: int = 20, status: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> RecordingList:  # fmt: skip
        query = {"status": status, "since": since, "until": until}
        return await self._get("/recordings", RecordingList, page=page, page_size=page_size, **query)

    def iter_recordings(
        self, status: str | None = None, since: datetime | None = None, until: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RecordingResource]:  # fmt: skip
        query = {"status": status, "since": since, "until": until, "page_size": page_size}
        return self._pages("/recordings", "recordings", RecordingResource.model_validate, **query)

    async def get_recording(self, bot_id: int) -> RecordingResource:
        return await self._get(f"/recordings/{bot_id}", RecordingResource)

    async def delete_recording(self, bot_id: int) -> None:
        await self._delete(f"/recordings/{bot_id}")

    async def get_download_link(self, bot_id: int) -> DownloadLink:
        return await self._get(f"/recordings/{bot_id}/download", DownloadLink)

    async def download_recording(self, bot_id: int, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """Fetch the recording through a fresh download link (no credentials sent to it) into dest."""
        link = await self.get_download_link(bot_id)
        return await self._to_file(link.url, dest, resume, auth=False)

    async def stream_recording(self, bot_id: int, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """Write the recording to dest from /stream; resumes (HTTP Range) what dest holds and a dropped transfer."""
        return await self._to_file(f"/recordings/{bot_id}/stream", dest, resume, auth=True)

    async def get_recording_transcription(self, bot_id: int, format: str = "json") -> TranscriptResource | str:
        return await self._transcript(f"/recordings/{bot_id}/transcription", format)

    async def create_share(self, bot_id: int, expires_in: int | None = None) -> ShareLink:
        return await self._send("POST", f"/recordings/{bot_id}/share", ShareLink, query_of(expiresIn=expires_in))

    async def get_share(self, bot_id: int) -> ShareLink:
        return await self._get(f"/recordings/{bot_id}/share", ShareLink)

    async def delete_share(self, bot_id: int) -> None:
        await self._delete(f"/recordings/{bot_id}/share")

    async def get_shared_recording(self, token: str) -> SharedRecording:
        """What a share link shows (public: sent without credentials)."""
        return parse(await self._request("GET", f"/share/{token}", auth=False), SharedRecording)

    async def get_shared_transcript(self, token: str) -> TranscriptResource:
        """A share link's transcript, once done (public)."""
        return parse(await self._request("GET", f"/share/{token}/transcript", auth=False), TranscriptResource)

    async def download_shared_recording(self, token: str, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """A share link's media into dest, with Range resume (public)."""
        return await self._to_file(f"/share/{token}/stream", dest, resume, auth=False)

    # --- transcripts and summaries ----------------------------------------------------------------

    async def transcribe(self, bot_id: int, language: str | None = None, model: str | None = None) -> JobState:
        return await self._send(
            "POST", f"/transcripts/{bot_id}/transcribe", JobState, query_of(language=language, model=model)
        )

    @overload
    async def get_transcript(self, bot_id: int, format: Literal["json"] = "json") -> TranscriptResource: ...
    @overload
    async def get_transcript(self, bot_id: int, format: TextFormat) -> str: ...
    async def get_transcript(self, bot_id: int, format: str = "json") -> TranscriptResource | str:
        """The transcript (JSON, whatever its status), or once done as text: "txt", "srt" or "vtt"."""
        return await self._transcript(f"/transcripts/{bot_id}", format)

    async def _transcript(self, path: str, format: str) -> TranscriptResource | str:
        response = check(await self._request("GET", path, params={"format": format}))
        return TranscriptResource.model_validate(response.json()) if format == "json" else response.text

    async def get_transcript_status(self, bot_id: int) -> JobState:
        return await self._get(f"/transcripts/{bot_id}/status", JobState)

    async def delete_transcript(self, bot_id: int) -> None:
        await self._delete(f"/transcripts/{bot_id}")

    async def wait_for_transcript(self, bot_id: int, timeout: float = 600.0) -> TranscriptResource:
        """Block until the bot's transcript is done (following its event stream); TimeoutError after timeout s.

        Raises TranscriptFailedError when the job fails. A transcript not requested yet (404) is waited for:
        with `transcription.auto` it starts when the bot records.
        """
        await self._wait(JobWait.transcript(bot_id), timeout)
        return await self.get_transcript(bot_id)

    async def summarize(self, bot_id: int, style: str = "brief", prompt: str | None = None) -> JobState:
        return await self._send(
            "POST", f"/summaries/{bot_id}/summarize", JobState, query_of(style=style, prompt=prompt)
        )

    async def get_summary(self, bot_id: int) -> SummaryResource:
        return await self._get(f"/summaries/{bot_id}", SummaryResource)

    async def get_summary_status(self, bot_id: int) -> JobState:
        return await self._get(f"/summaries/{bot_id}/status", JobState)

    async def delete_summary(self, bot_id: int) -> None:
        await self._delete(f"/summaries/{bot_id}")

    async def wait_for_summary(self, bot_id: int, timeout: float = 600.0) -> SummaryResource:
        await self._wait(JobWait.summary(bot_id), timeout)
        return await self.get_summary(bot_id)

    # --- webhooks ---------------------------------------------------------------------------------

    async def list_webhooks(self, page: int = 1, page_size: int = 20) -> WebhookList:
        return await self._get("/webhooks", WebhookList, page=page, page_size=page_size)

    def iter_webhooks(self, page_size: int = 100) -> AsyncIterator[Webhook]:
        return self._pages("/webhooks", "webhooks", Webhook.model_validate, page_size=page_size)

    async def create_webhook(
        self, url: str, events: list[str] | None = None, body: Body = None, **fields: Any
    ) -> WebhookCreated:
        """A webhook for `events` (every type when None); its `secret` (whsec_…) is in this answer only."""
        data = body_of(body, {"url": url, **({"events": events} if events is not None else {}), **fields})
        return await self._send("POST", "/webhooks", WebhookCreated, data)

    async def get_webhook(self, webhook_id: int) -> Webhook:
        return await self._get(f"/webhooks/{webhook_id}", Webhook)

    async def update_webhook(self, webhook_id: int, body: Body = None, **fields: Any) -> WebhookUpdated:
        """Change a webhook; with `rotate_secret=True` the answer carries the new secret."""
        return await self._send("PATCH", f"/webhooks/{webhook_id}", WebhookUpdated, body_of(body, fields))

    async def delete_webhook(self, webhook_id: int) -> None:
        await self._delete(f"/webhooks/{webhook_id}")

    async def test_webhook(self, webhook_id: int) -> WebhookTest:
        """Send a `ping` now; the answer is that delivery and its attempt."""
        return await self._send("POST", f"/webhooks/{webhook_id}/test", WebhookTest)

    async def list_webhook_deliveries(
        self, webhook_id: int, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> DeliveryList:
        path = f"/webhooks/{webhook_id}/deliveries"
        return await self._get(path, DeliveryList, status=status, page=page, page_size=page_size)

    def iter_webhook_deliveries(
        self, webhook_id: int, status: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Delivery]:
        path = f"/webhooks/{webhook_id}/deliveries"
        return self._pages(path, "deliveries", Delivery.model_validate, status=status, page_size=page_size)

    async def retry_webhook_delivery(self, webhook_id: int, delivery_id: int) -> Delivery:
        """Send one delivery again now."""
        return await self._send("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", Delivery)

    # --- events -----------------------------------------------------------------------------------

    async def list_events(
        self, bot_id: int | None = None, type: str | None = None, since: datetime | None = None,
        until: datetime | None = None, page: int = 1, page_size: int = 20,
    ) -> BotEventList:  # fmt: skip
        """The caller's events over all bots, newest first, filtered by bot, type and time."""
        query = {"bot_id": bot_id, "type": type, "since": since, "until": until, "page": page, "page_size": page_size}
        return await self._get("/events", BotEventList, **query)

    def iter_events(
        self, bot_id: int | None = None, type: str | None = None, since: datetime | None = None,
        until: datetime | None = None, page_size: int = 100,
    ) -> AsyncIterator[BotEvent]:  # fmt: skip
        query = {"bot_id": bot_id, "type": type, "since": since, "until": until, "page_size": page_size}
        return self._pages("/events", "events", BotEvent.model_validate, **query)

    def stream_events(
        self, last_event_id: str | int | None = None, max_reconnects: int | None = 10
    ) -> AsyncEventStream:
        """The caller's events from now on (or after last_event_id) as they happen (GET /events/stream).

        A dropped connection is opened again with Last-Event-ID: no event is lost or repeated.
        """
        return self._events("/events/stream", last_event_id, max_reconnects)

    def stream_bot_events(
        self, bot_id: int, last_event_id: str | int | None = None, max_reconnects: int | None = 10
    ) -> AsyncEventStream:
        """One bot's events, all of them from its first (or after last_event_id), then live as they happen."""
        return self._events(f"/bots/{bot_id}/events/stream", last_event_id, max_reconnects)
