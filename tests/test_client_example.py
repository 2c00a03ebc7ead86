"""The README's SDK example, run as written against a running API with a real bot in a simulated Google Meet."""

from __future__ import annotations

import io
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from meetbot.client import MeetBotClient
from meetbot.db import migrate
from meetbot.queue import build_broker
from tests.conftest import make_settings
from tests.support import control, wait_for, wait_for_speech
from tests.test_client_support import Served, serving
from workers.process import WorkerProcess

pytestmark = pytest.mark.browser
README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"<!-- sdk-example -->\s*```python\n(.*?)```\s*<!-- /sdk-example -->", re.S)


def readme_example() -> str:
    match = EXAMPLE.search(README.read_text(encoding="utf-8"))
    assert match, "README.md has no <!-- sdk-example --> block"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 10, "the README example is longer than 10 lines"
    return code


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The API over HTTP with a bot runner and transcription workers (embedded mode: one in-process broker)."""
    tmp = tmp_path_factory.mktemp("sdk-example")
    db_url = f"sqlite:///{tmp / 'meetbot.db'}"
    migrate(db_url)
    settings = make_settings(tmp, db_url, bots_per_process=1, join_timeout_seconds=20)
    broker = build_broker(settings)
    workers = WorkerProcess(settings, broker, queues={"bots", "transcribe"})
    workers.start()
    try:
        with serving(settings, broker) as served:
            yield served
    finally:
        workers.stop()


def run_meeting(client: MeetBotClient, simulator: str, meeting: str) -> None:
    """The meeting's side: once the example's bot is in the call, Alice joins, speaks, and the meeting ends."""
    bot_id = wait_for(lambda: next(iter(client.list_bots().bots), None), 30, "the example's bot").id
    wait_for(lambda: client.get_bot(bot_id).status == "IN_CALL", 60, "the bot to join the call", interval=0.25)
    control(simulator, "google", meeting, action="join", name="Alice")
    control(simulator, "google", meeting, action="speak", name="Alice", audio="alice.wav")
    wait_for_speech(simulator, "google", meeting, "Alice to finish speaking")
    time.sleep(1.5)
    control(simulator, "google", meeting, action="end")


def test_the_readme_example_prints_the_meetings_transcript(live_api: Served, simulator: str) -> None:
    meeting = f"m{uuid.uuid4().hex[:8]}"
    client = live_api.user()
    code = readme_example()
    for placeholder, value in {
        '"http://127.0.0.1:8000"': repr(live_api.url),
        '"mb_..."': repr(client.token),
        '"https://meet.google.com/abc-defg-hij"': repr(f"{simulator}/google/{meeting}"),
    }.items():
        assert code.count(placeholder) == 1, placeholder
        code = code.replace(placeholder, value)

    printed = io.StringIO()
    failure: list[BaseException] = []

    def example() -> None:
        try:
            with redirect_stdout(printed):
                exec(compile(code, "README.md#sdk-example", "exec"), {"__name__": "__sdk_example__"})
        except BaseException as exc:
            failure.append(exc)

    runner = threading.Thread(target=example, daemon=True)
    runner.start()
    run_meeting(client, simulator, meeting)
    runner.join(timeout=180)
    assert not runner.is_alive(), "the README example did not finish within 3 minutes of the meeting's end"
    assert not failure, failure
    text = printed.getvalue().lower()
    assert "alice" in text and "simulated meeting" in text, text
