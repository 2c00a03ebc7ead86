"""The SDK's streaming side against the real API and workers: recordings, live events, transcripts, webhooks."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from meetbot.client import (
    AsyncMeetBotClient,
    ConflictError,
    MeetBotClient,
    NotFoundError,
    ValidationError,
    WebhookVerificationError,
    verify_webhook,
)
from meetbot.schemas.bots import BotStatus as S
from tests.test_client_support import (
    MEETING,
    CuttingProxy,
    Served,
    emit,
    finished_bot_with_recording,
    receiver,
    served_with_workers,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API with workers for transcripts, summaries and webhooks (no bot runner), sharing one broker."""
    with served_with_workers(tmp_path_factory.mktemp("sdk-streams"), {"transcribe", "summarize", "webhooks"}) as served:
        yield served


# --- recordings ------------------------------------------------------------------------------------


def test_recording_download_stream_resume_and_share(api: Served, recording_file: Path, tmp_path: Path) -> None:
    data = recording_file.read_bytes()
    with api.user() as client, api.user() as stranger:
        bot_id = finished_bot_with_recording(api, client, recording_file)
        recording = client.get_recording(bot_id)
        assert recording.size_bytes == len(data) and recording.meeting_title == "SDK sync"
        assert [r.bot_id for r in client.iter_recordings()] == [bot_id]
        assert client.list_recordings(status="DONE").total == 1
        link = client.get_download_link(bot_id)
        assert link.expires_at > datetime.now(UTC)

        assert client.download_recording(bot_id, tmp_path / "download.mp4").read_bytes() == data
        assert client.stream_recording(bot_id, tmp_path / "stream.mp4").read_bytes() == data
        partial = tmp_path / "partial.mp4"
        partial.write_bytes(data[:12345])  # an earlier transfer that stopped: only the rest is fetched
        assert client.stream_recording(bot_id, partial).read_bytes() == data
        assert client.stream_recording(bot_id, partial).read_bytes() == data  # complete already: 416, kept
        partial.write_bytes(data + b"something else")  # more than the recording: not a prefix of it
        assert client.stream_recording(bot_id, partial).read_bytes() == data
        partial.write_bytes(b"x" * 10)
        assert client.stream_recording(bot_id, partial, resume=False).read_bytes() == data
        with pytest.raises(NotFoundError):
            stranger.stream_recording(bot_id, tmp_path / "theirs.mp4")

        proxy = CuttingProxy(api.url)
        try:
            cut = MeetBotClient(proxy.url, api_key=client.token)
            proxy.cut_after = len(data) // 3  # the connection dies a third of the way through
            assert cut.stream_recording(bot_id, tmp_path / "cut.mp4").read_bytes() == data
            assert proxy.connections == 2
            proxy.cut_after = len(data) // 2

            async def fetch() -> bytes:
                async with AsyncMeetBotClient(proxy.url, api_key=client.token) as aclient:
                    return (await aclient.stream_recording(bot_id, tmp_path / "acut.mp4")).read_bytes()

            assert asyncio.run(fetch()) == data and proxy.connections == 4
        finally:
            proxy.close()

        share = client.create_share(bot_id, expires_in=3600)
        assert client.get_share(bot_id).token == share.token and share.expires_at is not None
        shared = client.get_shared_recording(share.token)
        assert shared.title == "SDK sync" and not shared.audio_only
        assert client.get_recording(bot_id).share_url == share.url
        client.delete_share(bot_id)
        with pytest.raises(NotFoundError):
            client.get_share(bot_id)
        with pytest.raises(NotFoundError):
            client.get_transcript_status(bot_id)
        client.delete_recording(bot_id)
        with pytest.raises(NotFoundError):
            client.get_recording(bot_id)


# --- events: the feed, the live streams, and waiting for a transcript -------------------------------


def test_event_streams_are_live_and_resume_after_a_dropped_connection(api: Served) -> None:
    proxy = CuttingProxy(api.url)
    try:
        with api.user() as client, MeetBotClient(proxy.url, api_key=client.token) as viewer:
            bot = client.create_bot(meeting_info=MEETING)
            with viewer.stream_bot_events(bot.id) as stream:
                client.deploy_bot(bot.id)
                first = next(stream)
                assert (first.type, first.status, first.bot_id) == ("STATUS_CHANGE", S.DEPLOYING, bot.id)
                written = emit(api, bot.id, 3)
                assert [next(stream).id for _ in written] == written
                proxy.drop()  # the connection dies; events written meanwhile come after the reconnect
                written = emit(api, bot.id, 3)
                assert [next(stream).id for _ in written] == written
                assert proxy.connections == 2 and stream.last_event_id == str(written[-1])
            resumed = viewer.stream_bot_events(bot.id, last_event_id=written[0])
            assert [next(resumed).id for _ in written[1:]] == written[1:]
            resumed.close()
            with pytest.raises(NotFoundError), api.user() as stranger:
                next(stranger.stream_bot_events(bot.id))

            async def follow_all_bots() -> list[int]:
                other = client.create_bot(meeting_info=MEETING)
                start = client.list_events(page_size=1).events[0].id
                aclient = AsyncMeetBotClient(proxy.url, api_key=client.token)
                async with aclient, aclient.stream_events(last_event_id=start) as feed:
                    written = await asyncio.to_thread(emit, api, other.id, 2)
                    seen = [(await anext(feed)).id for _ in written]
                    proxy.drop()
                    written += await asyncio.to_thread(emit, api, bot.id, 2)
                    seen += [(await anext(feed)).id for _ in written[2:]]
                    assert feed.last_event_id == str(written[-1])
                    return seen if seen == written else [*seen, -1]

            connections = proxy.connections
            assert asyncio.run(follow_all_bots()) != [-1] and proxy.connections == connections + 2

            feed = client.list_events(bot_id=bot.id, type="PARTICIPANT_JOIN", page_size=2)
            assert feed.total == 8 and [e.type for e in feed.events] == ["PARTICIPANT_JOIN"] * 2
            everything = list(client.iter_events(page_size=3))
            assert len(everything) == client.list_events().total >= 11
            assert all(a.id > b.id for a, b in pairwise(everything))  # newest first
            since = client.list_events(since=datetime.now(UTC))
            assert since.total == 0

            analytics = client.get_analytics(days=7)
            assert len(analytics.series) == 7 and analytics.totals.bots_created == 2
            assert client.get_api_key_usage(client.list_api_keys().api_keys[0].id).total_requests > 0
    finally:
        proxy.close()


@pytest.fixture(scope="module")
def speech_recording(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An audio recording of Alice's line (espeak-ng), in the spool's format."""
    path = tmp_path_factory.mktemp("speech") / "speech.m4a"
    cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(media_dir / "alice.wav"), "-c:a", "aac", "-ar", "48000"]
    subprocess.run([*cmd, "-movflags", "+frag_keyframe+empty_moov+default_base_moof", str(path)], check=True)
    return path


def test_wait_for_transcript_and_summary(api: Served, speech_recording: Path) -> None:
    with api.user() as client, api.user() as stranger:
        bot_id = finished_bot_with_recording(api, client, speech_recording)
        with pytest.raises(TimeoutError):  # nothing asked for yet: waited for, until the timeout
            client.wait_for_transcript(bot_id, timeout=1)
        assert client.transcribe(bot_id, language="en").status == "queued"
        with pytest.raises(ConflictError):
            client.transcribe(bot_id)
        transcript = client.wait_for_transcript(bot_id, timeout=60)
        assert transcript.status == "done" and "alice" in transcript.text.lower()
        assert client.get_transcript(bot_id, format="vtt").startswith("WEBVTT")
        assert "Alice" in client.get_transcript(bot_id, format="txt")
        assert client.get_recording_transcription(bot_id).status == "done"
        assert client.get_transcript_status(bot_id).status == "done"
        with pytest.raises(NotFoundError):
            stranger.wait_for_transcript(bot_id, timeout=5)

        client.summarize(bot_id)
        summary = client.wait_for_summary(bot_id, timeout=30)
        assert summary.status == "done" and summary.summary

        async def wait_async() -> str:
            async with AsyncMeetBotClient(api.url, api_key=client.token) as aclient:
                return (await aclient.wait_for_transcript(bot_id, timeout=10)).text

        assert asyncio.run(wait_async()) == transcript.text
        client.delete_summary(bot_id)
        client.delete_transcript(bot_id)
        with pytest.raises(NotFoundError):
            client.get_transcript_status(bot_id)


# --- webhooks ----------------------------------------------------------------------------------------


# --- webhooks ----------------------------------------------------------------------------------------


def test_webhooks_and_a_signed_ping(api: Served) -> None:
    with receiver() as (url, received):
        client, other = api.user(), api.user()
        hook = client.create_webhook(url, events=["bot.status_changed"], description="ci")
        assert hook.secret.startswith("whsec_") and hook.events == ["bot.status_changed"] and hook.active
        assert client.get_webhook(hook.id).description == "ci"
        assert [w.id for w in client.iter_webhooks()] == [hook.id] and client.list_webhooks().total == 1

        ping = client.test_webhook(hook.id)
        assert ping.attempt is not None and ping.attempt.status_code == 204
        body, headers = received[-1]
        event = verify_webhook(body, headers, hook.secret)
        assert event["type"] == "ping" and event["id"] == ping.delivery.event_id
        with pytest.raises(WebhookVerificationError):
            verify_webhook(body + b" ", headers, hook.secret)

        again = client.retry_webhook_delivery(hook.id, ping.delivery.id)
        assert again.id == ping.delivery.id
        deadline = time.monotonic() + 15
        while len(received) < 2:
            assert time.monotonic() < deadline, "the retried delivery never arrived"
            time.sleep(0.05)
        assert verify_webhook(*received[-1], hook.secret)["id"] == event["id"]  # the same id: de-duplicable
        deliveries = client.list_webhook_deliveries(hook.id)
        assert [d.id for d in deliveries.deliveries] == [ping.delivery.id]
        assert [d.id for d in client.iter_webhook_deliveries(hook.id, status="delivered")] == [ping.delivery.id]

        rotated = client.update_webhook(hook.id, rotate_secret=True, description="rotated")
        assert rotated.secret and rotated.secret != hook.secret and rotated.description == "rotated"
        with pytest.raises(WebhookVerificationError):
            verify_webhook(body, headers, rotated.secret)
        with pytest.raises(ValidationError) as invalid:
            client.create_webhook("ftp://example.com/hook")
        assert invalid.value.errors[0].loc == ["body", "url"]
        for call in (other.get_webhook, other.test_webhook, other.delete_webhook):
            with pytest.raises(NotFoundError):
                call(hook.id)
        client.delete_webhook(hook.id)
        with pytest.raises(NotFoundError):
            client.get_webhook(hook.id)
