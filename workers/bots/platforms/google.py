"""Google Meet adapter: the signed-out guest flow of meet.google.com, driven from one selector table."""

from __future__ import annotations

from workers.bots.platforms.webclient import Loc, Names, Speaking, Table, WebClientAdapter

# Every field's facts are in docs/platforms.md#google-<field>, with _ written as - (e.g. #google-join-button);
# the [nx/1x: letters] markers name the sources listed at docs/platforms.md#sources.
# Body texts are matched case-insensitively as substrings with apostrophes normalised.
_TILE = "[data-participant-id]"
TABLE = Table(
    popups=(
        Loc("button", "Got it"),  # info dialogs [nx: A, M, S]
        Loc("button", "Continue without microphone and camera"),  # no devices granted [1x, S]
        Loc("button", "Use without an account"),  # [1x, B]
    ),
    name_input=(
        Loc('input[type="text"][aria-label="Your name"]'),  # [nx: A, M, V]
        Loc('input[jsname][type="text"]'),  # locale-free [1x, V]
        Loc('input[type="text"]'),  # any text input [1x, S]
    ),
    mic_on=(Loc('[aria-label="Turn off microphone"]'),),  # div or button; "Turn on …" once off [nx: A, M, V]
    camera_on=(Loc('[aria-label="Turn off camera"]'),),  # same [nx: A, M, V]
    join_button=(
        Loc("button", "Ask to join"),  # guest, host admits [nx: A, M, S, V, B]
        Loc("button", "Join now"),  # no lobby [nx: A, M, S, V, B]
        Loc("button", "Join anyway"),  # [1x, A]
        Loc("button", "Join here too"),  # [1x, A]
    ),
    removed=(Loc("body", "You've been removed from the meeting"),),  # [nx: A, M, B]
    denied=(
        Loc("body", "Someone in the call denied your request to join"),  # [nx: A, S]
        Loc("body", "No one responded to your request to join the call"),  # lobby timeout [nx: A, S]
    ),
    ended=(
        Loc("body", "Your host ended the meeting for everyone"),  # [1x, A]
        Loc("body", "Meeting ended"),  # [V, B]
        Loc("body", "Call ended"),  # [V, B]
        Loc("button", "Return to home screen"),  # on every after-call screen [nx: M, B, V]
    ),
    left=(Loc("body", "You left the meeting"),),  # after leaving [nx: A, V]
    not_found=(
        Loc("body", "Check your meeting code"),  # [1x, A]
        Loc("body", "Invalid video call name"),  # [1x, A]
    ),
    sign_in=(Loc("h1", "Sign in"),),  # sign-in page = login required [nx: A, S]
    blocked=(
        Loc("body", "You can't join this video call"),  # signed-out/datacenter block [nx: A, V]
        Loc("body", "There is a problem connecting to this video call"),  # [nx: A, V]
    ),
    in_call=(
        # "Leave call" alone may show while waiting [nx: S, V]: require the People button with it.
        Loc('body:has(button[aria-label="Leave call"]):has(button[aria-label^="People"])'),
        Loc('button[aria-label="Turn on captions"]'),  # in-call only [1x, A]
        Loc('div[role="region"][aria-label="Call controls"]'),  # [1x, B]
    ),
    waiting=(
        Loc("body", "Asking to be let in"),  # [nx: A, V]
        Loc("body", "You'll join the call when someone lets you in"),  # [1x, V]
        Loc("body", "Please wait until a meeting host brings you into the call"),  # [nx: S, V]
        Loc("body", "Waiting for the host to join"),  # before the host arrives [1x, A]
    ),
    prejoin=(
        Loc('input[type="text"][aria-label="Your name"]'),  # [nx: A, M, V]
        Loc("button", "Ask to join"),  # [nx]
        Loc("button", "Join now"),  # [nx]
    ),
    participants=(
        # People panel: names in the items' aria-label [nx: A, M]
        Names('div[role="list"][aria-label="Participants"] [role="listitem"]', attr="aria-label"),
        Names(_TILE, name="span.notranslate"),  # video tiles, name in span.notranslate [nx: A, M, V]
    ),
    people_panel=(Loc('div[role="list"][aria-label="Participants"]', shown=False),),  # [nx: A, M]
    people_button=(Loc('button[aria-label^="People"]'),),  # toolbar "People" (S: ^People) [nx: A, M, S]
    speaking=(
        # Speaking-ring classes inside a tile (silent: gjg47c) [1x, V]; M watches these class flips [1x, M]
        Speaking(
            ", ".join(f"{_TILE} .{cls}" for cls in ("OgVli", "Oaajhc", "HX2H7", "wEsLMd")),
            tile=_TILE,
            name="span.notranslate",
        ),
    ),
    self_names=("You",),  # Meet labels the bot's own tile "You"
    leave_button=(
        Loc('button[aria-label="Leave call"]', shown=False),  # [nx: A, M, V]
        Loc('button[jsname="CQylAd"]', shown=False),  # [1x, A]
    ),
)


class GoogleMeetAdapter(WebClientAdapter):
    """Google Meet: no launcher; pre-join, lobby, call and end screens are one page at the meeting URL."""

    platform = "google"
    table = TABLE
