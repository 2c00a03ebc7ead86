"""Microsoft Teams adapter: the anonymous Teams web (light-meetings) guest flow, driven from one selector table."""

from __future__ import annotations

from workers.bots.platforms.webclient import Loc, Names, Speaking, Table, WebClientAdapter

# Every field's facts are in docs/platforms.md#teams-<field>, with _ written as - (e.g. #teams-join-button);
# the [nx/1x: letters] markers name the sources listed at docs/platforms.md#sources.
_MUTE, _VIDEO = '[data-tid="toggle-mute"]', '[data-tid="toggle-video"]'
TABLE = Table(
    launcher=(
        Loc("button", "Continue on this browser"),  # launcher choice [nx: V, S, B]
        Loc('[aria-label="Join on this browser"]'),  # [1x, S]
    ),
    transient=(Loc("body", "we couldn't connect you"),),  # transient block: retry [1x, A]
    popups=(Loc("button", "Continue without audio or video"),),  # media denied; else Join never enables [nx: V, B]
    name_input=(
        Loc('input[data-tid="prejoin-display-name-input"]'),  # [nx: A, M, S]
        Loc('input[placeholder="Type your name"]'),  # [1x, B]
        Loc('input[placeholder*="name" i]'),  # [1x, V]
    ),
    # Switch inputs whose aria-checked / checked say the device is on [nx: A, M, S, B]
    mic_on=(Loc(f'{_MUTE}[aria-checked="true"]'), Loc(f"input{_MUTE}:checked"), Loc(f"{_MUTE} input:checked")),
    camera_on=(
        Loc(f'{_VIDEO}[aria-checked="true"]'),
        Loc(f"input{_VIDEO}:checked"),
        Loc(f"{_VIDEO} input:checked"),
    ),
    # The audio radios "Computer audio" / "Don't use audio" [1x, V]: Computer audio chosen explicitly,
    # matched only while not selected (docs/platforms.md#teams-audio-choice)
    audio_choice=(
        Loc('[role="radio"][aria-checked="false"]', "Computer audio"),
        Loc('label:has(input[type="radio"]:not(:checked))', "Computer audio"),
    ),
    join_button=(Loc('[data-tid="prejoin-join-button"]'),),  # "Join now" [nx: A, M, S, V, B]
    removed=(
        Loc("#calling-retry-screen-title", "You've been removed from this meeting"),  # [nx: A, V]
        Loc("body", "You've been removed from this meeting"),
    ),
    denied=(
        Loc("body", "Sorry, but you were denied access to the meeting"),  # [nx: S, A, B, V]
        Loc("body", "Your request to join was declined"),  # [1x, A]
    ),
    ended=(
        Loc("body", "The meeting has ended"),  # [nx: S, V]
        Loc("body", "Meeting ended"),  # [nx: S, V]
        Loc("body", "Call ended"),  # [nx: S, V]
    ),
    left=(Loc("body", "You left the meeting"),),  # simulator's after-leave screen (docs/platforms.md#teams-left)
    not_found=(Loc("body", "Looks like the meeting URL is incorrect"),),  # bad link [1x, A]
    sign_in=(
        Loc('input[name="loginfmt"]'),  # bounce to Microsoft sign-in [nx: A, V]
        Loc("body", "To join, sign in or use Teams on the web"),  # [1x, A]
    ),
    blocked=(Loc("body", "Verify you're a real person"),),  # captcha [1x, A]
    in_call=(
        Loc("#hangup-button"),  # [nx: A, V]
        Loc('[data-tid="hangup-main-btn"]'),  # [1x, V]
        Loc('button[aria-label^="Leave (Ctrl+Shift+H)"]'),  # [1x, M]
    ),
    waiting=(
        Loc("body", "Someone will let you in soon"),  # [nx: A, B]
        Loc("body", "Someone in the meeting should let you in soon"),  # [1x, B]
        Loc("body", "let you in shortly"),  # [1x, V]
        Loc("body", "Waiting to be admitted"),  # [1x, V]
    ),
    prejoin=(
        Loc('input[data-tid="prejoin-display-name-input"]'),  # [nx: A, M, S]
        Loc('[data-tid="prejoin-join-button"]'),  # [nx]
        Loc("button", "Continue on this browser"),  # launcher [nx: V, S, B]
    ),
    participants=(
        Names('[data-tid^="participantsInCall-"]', name="span[title]", attr="title"),  # roster [1x, M]
        Names("[data-stream-type][data-tid]", attr="data-tid"),  # tiles, name in data-tid [1x, V]
    ),
    people_panel=(Loc('[role="tree"]', shown=False),),  # roster tree [1x, M]
    people_button=(Loc('button[aria-label="People"]'), Loc('[aria-label="People"]')),  # [1x, M]
    speaking=(
        # Per-tile voice-level outline, class vdi-frame-occlusion while speaking [1x, V]
        Speaking(
            '[data-tid="voice-level-stream-outline"].vdi-frame-occlusion',
            tile="[data-stream-type][data-tid]",
            attr="data-tid",
        ),
    ),
    self_names=("You",),
    leave_button=(
        Loc("#hangup-button", shown=False),  # [nx: A, V]
        Loc('[data-inp="hangup-button"]', shown=False),  # [1x, A]
        Loc('[data-tid="hangup-main-btn"]', shown=False),  # [1x, V]
    ),
)


class TeamsAdapter(WebClientAdapter):
    """Teams: the launcher's "Continue on this browser", then the anonymous pre-join and lobby."""

    platform = "teams"
    table = TABLE
