"""Concurrent changes to one bot on PostgreSQL: no lost PATCH field, no PATCH or DELETE of a bot a deploy started."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.services import Services
from tests.conftest import GOOGLE_BOT, Account, make_settings, register_and_login

# Each PATCH sets one field of its own; all of them must be there at the end.
FIELD_PATCHES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], Any], Any]] = [
    ({"botDisplayName": "Racer"}, lambda bot: bot["botDisplayName"], "Racer"),
    ({"meetingTitle": "Weekly sync"}, lambda bot: bot["meetingTitle"], "Weekly sync"),
    ({"heartbeatInterval": 7000}, lambda bot: bot["heartbeatInterval"], 7000),
    ({"recordingSettings": {"retentionDays": 9}}, lambda bot: bot["recordingSettings"]["retentionDays"], 9),
    ({"transcription": {"language": "de"}}, lambda bot: bot["transcription"]["language"], "de"),
    ({"summary": {"auto": True}}, lambda bot: bot["summary"]["auto"], True),
    (
        {"automaticLeave": {"waitingRoomTimeout": 60000}},
        lambda bot: bot["automaticLeave"]["waitingRoomTimeout"],
        60000,
    ),
    ({"meetingInfo": {"meetingPassword": "s3cret"}}, lambda bot: bot["meetingInfo"]["meetingPassword"], "********"),
]


@pytest.fixture
def pg_client(tmp_path: Path, pg_url: str) -> Iterator[TestClient]:
    settings = make_settings(tmp_path, pg_url, api_worker_threads=16)
    services = Services.from_settings(settings)
    with TestClient(create_app(settings, services), base_url="http://testserver/api/v1") as client:
        yield client


def all_at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls in threads released together; their responses in order."""
    start = threading.Barrier(len(calls))
    responses: list[httpx.Response | None] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        responses[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(response is not None for response in responses)
    return [response for response in responses if response is not None]


def new_bot(client: TestClient, account: Account) -> int:
    response = client.post("/bots", json=GOOGLE_BOT, headers=account.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_concurrent_patches_keep_every_field(pg_client: TestClient) -> None:
    account = register_and_login(pg_client)
    for _ in range(5):
        bot_id = new_bot(pg_client, account)
        calls = [
            partial(pg_client.patch, f"/bots/{bot_id}", json=patch, headers=account.headers)
            for patch, _, _ in FIELD_PATCHES
        ]
        responses = all_at_once(calls)
        assert [response.status_code for response in responses] == [200] * len(FIELD_PATCHES)
        bot = pg_client.get(f"/bots/{bot_id}", headers=account.headers).json()
        assert [read(bot) for _, read, _ in FIELD_PATCHES] == [expected for _, _, expected in FIELD_PATCHES]


def test_a_patch_never_changes_a_bot_a_deploy_started(pg_client: TestClient) -> None:
    account = register_and_login(pg_client)
    new_url = {"meetingInfo": {"meetingUrl": "https://meet.google.com/xyz-wxyz-xyz"}}
    outcomes = set()
    for _ in range(12):
        bot_id = new_bot(pg_client, account)
        patch, deploy = all_at_once(
            [
                partial(pg_client.patch, f"/bots/{bot_id}", json=new_url, headers=account.headers),
                partial(pg_client.post, f"/bots/{bot_id}/deploy", headers=account.headers),
            ]
        )
        assert deploy.status_code == 200, deploy.text
        bot = pg_client.get(f"/bots/{bot_id}", headers=account.headers).json()
        if patch.status_code == 200:  # the patch came first: the deploy took the new meeting
            assert patch.json()["status"] == "READY_TO_DEPLOY"
            assert bot["meetingInfo"]["meetingUrl"] == new_url["meetingInfo"]["meetingUrl"]
        else:  # the deploy came first: the meeting is the one it was deployed with
            assert patch.status_code == 409, patch.text
            assert bot["meetingInfo"]["meetingUrl"] == GOOGLE_BOT["meetingInfo"]["meetingUrl"]
        assert bot["status"] == "DEPLOYING"
        outcomes.add(patch.status_code)
    assert outcomes  # (which of the two won each time is up to the scheduler)


def test_a_delete_and_a_deploy_never_both_win(pg_client: TestClient) -> None:
    account = register_and_login(pg_client)
    for _ in range(12):
        bot_id = new_bot(pg_client, account)
        delete, deploy = all_at_once(
            [
                partial(pg_client.delete, f"/bots/{bot_id}", headers=account.headers),
                partial(pg_client.post, f"/bots/{bot_id}/deploy", headers=account.headers),
            ]
        )
        left = pg_client.get(f"/bots/{bot_id}", headers=account.headers)
        if delete.status_code == 204:
            assert deploy.status_code == 404 and left.status_code == 404, deploy.text
        else:
            assert (delete.status_code, deploy.status_code) == (409, 200), (delete.text, deploy.text)
            assert left.json()["status"] == "DEPLOYING"
