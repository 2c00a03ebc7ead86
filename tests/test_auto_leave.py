"""Automatic-leave rules on observed timelines: every rule leaves with its own sub_code, and not before its time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from meetbot.domain.auto_leave import LeaveRules, Observations, update_presence
from meetbot.schemas.bots import AutomaticLeave

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def rules(**settings: object) -> LeaveRules:
    return LeaveRules(AutomaticLeave.model_validate(settings), end_time=None, max_in_call_seconds=3600)


def in_call_at(start: float) -> Observations:
    return Observations(started_at=0.0, in_call_since=start)


def test_no_rules_never_leave() -> None:
    assert rules().in_call(in_call_at(0), 3000, NOW, seconds_since_sound=3000) is None


def test_waiting_room_timeout() -> None:
    obs = Observations(started_at=0.0, waiting_since=5.0)
    r = rules(waitingRoomTimeout=10_000)
    assert r.before_admission(obs, 14.9) is None
    assert r.before_admission(obs, 15.0).sub_code == "waiting_room_timeout"


def test_no_one_joined_then_someone_did() -> None:
    r = rules(noOneJoinedTimeout=60_000)
    obs = in_call_at(0)
    assert r.in_call(obs, 59, NOW, None) is None
    assert r.in_call(obs, 60, NOW, None).sub_code == "no_one_joined"
    update_presence(obs, ("Alice",), 30, [])
    assert r.in_call(obs, 90, NOW, None) is None


def test_everyone_left_counts_from_the_last_departure() -> None:
    r = rules(everyoneLeftTimeout=5_000)
    obs = in_call_at(0)
    update_presence(obs, ("Alice", "Bob"), 1, [])
    update_presence(obs, ("Bob",), 2, [])
    assert r.in_call(obs, 100, NOW, None) is None
    update_presence(obs, (), 10, [])
    assert r.in_call(obs, 14.9, NOW, None) is None
    assert r.in_call(obs, 15, NOW, None).sub_code == "everyone_left"
    update_presence(obs, ("Carol",), 15.5, [])
    assert r.in_call(obs, 30, NOW, None) is None


def test_silence_waits_for_activate_after() -> None:
    r = rules(silenceDetection={"timeout": 10_000, "activateAfter": 60_000})
    obs = in_call_at(0)
    assert r.in_call(obs, 30, NOW, seconds_since_sound=30) is None  # not active yet
    assert r.in_call(obs, 61, NOW, seconds_since_sound=5) is None
    assert r.in_call(obs, 61, NOW, seconds_since_sound=10).sub_code == "silence_timeout"


def test_bot_detection_by_names() -> None:
    r = rules(botDetection={"usingParticipantNames": {"timeout": 5_000, "activateAfter": 0}})
    obs = in_call_at(0)
    patterns = r.rules.bot_detection.using_participant_names.name_patterns
    update_presence(obs, ("Fireflies Notetaker", "Otter Assistant"), 1, patterns)
    assert r.in_call(obs, 5.9, NOW, None) is None
    assert r.in_call(obs, 6, NOW, None).sub_code == "bot_detected"
    update_presence(obs, ("Fireflies Notetaker", "Dana"), 7, patterns)
    assert r.in_call(obs, 20, NOW, None) is None


def test_end_time_and_the_global_cap() -> None:
    capped = LeaveRules(AutomaticLeave(), end_time=NOW + timedelta(minutes=5), max_in_call_seconds=120)
    obs = in_call_at(0)
    assert capped.in_call(obs, 100, NOW, None) is None
    assert capped.in_call(obs, 120, NOW, None).sub_code == "max_duration_reached"
    assert capped.in_call(obs, 10, NOW + timedelta(minutes=5), None).sub_code == "end_time_reached"
