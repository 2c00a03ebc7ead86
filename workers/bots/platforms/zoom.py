"""Zoom adapter: the Zoom web client (app.zoom.us/wc) guest flow, driven from one selector table."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from workers.bots.platforms.base import PageState, Phase
from workers.bots.platforms.webclient import Loc, Names, Speaking, Table, WebClientAdapter

# Every field's facts are in docs/platforms.md#zoom-<field>, with _ written as - (e.g. #zoom-join-button);
# the [nx/1x: letters] markers name the sources listed at docs/platforms.md#sources.
_MODAL = ".zm-modal-body-title"
TABLE = Table(
    # The client may sit in a same-origin iframe (.pwa-webclient__iframe M, iframe#webclient S)
    frame=(Loc("iframe#webclient", shown=False), Loc("iframe.pwa-webclient__iframe", shown=False)),
    # The launcher page (personal, vanity and event links): "Launch Meeting" first, then the link [1x, S];
    # texts match case-insensitively, so the older "Join from Your Browser" too (docs/platforms.md#zoom-launcher)
    launcher=(
        Loc("a", "Join from your browser"),
        Loc("button", "Join from your browser"),
        Loc('[role="button"]', "Join from your browser"),
    ),
    launch_app=(Loc("button", "Launch Meeting"), Loc('[role="button"]', "Launch Meeting"), Loc("a", "Launch Meeting")),
    popups=(
        Loc("#onetrust-accept-btn-handler"),  # cookie banner [nx: V, M]
        Loc("#wc_agree1"),  # terms [1x, M]
        Loc("button", "Continue without microphone and camera"),  # permission dialog [1x, V]
    ),
    name_input=(
        Loc("#input-for-name"),  # React client [nx: V, M]
        Loc("#inputname"),  # classic client [1x, V]
        Loc('input[placeholder="Your Name" i]'),  # classic placeholder [1x, V]
    ),
    passcode_input=(
        Loc('input[type="password"]'),  # asked when the URL lacks pwd [1x, V]
        Loc('input[placeholder*="passcode" i]'),  # [1x, V]
    ),
    mic_on=(Loc('#preview-audio-control-button[aria-label="Mute"]'),),  # label Mute while on [nx: V, M]
    camera_on=(Loc('#preview-video-control-button[aria-label="Stop Video"]'),),  # [nx: V, M]
    join_button=(
        Loc("button.preview-join-button"),  # disabled until a name is typed [nx: V, M, S]
        Loc("#joinBtn"),  # classic client [1x, V]
    ),
    # A guest removed from the waiting room sees the removal text: interpret() reports it as DENIED.
    removed=(Loc("body", "You have been removed"),),  # [nx: S, V]
    ended=(
        Loc(_MODAL, "This meeting has been ended by host"),  # modal title [1x, V]
        Loc('div[aria-label="Meeting is end now"]', shown=False),  # [1x, M]
    ),
    left=(Loc("body", "You left the meeting"),),  # simulator's after-leave page (docs/platforms.md#zoom-left)
    not_found=(
        Loc("body", "This meeting link is invalid"),  # "(3,001)", host not started / bad id [1x, V]
        Loc("body", "Passcode wrong"),  # wrong passcode (simulator wording; docs/platforms.md#zoom-not-found)
    ),
    sign_in=(
        # Sign-in walls: V's selectors.ts zoomSignInWallTexts (docs/platforms.md#zoom-sign-in)
        Loc("body", "Only authenticated users can join"),
        Loc("body", "Sign in to join this meeting"),
    ),
    blocked=(
        Loc("body", "detected you may be a bot"),  # anti-bot wall after Join [1x, V]
        Loc("body", "must use Zoom RTMS"),  # [1x, V]
    ),
    in_call=(
        # Leave in the footer [nx: V, M]; presence, not visibility: the footer auto-hides (V admission.ts)
        # Not the footer alone: S reads admission from its "<N> Participants" count, so it exists before.
        Loc('button[aria-label="Leave"]', shown=False),
    ),
    waiting=(
        Loc("body", "Please wait, the meeting host will let you in soon"),  # [1x, V]
        Loc("body", "Waiting for the host to start this meeting"),  # before start [1x, V]
    ),
    prejoin=(
        Loc("#input-for-name"),  # [nx: V, M]
        Loc("button.preview-join-button"),  # [nx: V, M, S]
        Loc('input[type="password"]'),  # passcode step [1x, V]
        Loc("body", "Launch Meeting"),  # the launcher page: not joined yet (docs/platforms.md#zoom-launcher)
        Loc("body", "Join from your browser"),
    ),
    participants=(
        Names(".participants-item__display-name"),  # panel names (public scrapers; docs/platforms.md#zoom-participants)
        Names(".video-avatar__avatar-footer"),  # tile name footer [1x, V]
    ),
    people_panel=(Loc(".participants-item__display-name", shown=False),),  # docs/platforms.md#zoom-people-panel
    people_button=(Loc("#wc-footer button", "Participants"),),  # footer "<N> Participants" [1x, S]
    speaking=(
        Speaking(".speaker-bar-container__video-frame--active", name=".video-avatar__avatar-footer"),  # [1x, V]
        Speaking(".speaker-active-container__video-frame", name=".video-avatar__avatar-footer"),  # [1x, V]
    ),
    self_names=(),  # Zoom shows the bot's own name; "(Me)" labels are stripped
    # Without computer audio the bot hears nothing. The dialog's button (several public Zoom bots click
    # "Join Audio by Computer"; some builds say "Join with Computer Audio"); the footer's headphone button
    # "Join Audio" (button.join-audio-container__btn) opens that dialog when it was closed.
    call_prompts=(
        Loc("button", "Join Audio by Computer"),
        Loc("button", "Join with Computer Audio"),
        Loc('button.join-audio-container__btn[aria-label="Join Audio" i]'),
    ),
    leave_button=(Loc('button[aria-label="Leave"]', shown=False),),  # footer Leave [nx: V, M]
    leave_confirm=(Loc("button.leave-meeting-options__btn--danger"),),  # "Leave Meeting" [1x, V]
)

_INVITE_PATH = re.compile(r"^/[jws]/(\d{9,11})/?$")  # join, webinar and start links (docs/platforms.md#zoom-url)


class ZoomAdapter(WebClientAdapter):
    """Zoom: invites open in the web client directly; passcode from the request when the page asks."""

    platform = "zoom"
    table = TABLE

    def join_url(self) -> str:
        """`https://<x>.zoom.us/j|w|s/<id>?pwd=..` → `https://app.zoom.us/wc/<id>/join?pwd=..` [nx: V, M];
        other query parameters kept; web-client and simulator URLs as given. A request password fills a
        missing pwd. See docs/platforms.md#zoom-join-url."""
        url = self.request.meeting_url
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        match = _INVITE_PATH.match(parts.path)
        if not (host == "zoom.us" or host.endswith(".zoom.us")) or match is None:
            return url
        query = parse_qsl(parts.query, keep_blank_values=True)
        if self.request.meeting_password and not any(key == "pwd" for key, _ in query):
            query.append(("pwd", self.request.meeting_password))
        suffix = f"?{urlencode(query)}" if query else ""
        return f"https://app.zoom.us/wc/{match.group(1)}/join{suffix}"

    def interpret(self, state: PageState) -> PageState:
        # Zoom has no "deny": the host removes the guest from the waiting room (V reads removal texts
        # during admission as a denial). Removed before ever being in the call = denied.
        # docs/platforms.md#zoom-removed
        if state.phase == Phase.REMOVED and not self.seen_in_call:
            return PageState(Phase.DENIED, detail=f"{state.detail} (before admission)")
        return state
