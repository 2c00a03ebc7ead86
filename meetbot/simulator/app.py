"""The meeting simulator's web app: Meet/Zoom/Teams look-alike guest pages, their page API and the control API."""

from __future__ import annotations

import json
from html import escape as html_escape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from meetbot.settings import Settings, get_settings
from meetbot.simulator.state import PLATFORMS, SimulatorError, SimulatorState, check_meeting, clean_name

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"
POLL_MS = 250  # how often a meeting page asks the server for its state
# Meeting ids that show a fixed screen instead of a meeting (the adapters' error paths).
# "unrecognised" is a screen no adapter knows (for the unknown-state log), not a copy of a real page.
SPECIAL_SCREENS = {
    "notfound": "notfound",
    "invalid": "invalid",
    "blocked": "blocked",
    "signin": "signin",
    "unrecognised": "unrecognised",
}
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"", "0", "false", "no", "off"}


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _template(name: str, **values: str) -> str:
    text = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _json_for_script(data: Any) -> str:
    """JSON safe to embed in a <script type="application/json"> element."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Simulator:
    """Request handlers bound to one SimulatorState and one media directory."""

    def __init__(self, settings: Settings) -> None:
        self.state = SimulatorState()
        self.media_root = Path(settings.media_dir).expanduser().resolve()

    # -- helpers ---------------------------------------------------------------------------------

    def media_path(self, name: str) -> Path:
        """The file `name` inside the media dir; SimulatorError for traversal or a missing file."""
        if not name or "\x00" in name or name.startswith(("/", "\\")):
            raise SimulatorError(400, f"Invalid audio file name {name!r}")
        path = (self.media_root / name).resolve()
        if not path.is_relative_to(self.media_root):
            raise SimulatorError(400, f"Invalid audio file name {name!r}")
        if not path.is_file():
            raise SimulatorError(404, f"Audio file not found in the media dir: {name!r}")
        return path

    def page_options(self, request: Request, platform: str) -> dict[str, Any]:
        """The meeting URL's query options, checked."""
        query = request.query_params
        raw_wr = query.get("waiting_room", "").lower()
        if raw_wr not in TRUE_VALUES | FALSE_VALUES:
            raise SimulatorError(400, "waiting_room must be 0 or 1")
        audio = query.get("audio") or None
        if audio:
            self.media_path(audio)
        passcode = query.get("passcode") or None
        if passcode is not None and platform == "zoom" and query.get("pwd") == passcode:
            passcode = None  # the invite carried the right passcode: no passcode screen
        return {
            "waitingRoom": raw_wr in TRUE_VALUES,
            "audio": audio,
            "speaker": clean_name(query.get("speaker") or "Host", "speaker"),
            "passcode": passcode if platform == "zoom" else None,
            "popup": query.get("popup", "").lower() in TRUE_VALUES,
            # Teams: the pre-join starts with "Don't use audio" selected (docs/platforms.md#teams-audio-choice)
            "noAudio": platform == "teams" and query.get("no_audio", "").lower() in TRUE_VALUES,
            "connectFailures": self._count(query.get("connect_failures"), "connect_failures")
            if platform == "teams"
            else 0,
            # A/V sync clock: a white flash and a beep together every N seconds (static/sync.js)
            "syncSeconds": self._count(query.get("sync"), "sync"),
        }

    @staticmethod
    def _count(raw: str | None, name: str) -> int:
        if raw is None or raw == "":
            return 0
        if not raw.isdigit() or int(raw) > 100:
            raise SimulatorError(400, f"{name} must be a whole number from 0 to 100")
        return int(raw)

    # -- pages -----------------------------------------------------------------------------------

    async def meeting_page(self, request: Request) -> Response:
        platform = request.url.path.strip("/").split("/", 1)[0]
        meeting_id = request.path_params["meeting_id"]
        path = request.url.path.rstrip("/")
        launcher = platform == "teams" and not path.endswith("/light-meetings/launch")
        # Zoom's launcher page: personal links always, /zoom/<id> with launcher=1 (or launcher=old, the older
        # wording). docs/platforms.md#zoom-launcher
        launcher_option = request.query_params.get("launcher", "").lower()
        zoom_launcher = platform == "zoom" and (path.startswith("/zoom/my/") or launcher_option not in FALSE_VALUES)
        web_client_query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "launcher"])
        try:
            check_meeting(platform, meeting_id)
            options = self.page_options(request, platform)
        except SimulatorError as exc:
            return HTMLResponse(f"<h1>{exc.status_code}</h1><p>{exc.detail}</p>", status_code=exc.status_code)
        screen = SPECIAL_SCREENS.get(meeting_id.lower(), "")
        if platform == "zoom" and not zoom_launcher and request.query_params.get("iframe", "").lower() in TRUE_VALUES:
            return self.framed_page(request)
        failures = options.pop("connectFailures")
        if (launcher or zoom_launcher) and not screen:
            screen = "launcher"
        elif failures and not screen and self.state.count_page_load(platform, meeting_id) <= failures:
            screen = "connect_failed"  # Teams' transient "We couldn't connect you": N failed loads, then it works
        config = {
            "platform": platform,
            "meetingId": meeting_id,
            "screen": screen,
            "pollMs": POLL_MS,
            "prejoinUrl": f"/zoom/{meeting_id}" if platform == "zoom" else f"/teams/{meeting_id}/light-meetings/launch",
            "query": web_client_query if platform == "zoom" else request.url.query,
            "oldWording": launcher_option == "old",
            **options,
        }
        html = _template("page.html", platform=platform, config=_json_for_script(config))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def framed_page(self, request: Request) -> Response:
        """Zoom's progressive web app: the web client inside a same-origin iframe (docs/platforms.md#zoom-frame)."""
        query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "iframe"])
        src = request.url.path + (f"?{query}" if query else "")
        html = _template("frame.html", src=html_escape(src, quote=True))
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def index(self, request: Request) -> Response:
        return HTMLResponse(_template("index.html"))

    async def media(self, request: Request) -> Response:
        try:
            path = self.media_path(unquote(request.path_params["path"]))
        except SimulatorError as exc:
            return _error(exc.status_code, exc.detail)
        return FileResponse(path)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    # -- page API (what the meeting pages call) --------------------------------------------------

    async def register(self, request: Request) -> Response:
        platform, meeting_id = request.path_params["platform"], request.path_params["meeting_id"]
        try:
            body = await _json_body(request)
            view = self.state.register(
                platform,
                meeting_id,
                waiting_room=bool(body.get("waitingRoom")),
                audio=self.media_path(body["audio"]).relative_to(self.media_root).as_posix()
                if body.get("audio")
                else None,
                speaker=clean_name(body.get("speaker") or "Host", "speaker"),
                passcode=body.get("passcode") if isinstance(body.get("passcode"), str) else None,
            )
        except SimulatorError as exc:
            return _error(exc.status_code, exc.detail)
        return JSONResponse(view)

    async def client(self, request: Request) -> Response:
        params = request.path_params
        try:
            if request.method == "GET":
                view = self.state.poll(params["platform"], params["meeting_id"], params["client_id"])
            else:
                body = await _json_body(request)
                view = self.state.client_event(params["platform"], params["meeting_id"], params["client_id"], body)
        except SimulatorError as exc:
            return _error(exc.status_code, exc.detail)
        return JSONResponse(view)

    # -- control API (tests, demos) --------------------------------------------------------------

    async def control(self, request: Request) -> Response:
        platform, meeting_id = request.path_params["platform"], request.path_params["meeting_id"]
        try:
            if request.method == "GET":
                return JSONResponse(self.state.control_state(platform, meeting_id))
            check_meeting(platform, meeting_id)
            body = await _json_body(request)
            action = body.get("action")
            if not isinstance(action, str):
                raise SimulatorError(400, "'action' must be a string")
            name = body.get("name")
            if name is not None and not isinstance(name, str):
                raise SimulatorError(400, "'name' must be a string")
            audio = body.get("audio")
            if action == "speak":
                if not isinstance(audio, str) or not audio:
                    raise SimulatorError(400, "speak needs 'audio', a file name in the media dir")
                audio = self.media_path(audio).relative_to(self.media_root).as_posix()
            if action in ("join", "leave") and name is None:
                raise SimulatorError(400, f"{action} needs 'name'")
            return JSONResponse(self.state.control(platform, meeting_id, action, name, audio))
        except SimulatorError as exc:
            return _error(exc.status_code, exc.detail)


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise SimulatorError(400, "Body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise SimulatorError(400, "Body must be a JSON object")
    return body


def create_app(settings: Settings | None = None) -> Starlette:
    """The simulator app; `app.state.simulator.state` is its SimulatorState (handy in tests)."""
    sim = Simulator(settings or get_settings())
    routes: list[Any] = [
        Route("/", sim.index),
        Route("/healthz", sim.health),
        Route("/control/{platform}/{meeting_id}", sim.control, methods=["GET", "POST"]),
        Route("/client/{platform}/{meeting_id}", sim.register, methods=["POST"]),
        Route("/client/{platform}/{meeting_id}/{client_id}", sim.client, methods=["GET", "POST"]),
        Route("/media/{path:path}", sim.media),
        Route("/teams/{meeting_id}/light-meetings/launch", sim.meeting_page),
        Route("/zoom/my/{meeting_id}", sim.meeting_page),  # personal room links open the launcher page
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    routes += [Route(f"/{platform}/{{meeting_id}}", sim.meeting_page) for platform in PLATFORMS]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app


def run(host: str | None = None, port: int | None = None, settings: Settings | None = None) -> None:
    """Serve the simulator with uvicorn (the `meetbot simulator --host --port` command)."""
    from meetbot.serving import serve

    settings = settings or get_settings()
    serve(create_app(settings), host or settings.simulator_host, port or settings.simulator_port)
