"""Automatic-leave rules: given what the bot observed over time, whether it should leave now and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from meetbot.schemas.bots import AutomaticLeave


@dataclass
class Observations:
    """What the runner saw; times are monotonic seconds."""

    started_at: float  # runner start
    waiting_since: float | None = None  # first seen in the waiting room
    in_call_since: float | None = None
    others_present_since: float | None = None  # someone (not the bot) currently present
    alone_since: float | None = None  # nobody else present, after someone was
    anyone_joined: bool = False
    humans_present_since: float | None = None
    only_bots_since: float | None = None
    last_participant_event: float | None = None
    participants: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class LeaveDecision:
    sub_code: str
    description: str


def _ms(value: int | None) -> float | None:
    return None if value is None else value / 1000.0


def looks_like_bot(name: str, patterns: list[str]) -> bool:
    lowered = name.lower()
    return any(pattern.lower() in lowered for pattern in patterns if pattern)


class LeaveRules:
    """Evaluates the bot's automaticLeave settings, endTime and the global in-call cap."""

    def __init__(
        self,
        rules: AutomaticLeave,
        end_time: datetime | None,
        max_in_call_seconds: float,
    ) -> None:
        self.rules = rules
        self.end_time = end_time
        self.max_in_call_seconds = max_in_call_seconds

    def before_admission(self, obs: Observations, now: float) -> LeaveDecision | None:
        timeout = _ms(self.rules.waiting_room_timeout)
        if timeout is not None and obs.waiting_since is not None and now - obs.waiting_since >= timeout:
            return LeaveDecision("waiting_room_timeout", f"Not admitted within {timeout:g} s")
        return None

    def in_call(
        self, obs: Observations, now: float, wall_now: datetime, seconds_since_sound: float | None
    ) -> LeaveDecision | None:
        if self.end_time is not None and wall_now >= self.end_time:
            return LeaveDecision("end_time_reached", "The bot's endTime was reached")
        if obs.in_call_since is None:
            return None
        in_call = now - obs.in_call_since
        if in_call >= self.max_in_call_seconds:
            return LeaveDecision("max_duration_reached", f"In call for the maximum {self.max_in_call_seconds:g} s")
        r = self.rules
        no_one = _ms(r.no_one_joined_timeout)
        if no_one is not None and not obs.anyone_joined and in_call >= no_one:
            return LeaveDecision("no_one_joined", f"No one joined within {no_one:g} s")
        everyone_left = _ms(r.everyone_left_timeout)
        if everyone_left is not None and obs.alone_since is not None and now - obs.alone_since >= everyone_left:
            return LeaveDecision("everyone_left", f"Alone in the call for {everyone_left:g} s")
        if r.silence_detection is not None and seconds_since_sound is not None:
            rule = r.silence_detection
            if in_call >= _ms(rule.activate_after) and seconds_since_sound >= rule.timeout / 1000:
                return LeaveDecision("silence_timeout", f"Silent for {rule.timeout / 1000:g} s")
        return self._bot_detection(obs, now, in_call, seconds_since_sound)

    def _bot_detection(
        self, obs: Observations, now: float, in_call: float, seconds_since_sound: float | None
    ) -> LeaveDecision | None:
        detection = self.rules.bot_detection
        if detection is None:
            return None
        names = detection.using_participant_names
        if (
            names is not None
            and in_call >= names.activate_after / 1000
            and obs.only_bots_since is not None
            and now - obs.only_bots_since >= names.timeout / 1000
        ):
            return LeaveDecision("bot_detected", "Only other bots remain in the call")
        events = detection.using_participant_events
        if events is None or in_call < events.activate_after / 1000 or seconds_since_sound is None:
            return None
        quiet_since = obs.last_participant_event or obs.in_call_since or now
        timeout = events.timeout / 1000
        if now - quiet_since >= timeout and seconds_since_sound >= timeout:
            return LeaveDecision("bot_detected", "No participant activity: only bots seem present")
        return None


def update_presence(obs: Observations, participants: tuple[str, ...], now: float, bot_patterns: list[str]) -> None:
    """Fold one look at the participant list into the observations."""
    if participants != obs.participants:
        obs.last_participant_event = now
    obs.participants = participants
    if participants:
        obs.anyone_joined = True
        obs.alone_since = None
        if obs.others_present_since is None:
            obs.others_present_since = now
    else:
        obs.others_present_since = None
        if obs.anyone_joined and obs.alone_since is None:
            obs.alone_since = now
    humans = [name for name in participants if not looks_like_bot(name, bot_patterns)]
    if participants and not humans:
        if obs.only_bots_since is None:
            obs.only_bots_since = now
    else:
        obs.only_bots_since = None
