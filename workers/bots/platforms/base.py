"""The small interface every platform adapter implements, and the page state it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from selenium.webdriver.remote.webdriver import WebDriver


class Phase(StrEnum):
    """Where the bot stands, as read from the meeting page."""

    PREJOIN = "prejoin"  # join form still shown (or loading)
    WAITING_ROOM = "waiting_room"  # asked to join, waiting for a host to admit
    IN_CALL = "in_call"
    DENIED = "denied"  # host refused entry
    REMOVED = "removed"  # host removed the bot
    ENDED = "ended"  # meeting ended for everyone
    NOT_FOUND = "not_found"  # invalid / unknown meeting
    SIGN_IN_REQUIRED = "sign_in_required"
    BLOCKED = "blocked"  # platform refused the guest (captcha, bot wall)
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PageState:
    phase: Phase
    participants: tuple[str, ...] = ()  # display names of the other people in the call (not the bot)
    active_speaker: str | None = None  # display name of who is speaking now, if the page shows it
    detail: str = ""  # the text or selector the phase was read from, for logs


@dataclass
class JoinRequest:
    meeting_url: str
    bot_name: str
    meeting_password: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class JoinCancelled(Exception):
    """join() gave up because the runner asked it to stop (a kill, a worker shutdown)."""


class PlatformAdapter(ABC):
    """Drives one platform's guest web client in an already started browser."""

    platform: ClassVar[str]

    def __init__(
        self,
        driver: WebDriver,
        request: JoinRequest,
        log: Callable[[str], None],
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.driver = driver
        self.request = request
        self.log = log
        self.should_stop = should_stop or (lambda: False)

    @abstractmethod
    def join_url(self) -> str:
        """The URL the browser opens (e.g. a Zoom invite rewritten to the web client)."""

    @abstractmethod
    def join(self, timeout: float) -> None:
        """Open the meeting, fill the name, turn mic and camera off and click join.

        Returns once the join click happened (the bot may then be in the waiting room or in
        the call). Raises meetbot.errors.BotError with a sub_code (meeting_not_found,
        sign_in_required, bot_detected, join_denied, internal_error) when it cannot, and
        JoinCancelled as soon as should_stop() says so.
        """

    @abstractmethod
    def read_state(self) -> PageState:
        """One cheap look at the page (a single execute_script round trip)."""

    @abstractmethod
    def leave(self) -> None:
        """Click the platform's leave control (and its confirmation); best effort, never raises."""


# Query parameters that carry a meeting's passcode or a join token (Zoom pwd/tk, Teams p):
# docs/platforms.md#secret-params.
SECRET_PARAMS = frozenset({"pwd", "p", "passcode", "password", "tk"})


def redact_url(url: str) -> str:
    """The URL as it may be logged: passcodes and join tokens in its query replaced by ***."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "(unparsable URL)"
    if not any(key.lower() in SECRET_PARAMS for key, _ in query):
        return url
    shown = [(key, "***" if key.lower() in SECRET_PARAMS else value) for key, value in query]
    return urlunsplit(parts._replace(query=urlencode(shown, safe="*")))
