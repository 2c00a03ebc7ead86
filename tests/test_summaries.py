"""Summaries: the extractive summarizer on a known meeting, the LLM one against a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetbot.errors import SummaryError
from meetbot.schemas.transcripts import Segment, SummaryBody, TranscriptBody
from meetbot.settings import Settings
from meetbot.summaries import Summarizer, summarizer_for
from meetbot.summaries.backends.extractive import ExtractiveSummarizer
from meetbot.summaries.backends.llm import LLMSummarizer
from tests.support import free_port

API_KEY = "sk-test-5ecret-never-logged-8f3a"
MODEL = "test-model-1"

MEETING = [
    ("Alice", "Good morning everyone, thanks for joining the quarterly planning meeting."),
    ("Bob", "Morning. I have the budget numbers from finance ready."),
    ("Carol", "Great, and I have an update on the product launch."),
    ("Alice", "Let's start with the budget. The marketing budget is ten percent over plan this quarter."),
    ("Bob", "Right, the overspend came from the conference sponsorship and the new ad campaign."),
    ("Bob", "The finance team wants a revised budget that cuts the ad campaign spend."),
    ("Carol", "Cutting the ad campaign would hurt the product launch, so we should cut the sponsorship instead."),
    ("Alice", "Agreed, we keep the ad campaign and drop the second conference sponsorship."),
    ("Alice", "Bob will send the budget by Friday."),
    ("Bob", "Yes, the revised budget goes to finance with the new numbers."),
    ("Carol", "On the product launch, the launch date is still the fifteenth of next month."),
    ("Carol", "The beta customers reported two bugs in the export feature, and engineering fixed both."),
    ("Bob", "That is good news for the launch."),
    ("Carol", "Alice, can you book the room?"),
    ("Alice", "Sure, the large room on the third floor is free for the launch rehearsal."),
    ("Carol", "I'll draft the announcement."),
    ("Bob", "The announcement should mention the new export feature."),
    ("Alice", "It will be a busy month for the whole team."),
    ("Bob", "Okay."),
    ("Alice", "Thanks everyone, see you next week."),
]


def transcript(lines: list[tuple[str, str]] = MEETING, seconds: float = 6.0) -> TranscriptBody:
    return TranscriptBody(
        language="en",
        duration_seconds=len(lines) * seconds,
        model="tiny.en",
        segments=[
            Segment(start=i * seconds, end=(i + 1) * seconds - 0.5, speaker=speaker, text=text)
            for i, (speaker, text) in enumerate(lines)
        ],
    )


# --- extractive ---------------------------------------------------------------------------------------------------


def test_extractive_action_items_have_their_owners() -> None:
    result = ExtractiveSummarizer().summarize(transcript())

    owners = {item.text: item.owner for item in result.action_items}
    assert owners["Bob will send the budget by Friday."] == "Bob"
    assert owners["Alice, can you book the room?"] == "Alice"
    assert owners["I'll draft the announcement."] == "Carol"  # "I" is the sentence's speaker
    assert owners["The announcement should mention the new export feature."] is None  # no person named
    assert "It will be a busy month for the whole team." not in owners  # "it will" commits nobody
    assert not any(text.startswith("Let's start") for text in owners)  # running the meeting is no task
    assert result.model == "extractive"
    assert 1 <= len(result.key_points) <= 5
    assert len(set(result.key_points)) == len(result.key_points)


def test_extractive_is_deterministic_and_brief_is_shorter() -> None:
    summarizer = ExtractiveSummarizer()
    brief = summarizer.summarize(transcript(), "brief")
    assert summarizer.summarize(transcript(), "brief") == brief
    assert ExtractiveSummarizer().summarize(transcript(), "brief").model_dump() == brief.model_dump()

    detailed = summarizer.summarize(transcript(), "detailed")
    assert len(brief.summary) < len(detailed.summary)
    assert len(brief.key_points) <= len(detailed.key_points)
    # the summary is the meeting's own sentences (fillers trimmed) in the order said, led by the speakers' names
    said = " ".join(text for _, text in MEETING).lower()
    pieces = [piece.split(": ", 1)[-1].lower() for piece in detailed.summary.replace(". ", ".|").split("|")]
    positions = [said.index(piece) for piece in pieces]
    assert positions == sorted(positions) and len(pieces) == 7
    assert detailed.summary.split(":", 1)[0] in {"Alice", "Bob", "Carol"}


def test_extractive_short_and_empty_transcripts() -> None:
    short = ExtractiveSummarizer().summarize(transcript([("Dana", "We need to ship the fix today.")]), "detailed")
    assert short.summary == "Dana: We need to ship the fix today."
    assert [(item.text, item.owner) for item in short.action_items] == [("We need to ship the fix today.", None)]

    for empty in (transcript([]), transcript([("Dana", "   ")])):
        with pytest.raises(SummaryError, match="no speech to summarize"):
            ExtractiveSummarizer().summarize(empty)


def test_summarizer_for_picks_by_settings(tmp_path: Path) -> None:
    assert isinstance(
        summarizer_for(Settings(data_dir=tmp_path, llm_base_url=None, llm_model=None)), ExtractiveSummarizer
    )
    assert isinstance(
        summarizer_for(Settings(data_dir=tmp_path, llm_base_url="http://x/v1", llm_model=None)), ExtractiveSummarizer
    )
    chosen = summarizer_for(
        Settings(data_dir=tmp_path, llm_base_url="http://x/v1", llm_model=MODEL, llm_api_key=API_KEY)
    )
    assert isinstance(chosen, LLMSummarizer) and isinstance(chosen, Summarizer)
    assert chosen.name == "llm" and API_KEY not in repr(chosen)


# --- LLM against a fake OpenAI-compatible server -------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], Awaitable[Response]]


def completion(content: str) -> JSONResponse:
    return JSONResponse(
        {"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
         "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
    )  # fmt: skip


VALID = {
    "summary": "The team cut the sponsorship and kept the launch date.",
    "keyPoints": ["Marketing is ten percent over budget", "Launch on the fifteenth"],
    "actionItems": [
        {"text": "Send the revised budget by Friday", "owner": "Bob"},
        {"text": "Book the room", "owner": "alice"},
        {"text": "Keep an eye on costs", "owner": None},
    ],
}


class FakeLLM:
    """Records every request; answers with the handler a test sets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.handler: Handler = self._valid

    async def _valid(self, body: dict[str, Any]) -> Response:
        return completion(json.dumps(VALID))

    async def endpoint(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        return await self.handler(body)


@contextmanager
def running_fake_llm() -> Iterator[tuple[FakeLLM, str]]:
    fake = FakeLLM()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.endpoint, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake LLM server did not start"
        time.sleep(0.02)
    try:
        yield fake, f"http://127.0.0.1:{port}/v1/"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeLLM, str]]:
    with running_fake_llm() as served:
        yield served


@pytest.fixture
def fake(fake_server: tuple[FakeLLM, str]) -> FakeLLM:
    server = fake_server[0]
    server.requests.clear()
    server.handler = server._valid
    return server


@pytest.fixture(autouse=True)
def key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.__dict__)


def llm(tmp_path: Path, base_url: str, **settings: Any) -> LLMSummarizer:
    chosen = summarizer_for(
        Settings(data_dir=tmp_path, llm_base_url=base_url, llm_model=MODEL, llm_api_key=API_KEY, **settings)
    )
    assert isinstance(chosen, LLMSummarizer)
    return chosen


def test_llm_sends_the_transcript_and_returns_its_summary(
    tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str], caplog: pytest.LogCaptureFixture
) -> None:
    result = llm(tmp_path, fake_server[1]).summarize(transcript(), "detailed", prompt="Focus on the budget.")

    assert result == SummaryBody(
        summary=VALID["summary"],
        key_points=VALID["keyPoints"],
        action_items=[
            {"text": "Send the revised budget by Friday", "owner": "Bob"},
            {"text": "Book the room", "owner": "Alice"},  # matched to the speaker's name
            {"text": "Keep an eye on costs", "owner": None},
        ],
        model=MODEL,
    )
    [request] = fake.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == MODEL and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    text = "\n".join(message["content"] for message in body["messages"])
    assert [message["role"] for message in body["messages"]] == ["system", "user"]
    assert "[00:00] Alice: Good morning everyone, thanks for joining the quarterly planning meeting." in text
    assert "[00:48] Alice: Bob will send the budget by Friday." in text
    assert "[01:30] Carol: I'll draft the announcement." in text
    assert "Focus on the budget." in text and "keyPoints" in text and "paragraphs" in text

    llm(tmp_path, fake_server[1]).summarize(transcript(), "brief")
    brief_system = fake.requests[-1]["body"]["messages"][0]["content"]
    assert "2 to 4 sentences" in brief_system and "Focus on the budget." not in brief_system
    assert {"summarizing with an LLM", "LLM call"} <= {r.getMessage() for r in caplog.records}  # logs are checked


def test_llm_retries_an_invalid_answer_once(tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]) -> None:
    async def invalid_then_valid(body: dict[str, Any]) -> Response:
        return completion("Sure! Here is the summary." if len(fake.requests) == 1 else json.dumps(VALID))

    fake.handler = invalid_then_valid
    result = llm(tmp_path, fake_server[1]).summarize(transcript())

    assert result.summary == VALID["summary"]
    assert len(fake.requests) == 2
    retry = fake.requests[1]["body"]["messages"]
    assert [message["role"] for message in retry] == ["system", "user", "assistant", "user"]
    assert retry[2]["content"] == "Sure! Here is the summary."
    assert "not valid JSON" in retry[3]["content"]


def test_llm_gives_up_after_two_invalid_answers(
    tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]
) -> None:
    async def wrong_shape(body: dict[str, Any]) -> Response:
        return completion(json.dumps({"keyPoints": "not a list", "actionItems": []}))

    fake.handler = wrong_shape
    with pytest.raises(SummaryError) as caught:
        llm(tmp_path, fake_server[1]).summarize(transcript())
    assert len(fake.requests) == 2
    assert "summary: Field required" in str(caught.value) and "keyPoints" in str(caught.value)
    assert caught.value.status_code == 422


def test_llm_timeout_fails_quickly(tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]) -> None:
    async def slow(body: dict[str, Any]) -> Response:
        await asyncio.sleep(2.5)
        return completion(json.dumps(VALID))

    fake.handler = slow
    started = time.monotonic()
    with pytest.raises(SummaryError, match="timed out"):
        llm(tmp_path, fake_server[1], llm_timeout_seconds=1).summarize(transcript())
    assert time.monotonic() - started < 2.2
    assert len(fake.requests) == 1


def test_llm_http_error_names_the_status_not_the_key(
    tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]
) -> None:
    async def broken(body: dict[str, Any]) -> Response:
        return JSONResponse({"error": {"message": f"internal failure for key {API_KEY}"}}, status_code=500)

    fake.handler = broken
    with pytest.raises(SummaryError) as caught:
        llm(tmp_path, fake_server[1]).summarize(transcript())
    assert "HTTP 500" in str(caught.value) and "internal failure" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert len(fake.requests) == 1


def test_llm_long_transcript_is_summarized_in_parts_then_merged(
    tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]
) -> None:
    async def per_call(body: dict[str, Any]) -> Response:
        n = len(fake.requests)
        answer = VALID | {"summary": f"answer {n}", "actionItems": [{"text": f"task {n}", "owner": "Carol"}]}
        return completion(json.dumps(answer))

    fake.handler = per_call
    long_meeting = MEETING * 6  # about 8 000 characters of lines
    summarizer = LLMSummarizer(fake_server[1], MODEL, API_KEY, timeout=5, part_chars=2_000)
    result = summarizer.summarize(transcript(long_meeting), prompt="Mention the launch.")

    calls = [request["body"]["messages"] for request in fake.requests]
    parts = len(calls) - 1
    assert parts >= 4
    for i, messages in enumerate(calls[:-1], 1):
        assert f"part {i} of {parts}" in messages[0]["content"]
        assert len(messages[1]["content"]) <= 2_000 + len("Transcript part:\n")
        assert "Mention the launch." in messages[0]["content"]
    assert "[00:00] Alice: Good morning" in calls[0][1]["content"]
    assert (
        f"[{(len(long_meeting) - 1) * 6 // 60:02d}:{(len(long_meeting) - 1) * 6 % 60:02d}] Alice: Thanks"
        in (calls[-2][1]["content"])
    )
    merge = calls[-1]
    assert "merge" in merge[0]["content"] and "Mention the launch." in merge[0]["content"]
    merged_parts = json.loads(merge[1]["content"])
    assert [part["summary"] for part in merged_parts] == [f"answer {i}" for i in range(1, parts + 1)]
    assert result.summary == f"answer {parts + 1}"
    assert [(item.text, item.owner) for item in result.action_items] == [(f"task {parts + 1}", "Carol")]


def test_llm_connection_refused(tmp_path: Path) -> None:
    with pytest.raises(SummaryError, match="could not connect"):
        llm(tmp_path, f"http://127.0.0.1:{free_port()}/v1").summarize(transcript())


def test_llm_empty_transcript_makes_no_call(tmp_path: Path, fake: FakeLLM, fake_server: tuple[FakeLLM, str]) -> None:
    with pytest.raises(SummaryError, match="no speech to summarize"):
        llm(tmp_path, fake_server[1]).summarize(transcript([]))
    assert fake.requests == []
