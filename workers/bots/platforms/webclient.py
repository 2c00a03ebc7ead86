"""Platform-agnostic engine for table-driven web-client adapters: the selector table types and one page probe."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    JavascriptException,
    NoSuchFrameException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.remote.webelement import WebElement

from meetbot.errors import BotError
from workers.bots.platforms.base import JoinCancelled, PageState, Phase, PlatformAdapter, redact_url
from workers.bots.platforms.unknown_pages import UnknownPageLog

TRANSIENT = (
    StaleElementReferenceException,
    ElementNotInteractableException,
    ElementClickInterceptedException,
    JavascriptException,
)


@dataclass(frozen=True)
class Loc:
    """One way to find an element: a CSS selector, narrowed to elements whose visible text contains `text`
    (case-insensitive; typographic apostrophes and "…" normalised); `shown` = must have a layout box."""

    css: str
    text: str = ""
    shown: bool = True


@dataclass(frozen=True)
class Names:
    """Participant names: the items matching `css`, the name in descendant `name` (or the item itself),
    read from attribute `attr` (or the element's text, first line, "(You)"-style suffixes removed)."""

    css: str
    name: str = ""
    attr: str = ""


@dataclass(frozen=True)
class Speaking:
    """Active speaker: elements matching `css` exist only while someone speaks; the name is read from the
    closest ancestor `tile` (or the element itself) like Names reads it."""

    css: str
    tile: str = ""
    name: str = ""
    attr: str = ""


@dataclass(frozen=True)
class Table:
    """Everything an adapter knows about one platform's page; fallbacks are tried in order."""

    # Join flow
    name_input: tuple[Loc, ...]
    join_button: tuple[Loc, ...]
    mic_on: tuple[Loc, ...]  # the mic toggle as shown while the mic is ON (a click turns it off)
    camera_on: tuple[Loc, ...]
    frame: tuple[Loc, ...] = ()  # an iframe that holds the whole client (entered before every probe)
    launcher: tuple[Loc, ...] = ()  # "continue in the browser" step before the pre-join page
    launch_app: tuple[Loc, ...] = ()  # "open the desktop app" button that must be tried before the launcher link
    audio_choice: tuple[Loc, ...] = ()  # the pre-join's audio option, shown while NOT selected (clicked)
    popups: tuple[Loc, ...] = ()  # dismissed when they appear, never required
    passcode_input: tuple[Loc, ...] = ()
    transient: tuple[Loc, ...] = ()  # "could not connect, try again" screens: the page is reloaded
    # Screens: first match wins, in the order of payload() below
    removed: tuple[Loc, ...] = ()
    denied: tuple[Loc, ...] = ()
    ended: tuple[Loc, ...] = ()
    left: tuple[Loc, ...] = ()  # after our own leave: reported as ENDED
    not_found: tuple[Loc, ...] = ()
    sign_in: tuple[Loc, ...] = ()
    blocked: tuple[Loc, ...] = ()
    in_call: tuple[Loc, ...] = ()
    waiting: tuple[Loc, ...] = ()
    prejoin: tuple[Loc, ...] = ()
    # In call
    participants: tuple[Names, ...] = ()
    people_panel: tuple[Loc, ...] = ()  # the open participants list; when absent, people_button is clicked
    people_button: tuple[Loc, ...] = ()
    speaking: tuple[Speaking, ...] = ()
    self_names: tuple[str, ...] = ("You",)  # how the page may name the bot itself
    call_prompts: tuple[Loc, ...] = ()  # clicked when they appear in the call (e.g. join computer audio)
    # Leaving
    leave_button: tuple[Loc, ...] = ()
    leave_confirm: tuple[Loc, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The table as the probe script's argument."""
        data = dataclasses.asdict(self)
        # (table key, phase, is an end/error screen), ordered as docs/platforms.md#phase-order explains. Error
        # pages first: they may share an after-call screen's buttons (Meet's "Return to home screen"). A bot
        # wall may offer "Sign in to join", so blocked goes before sign_in. A lobby may already show call
        # controls (Meet's Leave [nx: S, V], Zoom's footer [1x, S]), so waiting goes before in_call; a waiting
        # sentence read in the call is ignored by the runner.
        order = (
            ("not_found", Phase.NOT_FOUND, True),
            ("blocked", Phase.BLOCKED, True),
            ("sign_in", Phase.SIGN_IN_REQUIRED, True),
            ("removed", Phase.REMOVED, True),
            ("denied", Phase.DENIED, True),
            ("ended", Phase.ENDED, True),
            ("left", Phase.ENDED, True),
            ("waiting", Phase.WAITING_ROOM, False),
            ("in_call", Phase.IN_CALL, False),
            ("prejoin", Phase.PREJOIN, False),
        )
        data["call_controls"] = data["in_call"]
        data["phases"] = [[str(phase), data.pop(key), screen] for key, phase, screen in order]
        return data


# The page probe: one round trip (arguments: table payload, bot name, mode "state" | "join" | "find", locs).
PROBE_JS = (Path(__file__).parent / "probe.js").read_text(encoding="utf-8")

FATAL = {
    Phase.NOT_FOUND: "meeting_not_found",
    Phase.SIGN_IN_REQUIRED: "sign_in_required",
    Phase.BLOCKED: "bot_detected",
}
SETTLED = (Phase.WAITING_ROOM, Phase.IN_CALL, Phase.DENIED, Phase.REMOVED, Phase.ENDED)


class WebClientAdapter(PlatformAdapter):
    """Drives a guest web client from the subclass's Table: join flow, page state and leave."""

    table: ClassVar[Table]
    poll_seconds: ClassVar[float] = 0.05  # pause between probes while waiting for the page to change
    toggle_retry_seconds: ClassVar[float] = 1.0  # a toggle still showing "on" this long after a click: again
    toggle_max_clicks: ClassVar[int] = 3
    rejoin_click_seconds: ClassVar[float] = 3.0  # join still clickable this long after a click: click again
    reload_pause_seconds: ClassVar[float] = 2.0  # on a "could not connect" screen: wait, then reload
    max_reloads: ClassVar[int] = 3
    launch_retry_seconds: ClassVar[float] = 5.0  # no launcher link this long after a launch attempt: try again
    unknown_log_seconds: ClassVar[float] = 15.0  # a page state not recognised this long is logged (once)
    _payload_cache: ClassVar[dict[type, dict[str, Any]]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_in_call = False
        self.unknown_pages = UnknownPageLog(self.unknown_log_seconds)

    @property
    def payload(self) -> dict[str, Any]:
        cls = type(self)
        if cls not in self._payload_cache:
            self._payload_cache[cls] = self.table.payload()
        return self._payload_cache[cls]

    def join_url(self) -> str:
        return self.request.meeting_url

    def interpret(self, state: PageState) -> PageState:
        """Hook for a platform's own reading of a state (e.g. Zoom's removal from the waiting room)."""
        return state

    def probe(self, mode: str = "state") -> dict[str, Any]:
        raw = self._probe_client(mode)
        if raw and raw.get("prompted"):
            self.log(f"{self.platform}: answered the call's prompt ({raw['prompted']})")
        return raw

    def _run_probe(self, mode: str, *extra: Any) -> Any:
        """One probe round trip in the driver's current browsing context."""
        return self.driver.execute_script(PROBE_JS, self.payload, self.request.bot_name, mode, *extra)

    def _probe_client(self, mode: str, *extra: Any) -> Any:
        """The probe where the client is: the current context first, so the usual poll costs one round
        trip; when that finds nothing and the table names a client iframe, enter it and ask again."""
        try:
            result = self._run_probe(mode, *extra)
        except NoSuchFrameException:  # the iframe we were in has gone
            if not self.table.frame:
                raise
            result = None
        found = result is not None and not (isinstance(result, dict) and result.get("phase") == Phase.UNKNOWN)
        if self.table.frame and not found and self._enter_client_frame():
            result = self._run_probe(mode, *extra)
        return result

    def _enter_client_frame(self) -> bool:
        """Point the driver at the iframe that holds the client; False when the page has none now."""
        self.driver.switch_to.default_content()
        frame = self._run_probe("find", [dataclasses.asdict(loc) for loc in self.table.frame])
        if frame is None:
            return False
        try:
            self.driver.switch_to.frame(frame)
        except (NoSuchFrameException, StaleElementReferenceException):
            self.driver.switch_to.default_content()  # the frame went away between the two calls: next probe
            return False
        return True

    def _state(self, raw: dict[str, Any]) -> PageState:
        try:
            phase = Phase(raw.get("phase") or "unknown")
        except ValueError:
            phase = Phase.UNKNOWN
        state = self.interpret(
            PageState(
                phase=phase,
                participants=tuple(raw.get("participants") or ()),
                active_speaker=raw.get("activeSpeaker") or None,
                detail=raw.get("detail") or "",
            )
        )
        if state.phase == Phase.IN_CALL:
            self.seen_in_call = True
        message = self.unknown_pages.note(state.phase, raw.get("page"))
        if message:
            self.log(f"{self.platform}: {message}")
        return state

    def read_state(self) -> PageState:
        try:
            return self._state(self.probe("state"))
        except (JavascriptException, StaleElementReferenceException) as exc:
            return PageState(Phase.UNKNOWN, detail=f"probe failed: {exc.msg}")

    def find(self, locs: tuple[Loc, ...]) -> WebElement | None:
        return self._probe_client("find", [dataclasses.asdict(loc) for loc in locs])

    def click(self, element: WebElement) -> None:
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            self.driver.execute_script("arguments[0].click();", element)

    def type_into(self, element: WebElement, text: str) -> None:
        element.clear()
        element.send_keys(text)

    # -- join ------------------------------------------------------------------------------------

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = self.join_url()
        self.log(f"{self.platform}: opening {redact_url(url)}")
        try:
            self.driver.get(url)
        except WebDriverException as exc:
            # net::ERR_NAME_NOT_RESOLVED, ERR_CONNECTION_REFUSED...: the first line says it; the rest is driver noise
            reason = (exc.msg or type(exc).__name__).splitlines()[0]
            raise BotError(f"Could not open {redact_url(url)}: {reason}", sub_code="meeting_unreachable") from exc
        flow = _JoinFlow()
        last = ""
        while time.monotonic() < deadline:
            if self.should_stop():
                raise JoinCancelled(f"{self.platform}: join cancelled")
            try:
                raw = self.probe("join")
                state = self._state(raw)
                last = f"{state.phase}: {state.detail}"
                if state.phase in FATAL:
                    raise BotError(f"{self.platform}: {state.detail}", sub_code=FATAL[state.phase])
                if state.phase in SETTLED:
                    self.log(f"{self.platform}: join done ({last})")
                    return
                acted = self._retry_step(raw["transient"], flow) if raw.get("transient") else self._join_step(raw, flow)
            except TRANSIENT as exc:
                last, acted = f"{type(exc).__name__}: {exc.msg}", False
            except WebDriverException as exc:
                raise BotError(f"Browser error while joining: {exc.msg}", sub_code="internal_error") from exc
            if not acted:
                time.sleep(self.poll_seconds)
        raise BotError(f"{self.platform}: not joined within {timeout:.0f}s ({last})", sub_code="internal_error")

    def _retry_step(self, screen: str, flow: _JoinFlow) -> bool:
        """The platform says it could not connect: reload after a pause, up to max_reloads times."""
        now = time.monotonic()
        if now - flow.reloaded_at < self.reload_pause_seconds:
            return False
        if flow.reloads >= self.max_reloads:
            raise BotError(
                f"{self.platform}: still '{screen}' after {flow.reloads} reloads", sub_code="meeting_unreachable"
            )
        flow.reloads += 1
        flow.reloaded_at = now
        self.log(f"{self.platform}: the page says '{screen}'; reloading ({flow.reloads}/{self.max_reloads})")
        self.driver.refresh()
        return True

    def _join_step(self, raw: dict[str, Any], flow: _JoinFlow) -> bool:
        """Do the next thing the page asks for; True when something was clicked or typed."""
        els: dict[str, WebElement | None] = raw.get("els") or {}
        now = time.monotonic()
        if els.get("launcher") is not None and raw.get("launcherHref") and flow.launches:
            return self._follow_launcher(raw["launcherHref"], flow)
        launch = els.get("launch")
        if launch is not None and flow.launches < 3 and now - flow.launched_at > self.launch_retry_seconds:
            flow.launches += 1
            flow.launched_at = now
            self.log(f"{self.platform}: clicking launch (the desktop app is not there; its link comes next)")
            self.click(launch)
            return True
        for key in ("popup", "launcher"):
            element = els.get(key)
            # A dialog may take a moment to go: wait a second before clicking the same kind again.
            if element is not None and flow.popup_clicks < 20 and now - flow.clicked_at.get(key, -1e9) > 1.0:
                flow.popup_clicks += 1
                flow.clicked_at[key] = now
                self.log(f"{self.platform}: clicking {key}")
                self.click(element)
                return True
        acted = False
        name_el = els.get("name")
        if name_el is not None and raw.get("nameValue") != self.request.bot_name and flow.name_typed < 3:
            flow.name_typed += 1  # a page that trims or shortens the name must not keep us typing forever
            self.type_into(name_el, self.request.bot_name)
            acted = True
        passcode_el = els.get("passcode")
        if passcode_el is not None and not raw.get("passcodeValue"):
            if not self.request.meeting_password:
                raise BotError(f"{self.platform}: the meeting asks for a passcode", sub_code="meeting_not_found")
            self.type_into(passcode_el, self.request.meeting_password)
            acted = True
        for key in ("mic", "camera", "audio"):
            element = els.get(key)
            clicks, at = flow.toggles.get(key, (0, -1e9))
            if element is not None and clicks < self.toggle_max_clicks and now - at > self.toggle_retry_seconds:
                self.click(element)
                flow.toggles[key] = (clicks + 1, now)
                acted = True
        if acted:
            return True  # look again before joining: toggles must show "off" first
        pending = any(
            els.get(k) is not None and flow.toggles.get(k, (0, 0.0))[0] < self.toggle_max_clicks
            for k in ("mic", "camera", "audio")
        )
        join_el = els.get("join")
        if (
            join_el is not None
            and raw.get("joinEnabled")
            and not pending
            and now - flow.joined_at > self.rejoin_click_seconds
        ):
            unseen = [k for k in ("mic", "camera") if k not in flow.toggles]
            if unseen and flow.joined_at < 0:
                what = " and ".join(unseen)
                self.log(f"{self.platform}: {what} never shown as on (already off, or not found); joining")
            self.log(f"{self.platform}: clicking join")
            self.click(join_el)
            flow.joined_at = now
            return True
        return False

    def _follow_launcher(self, href: str, flow: _JoinFlow) -> bool:
        """After a launch attempt, open the launcher link in a new tab and close the launcher's tab: the
        protocol dialog the attempt raises ("Open xdg-open?") swallows clicks, stays on screen through later
        navigations in its tab and may show up late; it goes with its tab (docs/platforms.md#zoom-launcher)."""
        flow.launches = 0
        self.log(f"{self.platform}: following the launcher link to {redact_url(href)} in a fresh tab")
        self.driver.switch_to.default_content()
        launcher_tab = self.driver.current_window_handle
        agent = self.driver.execute_script("return navigator.userAgent")  # an override is per tab: keep it
        self.driver.switch_to.new_window("tab")
        client_tab = self.driver.current_window_handle
        with contextlib.suppress(WebDriverException, AttributeError):
            self.driver.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent})  # type: ignore[attr-defined]
        self.driver.get(href)
        self.driver.switch_to.window(launcher_tab)
        self.driver.close()
        self.driver.switch_to.window(client_tab)
        return True

    # -- leave -----------------------------------------------------------------------------------

    def leave(self) -> None:
        try:
            button = self.find(self.table.leave_button)
            if button is None:
                self.log(f"{self.platform}: no leave button on the page")
                return
            self.click(button)
            if not self.table.leave_confirm:
                return
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                confirm = self.find(self.table.leave_confirm)
                if confirm is not None:
                    self.click(confirm)
                    return
                time.sleep(self.poll_seconds)
            self.log(f"{self.platform}: leave confirmation did not appear")
        except Exception as exc:
            self.log(f"{self.platform}: leave failed: {exc}")


@dataclass
class _JoinFlow:
    popup_clicks: int = 0
    clicked_at: dict[str, float] = dataclasses.field(default_factory=dict)  # popup/launcher: last click
    name_typed: int = 0
    reloads: int = 0
    reloaded_at: float = -1e9
    toggles: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)
    joined_at: float = -1e9
    launches: int = 0  # launch attempts since the last launcher link was followed
    launched_at: float = -1e9
