"""In-memory state of simulated meetings: guest clients (bots), human participants and the speech queue."""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PLATFORMS = ("google", "zoom", "teams")
MEETING_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_MAX = 80
# A page that has not polled for this long is gone (closed tab, crashed browser): a pre-join client is
# forgotten, a waiting / in-call one is dropped from the meeting ("left"), as the platforms do.
STALE_SECONDS = 15.0
ACTIVE_BOT_STATES = ("waiting", "in_call")
CONTROL_ACTIONS = ("admit", "deny", "end", "remove_bot", "join", "leave", "speak", "reset")


class SimulatorError(Exception):
    """A bad control or page request; the app answers it as JSON {"detail": ...} with this status."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


@dataclass
class BotClient:
    """One page load of a meeting page: a guest (the bot) with the options of its URL."""

    client_id: str
    waiting_room: bool
    audio: str | None
    speaker: str
    passcode: str | None  # the passcode the meeting wants from this guest, None = none asked
    name: str = ""
    state: str = "prejoin"  # prejoin | waiting | in_call | denied | removed | left
    mic_on: bool = True
    camera_on: bool = True
    computer_audio: bool = False  # joined the call's audio (hears the speech)
    last_seen: float = field(default_factory=time.monotonic)
    in_call_since: float = 0.0
    views: int = 0  # views sent to the page; each carries its number, so a late answer cannot undo a newer one


@dataclass
class Utterance:
    uid: int
    name: str
    audio: str
    state: str = "queued"  # queued | playing | done
    started_at: float = 0.0
    players: set[str] = field(default_factory=set)  # client ids that started playing it
    finished: set[str] = field(default_factory=set)  # client ids that finished (or failed) it


@dataclass
class Meeting:
    platform: str
    meeting_id: str
    ended: bool = False
    clients: dict[str, BotClient] = field(default_factory=dict)
    participants: list[str] = field(default_factory=list)  # humans, in join order
    speech: list[Utterance] = field(default_factory=list)
    url_speech: set[tuple[str, str]] = field(default_factory=set)  # (speaker, audio) queued from URLs
    page_loads: int = 0  # join pages served (for the connect_failures option)


def check_meeting(platform: str, meeting_id: str) -> None:
    if platform not in PLATFORMS:
        raise SimulatorError(404, f"Unknown platform {platform!r}")
    if not MEETING_ID_RE.match(meeting_id):
        raise SimulatorError(404, f"Invalid meeting id {meeting_id!r}")


def clean_name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise SimulatorError(400, f"{what} must be a non-empty string")
    name = " ".join(value.split())
    if len(name) > NAME_MAX:
        raise SimulatorError(400, f"{what} is longer than {NAME_MAX} characters")
    return name


class SimulatorState:
    """All meetings of one simulator process; every public method is atomic under one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._meetings: dict[tuple[str, str], Meeting] = {}
        self._ids = itertools.count(1)

    def count_page_load(self, platform: str, meeting_id: str) -> int:
        """Count one more join page served for this meeting; returns the count so far."""
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            meeting.page_loads += 1
            return meeting.page_loads

    # -- helpers (lock held) -------------------------------------------------------------------------

    def _meeting(self, platform: str, meeting_id: str) -> Meeting:
        check_meeting(platform, meeting_id)
        key = (platform, meeting_id)
        meeting = self._meetings.get(key)
        if meeting is None:
            meeting = self._meetings[key] = Meeting(platform, meeting_id)
        return meeting

    def _client(self, meeting: Meeting, client_id: str) -> BotClient:
        client = meeting.clients.get(client_id)
        if client is None:
            raise SimulatorError(404, "Unknown client (reload the page)")
        return client

    def _refresh(self, meeting: Meeting) -> None:
        """Drop stale pages and move the speech queue on."""
        now = time.monotonic()
        for cid, client in list(meeting.clients.items()):
            if now - client.last_seen > STALE_SECONDS:
                if client.state == "prejoin":
                    del meeting.clients[cid]
                elif client.state in ACTIVE_BOT_STATES:
                    client.state = "left"
        listening = {cid for cid, c in meeting.clients.items() if c.state == "in_call" and not meeting.ended}
        for utt in meeting.speech:
            if utt.state == "done":
                continue
            if utt.state == "playing" and not (utt.players - utt.finished) & listening:
                utt.state = "done"
                continue
            break

    def _current(self, meeting: Meeting) -> Utterance | None:
        return next((u for u in meeting.speech if u.state != "done"), None)

    def _enter_call(self, meeting: Meeting, client: BotClient) -> None:
        client.state = "in_call"
        client.in_call_since = time.monotonic()
        if client.audio:
            key = (client.speaker, client.audio)
            if key not in meeting.url_speech:
                meeting.url_speech.add(key)
                self._queue(meeting, client.speaker, client.audio)

    def _queue(self, meeting: Meeting, name: str, audio: str) -> None:
        if name not in meeting.participants:
            meeting.participants.append(name)
        meeting.speech.append(Utterance(next(self._ids), name, audio))

    def _control_view(self, meeting: Meeting) -> dict[str, Any]:
        current = self._current(meeting)
        playing = current if current is not None and current.state == "playing" else None
        return {
            "platform": meeting.platform,
            "meetingId": meeting.meeting_id,
            "ended": meeting.ended,
            "botPresent": any(c.state == "in_call" for c in meeting.clients.values()),
            "inWaitingRoom": any(c.state == "waiting" for c in meeting.clients.values()),
            "bots": [
                {
                    "name": c.name,
                    "state": c.state,
                    "micOn": c.mic_on,
                    "cameraOn": c.camera_on,
                    "computerAudio": c.computer_audio,
                }
                for c in meeting.clients.values()
            ],
            "participants": list(meeting.participants),
            "activeSpeaker": playing.name if playing else None,
            "speech": [{"name": u.name, "audio": u.audio, "state": u.state} for u in meeting.speech],
        }

    def _client_view(self, meeting: Meeting, client: BotClient) -> dict[str, Any]:
        screen = client.state
        if meeting.ended and client.state not in ("denied", "removed", "left"):
            screen = "ended"
        client.views += 1
        view: dict[str, Any] = {
            "clientId": client.client_id,
            "seq": client.views,
            "state": client.state,
            "screen": screen,
            "name": client.name,
            "waitingRoom": client.waiting_room,
            "needsPasscode": client.passcode is not None,
            "participants": [],
            "speech": None,
        }
        if screen != "in_call":
            return view
        people = [{"name": client.name, "self": True, "bot": True}]
        people += [{"name": n, "self": False, "bot": False} for n in meeting.participants]
        others = sorted(
            (c for c in meeting.clients.values() if c.state == "in_call" and c is not client),
            key=lambda c: c.in_call_since,
        )
        people += [{"name": c.name, "self": False, "bot": True} for c in others]
        view["participants"] = people
        current = self._current(meeting)
        if current is not None and client.client_id not in current.finished:
            offset = time.monotonic() - current.started_at if current.state == "playing" else 0.0
            view["speech"] = {
                "id": current.uid,
                "name": current.name,
                "audio": current.audio,
                "offset": round(offset, 3),
            }
        return view

    # -- page API --------------------------------------------------------------------------------

    def register(
        self,
        platform: str,
        meeting_id: str,
        *,
        waiting_room: bool = False,
        audio: str | None = None,
        speaker: str = "Host",
        passcode: str | None = None,
    ) -> dict[str, Any]:
        """A page load: a new guest client in pre-join; returns its view (with clientId)."""
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            self._refresh(meeting)
            client = BotClient(secrets.token_hex(8), waiting_room, audio, speaker, passcode)
            meeting.clients[client.client_id] = client
            return self._client_view(meeting, client)

    def poll(self, platform: str, meeting_id: str, client_id: str) -> dict[str, Any]:
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            client = self._client(meeting, client_id)
            client.last_seen = time.monotonic()
            self._refresh(meeting)
            return self._client_view(meeting, client)

    def client_event(self, platform: str, meeting_id: str, client_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """What the page reports: join click, leave click, device toggles, speech playback."""
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            client = self._client(meeting, client_id)
            client.last_seen = time.monotonic()
            self._refresh(meeting)
            kind = event.get("type")
            error = ""
            if kind == "join":
                error = self._page_join(meeting, client, event)
            elif kind == "leave":
                if client.state in ("prejoin", *ACTIVE_BOT_STATES):
                    client.state = "left"
            elif kind == "devices":
                client.mic_on = bool(event.get("micOn", client.mic_on))
                client.camera_on = bool(event.get("cameraOn", client.camera_on))
            elif kind == "audio":
                client.computer_audio = client.state == "in_call"
            elif kind == "speech":
                self._page_speech(meeting, client, event)
            else:
                raise SimulatorError(400, f"Unknown event type {kind!r}")
            self._refresh(meeting)
            view = self._client_view(meeting, client)
            if error:
                view["error"] = error
            return view

    def _page_join(self, meeting: Meeting, client: BotClient, event: dict[str, Any]) -> str:
        if client.state != "prejoin" or meeting.ended:
            return ""
        client.name = clean_name(event.get("name"))
        client.mic_on = bool(event.get("micOn", True))
        client.camera_on = bool(event.get("cameraOn", True))
        if client.passcode is not None:
            if event.get("passcode") != client.passcode:
                return "Passcode wrong"
            client.passcode = None
        if client.waiting_room:
            client.state = "waiting"
        else:
            self._enter_call(meeting, client)
        return ""

    def _page_speech(self, meeting: Meeting, client: BotClient, event: dict[str, Any]) -> None:
        utt = next((u for u in meeting.speech if u.uid == event.get("id")), None)
        if utt is None or utt.state == "done":
            return
        if event.get("state") == "playing" and client.state == "in_call":
            if utt.state == "queued":
                utt.state = "playing"
                utt.started_at = time.monotonic()
            utt.players.add(client.client_id)
        elif event.get("state") == "done":
            utt.finished.add(client.client_id)

    # -- control API -----------------------------------------------------------------------------

    def control_state(self, platform: str, meeting_id: str) -> dict[str, Any]:
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            self._refresh(meeting)
            return self._control_view(meeting)

    def control(
        self, platform: str, meeting_id: str, action: str, name: str | None = None, audio: str | None = None
    ) -> dict[str, Any]:
        """Act as the host (or another participant); audio must already be checked by the caller."""
        if action not in CONTROL_ACTIONS:
            raise SimulatorError(400, f"Unknown action {action!r}; expected one of {list(CONTROL_ACTIONS)}")
        with self._lock:
            meeting = self._meeting(platform, meeting_id)
            self._refresh(meeting)
            if action == "reset":
                del self._meetings[(platform, meeting_id)]
                return self._control_view(self._meeting(platform, meeting_id))
            if meeting.ended and action != "end":
                raise SimulatorError(409, "The meeting has ended")
            if action == "end":
                meeting.ended = True
            elif action in ("admit", "deny", "remove_bot"):
                self._act_on_bots(meeting, action, name)
            elif action == "join":
                person = clean_name(name)
                if person not in meeting.participants:
                    meeting.participants.append(person)
            elif action == "leave":
                person = clean_name(name)
                if person not in meeting.participants:
                    raise SimulatorError(404, f"No participant named {person!r}")
                meeting.participants.remove(person)
            elif action == "speak":
                if not audio:
                    raise SimulatorError(400, "speak needs 'audio'")
                self._queue(meeting, clean_name(name or "Host"), audio)
            self._refresh(meeting)
            return self._control_view(meeting)

    def _act_on_bots(self, meeting: Meeting, action: str, name: str | None) -> None:
        wanted = ("waiting",) if action in ("admit", "deny") else ACTIVE_BOT_STATES
        bots = list(meeting.clients.values())
        if name is not None:
            name = clean_name(name)
            bots = [c for c in bots if c.name == name]
            if not bots:
                raise SimulatorError(404, f"No bot named {name!r}")
            if not any(c.state in wanted for c in bots):
                raise SimulatorError(409, f"Bot {name!r} is {bots[0].state}, not {' or '.join(wanted)}")
        for client in bots:
            if client.state not in wanted:
                continue
            if action == "admit":
                self._enter_call(meeting, client)
            elif action == "deny":
                client.state = "denied"
            else:
                client.state = "removed"
