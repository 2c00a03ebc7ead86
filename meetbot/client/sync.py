"""MeetBotClient: the synchronous MeetBot API client over httpx."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from meetbot.client._core import Body, body_of, check, parse, query_of
from meetbot.client._sync_base import SyncBase
from meetbot.client._waits import JobWait
from meetbot.client.streams import EventStream
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


class MeetBotClient(SyncBase):
    """A MeetBot API client: `MeetBotClient("http://127.0.0.1:8000", api_key="mb_...")`.

    Methods return the API's pydantic models (snake_case attributes) or raise a MeetBotAPIError subclass;
    a 429 is waited out per its Retry-After, up to `retry.max_retries` times. Use it as a context manager
    or call close().
    """

    def __enter__(self) -> MeetBotClient:
        return self

    # --- auth and the caller ----------------------------------------------------------------------

    def register(self, email: str, password: str, name: str) -> UserModel:
        return self._send("POST", "/auth/register", UserModel, {"email": email, "password": password, "name": name})

    def login(self, email: str, password: str) -> TokenPair:
        """Log in; the client then authenticates with the access token (refresh() renews it)."""
        return self._keep(self._send("POST", "/auth/login", TokenPair, {"email": email, "password": password}))

    def refresh(self, refresh_token: str | None = None) -> TokenPair:
        body = {"refreshToken": refresh_token or self.refresh_token}
        return self._keep(self._send("POST", "/auth/refresh", TokenPair, body, auth=False))

    def logout(self, refresh_token: str | None = None) -> None:
        check(self._request("POST", "/auth/logout", json={"refreshToken": refresh_token or self.refresh_token}))
        self.token = self.refresh_token = None

    def get_me(self) -> UserModel:
        return self._get("/users/me", UserModel)

    def update_me(self, body: Body = None, **fields: Any) -> UserModel:
        return self._send("PATCH", "/users/me", UserModel, body_of(body, fields))

    def get_usage(self) -> Usage:
        return self._get("/users/me/usage", Usage)

    def get_analytics(self, days: int = 30) -> Analytics:
        """A daily series over the last `days` days (bots, minutes, requests, deliveries) and its totals."""
        return self._get("/users/me/analytics", Analytics, days=days)

    def list_api_logs(self, page: int = 1, page_size: int = 20) -> ApiLogList:
        return self._get("/users/me/api-logs", ApiLogList, page=page, page_size=page_size)

    def iter_api_logs(self, page_size: int = 100) -> Iterator[ApiLog]:
        return self._pages("/users/me/api-logs", "logs", ApiLog.model_validate, page_size=page_size)

    def list_api_keys(self, page: int = 1, page_size: int = 20) -> ApiKeyList:
        return self._get("/api-keys", ApiKeyList, page=page, page_size=page_size)

    def iter_api_keys(self, page_size: int = 100) -> Iterator[ApiKey]:
        return self._pages("/api-keys", "apiKeys", ApiKey.model_validate, page_size=page_size)

    def create_api_key(self, name: str = "default") -> ApiKeyCreated:
        return self._send("POST", "/api-keys", ApiKeyCreated, {"name": name})

    def delete_api_key(self, key_id: int) -> None:
        self._delete(f"/api-keys/{key_id}")

    def get_api_key_usage(self, key_id: int) -> ApiKeyUsage:
        return self._get(f"/api-keys/{key_id}/usage", ApiKeyUsage)

    # --- bots -------------------------------------------------------------------------------------

    def list_bots(
        self, page: int = 1, page_size: int = 20, status: str | None = None, platform: str | None = None
    ) -> BotList:
        return self._get("/bots", BotList, page=page, page_size=page_size, status=status, platform=platform)

    def iter_bots(self, status: str | None = None, platform: str | None = None, page_size: int = 100) -> Iterator[Bot]:
        return self._pages("/bots", "bots", Bot.model_validate, status=status, platform=platform, page_size=page_size)

    def create_bot(self, body: Body = None, **fields: Any) -> Bot:
        """A bot from a BotCreate, a camelCase mapping, or keywords (`meeting_info={"platform": ..., ...}`)."""
        return self._send("POST", "/bots", Bot, body_of(body, fields))

    def get_bot(self, bot_id: int) -> Bot:
        return self._get(f"/bots/{bot_id}", Bot)

    def update_bot(self, bot_id: int, body: Body = None, **fields: Any) -> Bot:
        """A JSON merge patch of the bot's settings (a field set to None goes back to its default)."""
        return self._send("PATCH", f"/bots/{bot_id}", Bot, body_of(body, fields))

    def delete_bot(self, bot_id: int) -> None:
        self._delete(f"/bots/{bot_id}")

    def deploy_bot(self, bot_id: int) -> Bot:
        return self._send("POST", f"/bots/{bot_id}/deploy", Bot)

    def kill_bot(self, bot_id: int) -> Bot:
        return self._send("POST", f"/bots/{bot_id}/kill", Bot)

    def list_bot_events(self, bot_id: int, type: str | None = None, page: int = 1, page_size: int = 20) -> BotEventList:
        return self._get(f"/bots/{bot_id}/events", BotEventList, type=type, page=page, page_size=page_size)

    def iter_bot_events(self, bot_id: int, type: str | None = None, page_size: int = 100) -> Iterator[BotEvent]:
        return self._pages(f"/bots/{bot_id}/events", "events", BotEvent.model_validate, type=type, page_size=page_size)

    def list_bot_logs(
        self, bot_id: int, since: datetime | None = None, page: int = 1, page_size: int = 100
    ) -> BotLogList:
        return self._get(f"/bots/{bot_id}/logs", BotLogList, since=since, page=page, page_size=page_size)

    def iter_bot_logs(self, bot_id: int, since: datetime | None = None, page_size: int = 100) -> Iterator[BotLog]:
        return self._pages(f"/bots/{bot_id}/logs", "logs", BotLog.model_validate, since=since, page_size=page_size)

    # --- recordings -------------------------------------------------------------------------------

    def list_recordings(
        self, page: int = 1, page_size: int = 20, status: str | None = None,
        since: datetime | None = None, until: datetime | None = None,
    ) -> RecordingList:  # fmt: skip
        query = {"status": status, "since": since, "until": until}
        return self._get("/recordings", RecordingList, page=page, page_size=page_size, **query)

    def iter_recordings(
        self, status: str | None = None, since: datetime | None = None, until: datetime | None = None,
        page_size: int = 100,
    ) -> Iterator[RecordingResource]:  # fmt: skip
        query = {"status": status, "since": since, "until": until, "page_size": page_size}
        return self._pages("/recordings", "recordings", RecordingResource.model_validate, **query)

    def get_recording(self, bot_id: int) -> RecordingResource:
        return self._get(f"/recordings/{bot_id}", RecordingResource)

    def delete_recording(self, bot_id: int) -> None:
        self._delete(f"/recordings/{bot_id}")

    def get_download_link(self, bot_id: int) -> DownloadLink:
        return self._get(f"/recordings/{bot_id}/download", DownloadLink)

    def download_recording(self, bot_id: int, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """Fetch the recording through a fresh download link (no credentials sent to it) into dest."""
        return self._to_file(self.get_download_link(bot_id).url, dest, resume, auth=False)

    def stream_recording(self, bot_id: int, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """Write the recording to dest from /stream; resumes (HTTP Range) what dest holds and a dropped transfer."""
        return self._to_file(f"/recordings/{bot_id}/stream", dest, resume, auth=True)

    def get_recording_transcription(self, bot_id: int, format: str = "json") -> TranscriptResource | str:
        return self._transcript(f"/recordings/{bot_id}/transcription", format)

    def create_share(self, bot_id: int, expires_in: int | None = None) -> ShareLink:
        return self._send("POST", f"/recordings/{bot_id}/share", ShareLink, query_of(expiresIn=expires_in))

    def get_share(self, bot_id: int) -> ShareLink:
        return self._get(f"/recordings/{bot_id}/share", ShareLink)

    def delete_share(self, bot_id: int) -> None:
        self._delete(f"/recordings/{bot_id}/share")

    def get_shared_recording(self, token: str) -> SharedRecording:
        """What a share link shows (public: sent without credentials)."""
        return parse(self._request("GET", f"/share/{token}", auth=False), SharedRecording)

    def get_shared_transcript(self, token: str) -> TranscriptResource:
        """A share link's transcript, once done (public)."""
        return parse(self._request("GET", f"/share/{token}/transcript", auth=False), TranscriptResource)

    def download_shared_recording(self, token: str, dest: str | os.PathLike[str], resume: bool = True) -> Path:
        """A share link's media into dest, with Range resume (public)."""
        return self._to_file(f"/share/{token}/stream", dest, resume, auth=False)

    # --- transcripts and summaries ----------------------------------------------------------------

    def transcribe(self, bot_id: int, language: str | None = None, model: str | None = None) -> JobState:
        return self._send(
            "POST", f"/transcripts/{bot_id}/transcribe", JobState, query_of(language=language, model=model)
        )

    @overload
    def get_transcript(self, bot_id: int, format: Literal["json"] = "json") -> TranscriptResource: ...
    @overload
    def get_transcript(self, bot_id: int, format: TextFormat) -> str: ...
    def get_transcript(self, bot_id: int, format: str = "json") -> TranscriptResource | str:
        """The transcript (JSON, whatever its status), or once done as text: "txt", "srt" or "vtt"."""
        return self._transcript(f"/transcripts/{bot_id}", format)

    def _transcript(self, path: str, format: str) -> TranscriptResource | str:
        response = check(self._request("GET", path, params={"format": format}))
        return TranscriptResource.model_validate(response.json()) if format == "json" else response.text

    def get_transcript_status(self, bot_id: int) -> JobState:
        return self._get(f"/transcripts/{bot_id}/status", JobState)

    def delete_transcript(self, bot_id: int) -> None:
        self._delete(f"/transcripts/{bot_id}")

    def wait_for_transcript(self, bot_id: int, timeout: float = 600.0) -> TranscriptResource:
        """Block until the bot's transcript is done (following its event stream); TimeoutError after timeout s.

        Raises TranscriptFailedError when the job fails. A transcript not requested yet (404) is waited for:
        with `transcription.auto` it starts when the bot records.
        """
        self._wait(JobWait.transcript(bot_id), timeout)
        return self.get_transcript(bot_id)

    def summarize(self, bot_id: int, style: str = "brief", prompt: str | None = None) -> JobState:
        return self._send("POST", f"/summaries/{bot_id}/summarize", JobState, query_of(style=style, prompt=prompt))

    def get_summary(self, bot_id: int) -> SummaryResource:
        return self._get(f"/summaries/{bot_id}", SummaryResource)

    def get_summary_status(self, bot_id: int) -> JobState:
        return self._get(f"/summaries/{bot_id}/status", JobState)

    def delete_summary(self, bot_id: int) -> None:
        self._delete(f"/summaries/{bot_id}")

    def wait_for_summary(self, bot_id: int, timeout: float = 600.0) -> SummaryResource:
        self._wait(JobWait.summary(bot_id), timeout)
        return self.get_summary(bot_id)

    # --- webhooks ---------------------------------------------------------------------------------

    def list_webhooks(self, page: int = 1, page_size: int = 20) -> WebhookList:
        return self._get("/webhooks", WebhookList, page=page, page_size=page_size)

    def iter_webhooks(self, page_size: int = 100) -> Iterator[Webhook]:
        return self._pages("/webhooks", "webhooks", Webhook.model_validate, page_size=page_size)

    def create_webhook(
        self, url: str, events: list[str] | None = None, body: Body = None, **fields: Any
    ) -> WebhookCreated:
        """A webhook for `events` (every type when None); its `secret` (whsec_…) is in this answer only."""
        data = body_of(body, {"url": url, **({"events": events} if events is not None else {}), **fields})
        return self._send("POST", "/webhooks", WebhookCreated, data)

    def get_webhook(self, webhook_id: int) -> Webhook:
        return self._get(f"/webhooks/{webhook_id}", Webhook)

    def update_webhook(self, webhook_id: int, body: Body = None, **fields: Any) -> WebhookUpdated:
        """Change a webhook; with `rotate_secret=True` the answer carries the new secret."""
        return self._send("PATCH", f"/webhooks/{webhook_id}", WebhookUpdated, body_of(body, fields))

    def delete_webhook(self, webhook_id: int) -> None:
        self._delete(f"/webhooks/{webhook_id}")

    def test_webhook(self, webhook_id: int) -> WebhookTest:
        """Send a `ping` now; the answer is that delivery and its attempt."""
        return self._send("POST", f"/webhooks/{webhook_id}/test", WebhookTest)

    def list_webhook_deliveries(
        self, webhook_id: int, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> DeliveryList:
        path = f"/webhooks/{webhook_id}/deliveries"
        return self._get(path, DeliveryList, status=status, page=page, page_size=page_size)

    def iter_webhook_deliveries(
        self, webhook_id: int, status: str | None = None, page_size: int = 100
    ) -> Iterator[Delivery]:
        path = f"/webhooks/{webhook_id}/deliveries"
        return self._pages(path, "deliveries", Delivery.model_validate, status=status, page_size=page_size)

    def retry_webhook_delivery(self, webhook_id: int, delivery_id: int) -> Delivery:
        """Send one delivery again now."""
        return self._send("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", Delivery)

    # --- events -----------------------------------------------------------------------------------

    def list_events(
        self, bot_id: int | None = None, type: str | None = None, since: datetime | None = None,
        until: datetime | None = None, page: int = 1, page_size: int = 20,
    ) -> BotEventList:  # fmt: skip
        """The caller's events over all bots, newest first, filtered by bot, type and time."""
        query = {"bot_id": bot_id, "type": type, "since": since, "until": until, "page": page, "page_size": page_size}
        return self._get("/events", BotEventList, **query)

    def iter_events(
        self, bot_id: int | None = None, type: str | None = None, since: datetime | None = None,
        until: datetime | None = None, page_size: int = 100,
    ) -> Iterator[BotEvent]:  # fmt: skip
        query = {"bot_id": bot_id, "type": type, "since": since, "until": until, "page_size": page_size}
        return self._pages("/events", "events", BotEvent.model_validate, **query)

    def stream_events(self, last_event_id: str | int | None = None, max_reconnects: int | None = 10) -> EventStream:
        """The caller's events from now on (or after last_event_id) as they happen (GET /events/stream).

        A dropped connection is opened again with Last-Event-ID: no event is lost or repeated.
        """
        return self._events("/events/stream", last_event_id, max_reconnects)

    def stream_bot_events(
        self, bot_id: int, last_event_id: str | int | None = None, max_reconnects: int | None = 10
    ) -> EventStream:
        """One bot's events, all of them from its first (or after last_event_id), then live as they happen."""
        return self._events(f"/bots/{bot_id}/events/stream", last_event_id, max_reconnects)
