"""The Python SDK (meetbot.client) against the real API served by uvicorn on a loopback port: no mocks."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from meetbot.client import (
    AsyncMeetBotClient,
    AuthenticationError,
    ConflictError,
    MeetBotClient,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ValidationError,
    WebhookVerificationError,
    verify_webhook,
)
from meetbot.client.sse import HEARTBEAT, SSEDecoder
from meetbot.schemas.bots import Bot
from meetbot.schemas.bots import BotStatus as S
from tests.test_client_support import MEETING, PASSWORD, Served, serving, sqlite_settings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(sqlite_settings(tmp_path_factory.mktemp("sdk"))) as served:
        yield served


# --- accounts, keys and bots (sync) -----------------------------------------------------------------


def test_accounts_keys_and_bots(api: Served) -> None:
    email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
    with MeetBotClient(api.url) as client:
        user = client.register(email, PASSWORD, "Ada")
        assert (user.email, user.name) == (email, "Ada")
        with pytest.raises(ConflictError):
            client.register(email, PASSWORD, "Ada again")
        with pytest.raises(AuthenticationError) as wrong:
            client.login(email, "not the password")
        assert wrong.value.status == 401
        pair = client.login(email, PASSWORD)
        assert client.token == pair.access_token and client.get_me().id == user.id
        renewed = client.refresh()
        assert renewed.refresh_token != pair.refresh_token and client.get_me().email == email
        assert client.update_me(name="Ada L.").name == "Ada L."
        created = client.create_api_key("ci")
        assert created.key.startswith("mb_") and created.prefix
        assert [k.id for k in client.iter_api_keys()] == [created.id]
        client.logout()
        assert client.token is None

    with MeetBotClient(api.url, api_key=created.key) as client:
        bot = client.create_bot(meeting_info=MEETING, bot_display_name="Scribe", transcription={"auto": True})
        assert isinstance(bot, Bot) and bot.status == S.READY_TO_DEPLOY and bot.transcription.auto
        assert client.get_bot(bot.id).bot_display_name == "Scribe"
        patched = client.update_bot(bot.id, meeting_title="Planning", automatic_leave={"everyone_left_timeout": 5000})
        assert patched.meeting_title == "Planning" and patched.automatic_leave.everyone_left_timeout == 5000
        listed = client.list_bots()
        assert (listed.total, [b.id for b in listed.bots]) == (1, [bot.id])
        deployed = client.deploy_bot(bot.id)
        assert deployed.status == S.DEPLOYING
        with pytest.raises(ConflictError):
            client.deploy_bot(bot.id)
        assert client.kill_bot(bot.id).status in (S.DONE, S.CALL_ENDED)
        events = client.list_bot_events(bot.id, page_size=100)
        assert next(e.status for e in events.events if e.type == "STATUS_CHANGE") == S.DEPLOYING
        assert [e.id for e in client.iter_bot_events(bot.id, page_size=1)] == [e.id for e in events.events]
        assert client.list_bot_logs(bot.id).total == len(list(client.iter_bot_logs(bot.id)))
        client.delete_bot(bot.id)
        with pytest.raises(NotFoundError) as gone:
            client.get_bot(bot.id)
        assert gone.value.detail == "Bot not found"

        usage = client.get_usage()
        assert usage.bots_total == 0 and usage.api_keys_active == 1
        logs = client.list_api_logs(page_size=5)
        assert logs.total > 5 and logs.logs[0].path == "/api/v1/users/me/usage"
        assert len(list(client.iter_api_logs(page_size=7))) >= logs.total
        key_usage = client.get_api_key_usage(created.id)
        assert key_usage.total_requests > 5 and key_usage.by_status["201"] >= 1
        client.delete_api_key(created.id)
        with pytest.raises(AuthenticationError):
            client.get_me()


def test_validation_errors_keep_their_loc_and_other_users_bots_are_not_found(api: Served) -> None:
    with api.user() as alice, api.user() as bob:
        with pytest.raises(ValidationError) as invalid:
            alice.create_bot(meeting_info={"platform": "skype", "meeting_url": "https://meet.google.com/abc-defg-hij"})
        error = invalid.value
        assert error.status == 422
        assert [(e.loc, e.type) for e in error.errors] == [(["body", "meetingInfo", "platform"], "value_error.const")]
        with pytest.raises(ValidationError) as missing:
            alice.create_bot({})
        assert (
            missing.value.errors[0].loc == ["body", "meetingInfo"] and missing.value.errors[0].msg == "field required"
        )
        with pytest.raises(ValidationError) as bad_page:
            alice.list_bots(page_size=1000)
        assert bad_page.value.errors[0].loc == ["query", "page_size"]

        bot = alice.create_bot(meeting_info=MEETING)
        for call in (bob.get_bot, bob.deploy_bot, bob.delete_bot, bob.get_recording, bob.get_transcript):
            with pytest.raises(NotFoundError):
                call(bot.id)
        assert bob.list_bots().total == 0 and alice.get_bot(bot.id).id == bot.id


def test_pagination_walks_every_page(api: Served) -> None:
    with api.user() as client:
        made = [client.create_bot(meeting_info=MEETING, meeting_title=f"bot {n}").id for n in range(23)]
        assert client.list_bots(page=3, page_size=10).bots.__len__() == 3
        walked = [bot.id for bot in client.iter_bots(page_size=10)]
        assert sorted(walked) == sorted(made) and len(set(walked)) == 23

        async def walk() -> list[int]:
            async with AsyncMeetBotClient(api.url, api_key=client.token) as aclient:
                return [bot.id async for bot in aclient.iter_bots(page_size=4)]

        assert sorted(asyncio.run(walk())) == sorted(made)


def test_async_client(api: Served) -> None:
    async def scenario() -> None:
        email = f"sdk-{uuid.uuid4().hex[:10]}@example.com"
        async with AsyncMeetBotClient(api.url) as client:
            await client.register(email, PASSWORD, "Async")
            await client.login(email, PASSWORD)
            key = await client.create_api_key("async")
        other = api.user()
        async with AsyncMeetBotClient(api.url, api_key=key.key) as client:
            bots = await asyncio.gather(*(client.create_bot(meeting_info=MEETING) for _ in range(3)))
            assert len({bot.id for bot in bots}) == 3
            assert (await client.get_bot(bots[0].id)).id == bots[0].id
            updated = await client.update_bot(bots[0].id, {"meetingTitle": "camelCase body"})
            assert updated.meeting_title == "camelCase body"
            assert (await client.deploy_bot(bots[1].id)).status == S.DEPLOYING
            with pytest.raises(ConflictError):
                await client.deploy_bot(bots[1].id)
            with pytest.raises(ValidationError) as invalid:
                await client.update_bot(bots[0].id, heartbeat_interval="fast")
            assert invalid.value.errors[0].loc == ["body", "heartbeatInterval"]
            with pytest.raises(NotFoundError):
                other.get_bot(bots[0].id)
            await client.delete_bot(bots[2].id)
            with pytest.raises(NotFoundError):
                await client.get_bot(bots[2].id)
            assert sorted([b.id async for b in client.iter_bots(page_size=1)]) == sorted([bots[0].id, bots[1].id])
            assert (await client.get_me()).email == email
            assert (await client.get_usage()).bots_total == 2
        other.close()

    asyncio.run(scenario())


# --- 429 ----------------------------------------------------------------------------------------------


def test_429_is_waited_out_per_retry_after(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, rate_limit_per_minute=4)
    with serving(settings) as served:
        # The same limiter and amount, over a 1-second window instead of a minute, so that the test does not
        # wait a minute: Retry-After is then 1 s.
        limiter = served.services.rate_limiter
        limiter.limits = ((settings.rate_limit_per_minute, 1), limiter.limits[1])
        with served.user() as client:
            ids = [client.get_me().id for _ in range(10)]  # 4 a second: 429s, each waited out and sent again
            assert len(set(ids)) == 1
            assert 429 in {entry.status_code for entry in client.iter_api_logs()}  # the server did refuse some

            impatient = MeetBotClient(served.url, api_key=client.token, retry=RetryPolicy(max_retries=0))
            with pytest.raises(RateLimitError) as limited:
                for _ in range(20):
                    impatient.get_me()
            assert limited.value.status == 429 and 1 <= (limited.value.retry_after or 0) <= 2
            assert limited.value.headers["X-RateLimit-Limit"] == "4"

            short = MeetBotClient(served.url, api_key=client.token, retry=RetryPolicy(max_wait=0.5))
            with pytest.raises(RateLimitError):  # a wait longer than the client may wait: raised at once
                for _ in range(20):
                    short.get_me()

            async def burst() -> int:
                async with AsyncMeetBotClient(served.url, api_key=client.token) as aclient:
                    return len(await asyncio.gather(*(aclient.get_me() for _ in range(8))))

            assert asyncio.run(burst()) == 8


# --- webhook signatures ------------------------------------------------------------------------------


def signed(secret: str, body: bytes) -> dict[str, str]:
    msg_id, now = f"evt_{uuid.uuid4().hex}", datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}


def test_verify_webhook() -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    event = {"id": "evt_1", "type": "bot.status_changed", "createdAt": "2030-01-01T00:00:00.000Z", "data": {"a": 1}}
    body = json.dumps(event).encode()
    headers = signed(secret, body)
    assert verify_webhook(body, headers, secret) == event
    assert verify_webhook(body, {k.title(): v for k, v in headers.items()}, secret) == event
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body.replace(b'"a": 1', b'"a": 2'), headers, secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, headers, "whsec_" + base64.b64encode(os.urandom(24)).decode())
    old = {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        verify_webhook(body, old, secret)


# --- every endpoint has its method ------------------------------------------------------------------

SDK_METHODS = {
    ("POST", "/auth/register"): "register", ("POST", "/auth/login"): "login", ("POST", "/auth/refresh"): "refresh",
    ("POST", "/auth/logout"): "logout", ("GET", "/users/me"): "get_me", ("PATCH", "/users/me"): "update_me",
    ("GET", "/users/me/usage"): "get_usage", ("GET", "/users/me/analytics"): "get_analytics",
    ("GET", "/users/me/api-logs"): "list_api_logs", ("GET", "/api-keys"): "list_api_keys",
    ("POST", "/api-keys"): "create_api_key", ("DELETE", "/api-keys/{id}"): "delete_api_key",
    ("GET", "/api-keys/{id}/usage"): "get_api_key_usage", ("GET", "/bots"): "list_bots",
    ("POST", "/bots"): "create_bot",
    ("GET", "/bots/{id}"): "get_bot", ("PATCH", "/bots/{id}"): "update_bot", ("DELETE", "/bots/{id}"): "delete_bot",
    ("POST", "/bots/{id}/deploy"): "deploy_bot", ("POST", "/bots/{id}/kill"): "kill_bot",
    ("GET", "/bots/{id}/events"): "list_bot_events", ("GET", "/bots/{id}/logs"): "list_bot_logs",
    ("GET", "/bots/{id}/events/stream"): "stream_bot_events", ("GET", "/recordings"): "list_recordings",
    ("GET", "/recordings/{bot_id}"): "get_recording", ("DELETE", "/recordings/{bot_id}"): "delete_recording",
    ("GET", "/recordings/{bot_id}/download"): "get_download_link",
    ("GET", "/recordings/{bot_id}/file"): "download_recording",
    ("GET", "/recordings/{bot_id}/stream"): "stream_recording",
    ("GET", "/recordings/{bot_id}/transcription"): "get_recording_transcription",
    ("POST", "/recordings/{bot_id}/share"): "create_share", ("GET", "/recordings/{bot_id}/share"): "get_share",
    ("DELETE", "/recordings/{bot_id}/share"): "delete_share", ("GET", "/share/{token}"): "get_shared_recording",
    ("GET", "/share/{token}/stream"): "download_shared_recording",
    ("GET", "/share/{token}/transcript"): "get_shared_transcript",
    ("POST", "/transcripts/{bot_id}/transcribe"): "transcribe", ("GET", "/transcripts/{bot_id}"): "get_transcript",
    ("DELETE", "/transcripts/{bot_id}"): "delete_transcript",
    ("GET", "/transcripts/{bot_id}/status"): "get_transcript_status",
    ("POST", "/summaries/{bot_id}/summarize"): "summarize", ("GET", "/summaries/{bot_id}"): "get_summary",
    ("DELETE", "/summaries/{bot_id}"): "delete_summary", ("GET", "/summaries/{bot_id}/status"): "get_summary_status",
    ("GET", "/webhooks"): "list_webhooks", ("POST", "/webhooks"): "create_webhook",
    ("GET", "/webhooks/{id}"): "get_webhook", ("PATCH", "/webhooks/{id}"): "update_webhook",
    ("DELETE", "/webhooks/{id}"): "delete_webhook", ("POST", "/webhooks/{id}/test"): "test_webhook",
    ("GET", "/webhooks/{id}/deliveries"): "list_webhook_deliveries",
    ("POST", "/webhooks/{id}/deliveries/{delivery_id}/retry"): "retry_webhook_delivery",
    ("GET", "/events"): "list_events", ("GET", "/events/stream"): "stream_events",
}  # fmt: skip


def test_every_endpoint_of_the_openapi_document_has_a_method(api: Served) -> None:
    def shape(method: str, path: str) -> tuple[str, str]:
        return method.upper(), re.sub(r"\{[^}]*\}", "{}", path)

    document = create_app(api.services.settings, api.services).state.openapi
    http = {"get", "post", "put", "patch", "delete"}
    operations = {shape(m, path) for path, item in document["paths"].items() for m in item if m in http}
    covered = {shape(*operation) for operation in SDK_METHODS}
    assert len(operations) >= 42 and not operations - covered, f"no SDK method for {sorted(operations - covered)}"
    for name in SDK_METHODS.values():
        assert callable(getattr(MeetBotClient, name)) and callable(getattr(AsyncMeetBotClient, name)), name


def test_the_sse_decoder_follows_the_spec() -> None:
    decoder = SSEDecoder()
    lines = [": ping", "id: 7", "event: STATUS_CHANGE", 'data: {"a":', "data: 1}", "", "retry: 2500", "data:x", ""]
    items = [item for line in lines if (item := decoder.feed(line)) is not None]
    assert items[0] is HEARTBEAT
    assert (items[1].id, items[1].event, items[1].json()) == ("7", "STATUS_CHANGE", {"a": 1})
    assert (items[2].id, items[2].event, items[2].data, items[2].retry) == ("7", "message", "x", 2500)
    assert decoder.feed("id") is None and decoder.last_event_id is None  # an empty id resets it
    assert decoder.feed("") is None  # nothing buffered: nothing dispatched
