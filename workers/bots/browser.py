"""One bot's Chromium under Selenium (own display or headless, sink, profile), its process tree, its fake camera."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from meetbot.errors import BotError
from meetbot.settings import Settings, get_settings
from workers.bots.desktop import Lifecycle
from workers.bots.processes import ProcRef, descendants, kill_all, processes_matching

log = logging.getLogger(__name__)

# Variables of the worker's own environment that must never leak into a bot's browser.
_PRIVATE_ENV = ("DISPLAY", "WAYLAND_DISPLAY", "PULSE_", "DBUS_SESSION_BUS_ADDRESS", "SE_", "XDG_", "HOME")


# ---------------------------------------------------------------- fake camera


def prepare_camera_file(
    image: Path, out_dir: Path, width: int, height: int, fps: int = 5, seconds: float = 1.0
) -> Path:
    """Turn a picture into a short .y4m loop for Chromium's --use-file-for-fake-video-capture.

    The picture is scaled to fit width x height and letterboxed; the result is cached by name and
    rebuilt only when the picture is newer.
    """
    image = Path(image)
    if not image.is_file():
        raise BotError(f"camera image not found: {image}", sub_code="internal_error")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{image.stem}-{width}x{height}-{fps}fps.y4m"
    if out.exists() and out.stat().st_mtime >= image.stat().st_mtime:
        return out
    frames = max(1, round(fps * seconds))
    fit = f"scale={width}:{height}:force_original_aspect_ratio=decrease"
    pad = f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2"
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-loop", "1", "-i", str(image)]
    cmd += ["-vf", f"{fit},{pad},setsar=1,format=yuv420p", "-r", str(fps), "-frames:v", str(frames)]
    cmd += ["-f", "yuv4mpegpipe", str(tmp)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        tmp.unlink(missing_ok=True)
        raise BotError(f"camera file conversion failed: {exc}", sub_code="internal_error") from exc
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BotError(f"camera file conversion failed: {done.stderr[-500:]}", sub_code="internal_error")
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- the browser


class BrowserSession(Lifecycle):
    """Chromium for one bot: its own X display, PulseAudio sink, D-Bus address and a throwaway profile.

    With `display=None` Chromium runs `--headless=new`: no X server at all, and its audio still goes to
    the PulseAudio sink (the audio-only mode). start() launches chromedriver (explicit Service, never
    Selenium Manager) and Chromium; `.driver` is the WebDriver. stop() quits, kills whatever of the process
    tree is left and deletes the profile.
    """

    def __init__(
        self,
        display: str | None,
        sink: str,
        pulse_env: Mapping[str, str],
        *,
        dbus_address: str | None = None,
        camera_file: Path | None = None,
        settings: Settings | None = None,
        temp_root: Path | None = None,
        log_path: Path | None = None,
        kiosk: bool = True,
        page_load_timeout: float = 30.0,
    ) -> None:
        self.settings = settings or get_settings()
        self.display = display
        self.sink = sink
        self.pulse_env = dict(pulse_env)
        self.dbus_address = dbus_address
        self.camera_file = camera_file
        self.temp_root = temp_root or self.settings.runtime_dir / "browsers"
        self.log_path = log_path
        self.kiosk = kiosk
        self.page_load_timeout = page_load_timeout
        self.temp_dir: Path | None = None
        self.started_seconds: float | None = None  # how long start() took
        self._driver: webdriver.Chrome | None = None
        self._service: Service | None = None
        self._known: set[ProcRef] = set()
        self._lock = threading.Lock()

    @property
    def driver(self) -> webdriver.Chrome:
        if self._driver is None:
            raise BotError("browser is not running", sub_code="internal_error")
        return self._driver

    @property
    def headless(self) -> bool:
        return self.display is None

    @property
    def user_data_dir(self) -> Path | None:
        return self.temp_dir / "profile" if self.temp_dir else None

    def _env(self) -> dict[str, str]:
        assert self.temp_dir is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV)}
        home = self.temp_dir / "home"
        env.update(self.pulse_env)
        env.update(
            PULSE_SINK=self.sink,
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
            LANGUAGE=self.settings.browser_language.replace("-", "_"),
            NO_AT_BRIDGE="1",  # no accessibility bridge (at-spi) to talk to
        )
        if self.display is not None:
            env["DISPLAY"] = self.display
        if self.dbus_address:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.dbus_address
        return env

    def _options(self) -> webdriver.ChromeOptions:
        assert self.user_data_dir is not None
        s = self.settings
        lang = s.browser_language
        opts = webdriver.ChromeOptions()
        opts.binary_location = str(s.chromium_binary)
        disabled_features = ["Translate", "MediaRouter", "OptimizationHints", "DialMediaRouteProvider"]
        # Two renderers a bot never uses (docs/density.md): the WebUI omnibox popups Chromium preloads even in kiosk
        # mode (a --top-chrome-webui renderer, ~40 MB PSS), and the spare renderer kept warm for the next site.
        disabled_features += ["WebUIOmniboxPopup", "WebUIOmniboxAimPopup", "SpareRendererForSitePerProcess"]
        # The network service in the browser process instead of a helper process: -17 MB PSS per video bot too.
        opts.add_argument("--enable-features=NetworkServiceInProcess2")
        # The GPU and audio services in the browser process too: two processes fewer, each with its own relocated
        # copy of Chromium's data. Audio-only bots: -15 % PSS (bench/bot_runtime.py --audio-only: 225 -> 192 MB at
        # 10 bots); video bots: 443 -> 426 MB peak, once ffmpeg's startup burst no longer hid it (docs/density.md).
        disabled_features.append("AudioServiceOutOfProcess")
        opts.add_argument("--in-process-gpu")
        # With --no-sandbox the second ("unsandboxed") zygote only forks helpers that could start directly: one
        # zygote instead of two, -13 MB PSS per video bot (426 -> 411 MB).
        opts.add_argument("--no-unsandboxed-zygote")
        # Three minutes after start Chromium benchmarks the machine for on-device AI models in a utility process
        # (+33 MB PSS for a bot alone) unless the performance class is given: 7 = "GPU blocked", true of a bot.
        opts.add_argument("--optimization-guide-performance-class=7")
        for flag in (
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--password-store=basic",
            "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--window-size={s.screen_width},{s.screen_height}",
            "--window-position=0,0",
            f"--user-data-dir={self.user_data_dir}",
            f"--lang={lang}",
            f"--accept-lang={lang}",
            "--disable-blink-features=AutomationControlled",
            "--disable-dev-shm-usage",
            # A page in an unfocused Xvfb window must not be throttled like a background tab.
            "--disable-background-timer-throttling",
            "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding",
            "--disable-features=" + ",".join(disabled_features),
            "--disable-breakpad",
            *s.chromium_extra_args.split(),
        ):
            opts.add_argument(flag)
        # get() returns at DOMContentLoaded: the adapter polls for its elements anyway, and a kill or a
        # stop is not stuck behind a heavy client's last subresource.
        opts.page_load_strategy = "eager"
        if self.headless:
            opts.add_argument("--headless=new")  # no display; audio still plays into PULSE_SINK
        elif self.kiosk:
            opts.add_argument("--kiosk")  # the page fills the display: no tab strip or URL bar in recordings
        if self.camera_file is not None:
            opts.add_argument(f"--use-file-for-fake-video-capture={self.camera_file}")
        opts.add_experimental_option("excludeSwitches", ["enable-automation"])
        opts.add_experimental_option(
            "prefs",
            {
                "intl.accept_languages": lang,
                "profile.default_content_setting_values.media_stream_mic": 1,
                "profile.default_content_setting_values.media_stream_camera": 1,
                "profile.default_content_setting_values.notifications": 2,
                "credentials_enable_service": False,
                "profile.password_manager_enabled": False,
                "translate": {"enabled": False},
            },
        )
        return opts

    def start(self) -> Self:
        with self._lock:
            if self._driver is not None:
                return self
            began = time.monotonic()
            try:
                self._launch()
            except BaseException as exc:
                self._teardown()  # a half-started browser leaves nothing behind
                if isinstance(exc, Exception) and not isinstance(exc, BotError):
                    raise BotError(f"browser failed to start: {exc}", sub_code="internal_error") from exc
                raise
            self.started_seconds = time.monotonic() - began
            return self

    def _launch(self) -> None:
        if self.camera_file is not None and not Path(self.camera_file).is_file():
            raise BotError(f"camera file not found: {self.camera_file}", sub_code="internal_error")
        self.temp_root.mkdir(parents=True, exist_ok=True)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="chromium-", dir=self.temp_root))
        (self.temp_dir / "home").mkdir()
        self._service = Service(
            str(self.settings.chromedriver_binary),
            env=self._env(),
            log_output=str(self.log_path) if self.log_path else subprocess.DEVNULL,
            # Chromium's own stderr still lands in the log; chromedriver's per-command INFO lines
            # (one page poll every 0.4 s for hours) do not.
            service_args=["--log-level=WARNING"] if self.log_path else [],
            popen_kw={"start_new_session": True},
        )
        try:
            self._driver = webdriver.Chrome(options=self._options(), service=self._service)
        finally:
            self._remember_tree()
        self._driver.set_page_load_timeout(self.page_load_timeout)
        if self.headless:
            self._hide_headless_user_agent()
        with contextlib.suppress(Exception):  # the prefs and flags above already allow both
            self._driver.execute_cdp_cmd("Browser.grantPermissions", {"permissions": ["audioCapture", "videoCapture"]})

    def _hide_headless_user_agent(self) -> None:
        """Headless Chromium says "HeadlessChrome" in its user agent, which meeting sites may turn away; the
        page sees the user agent of the same Chromium with a window instead. Best effort: a failure is logged."""
        assert self._driver is not None
        try:
            agent = str(self._driver.execute_cdp_cmd("Browser.getVersion", {})["userAgent"])
            override = {"userAgent": agent.replace("HeadlessChrome", "Chrome")}
            self._driver.execute_cdp_cmd("Network.setUserAgentOverride", override)
        except Exception as exc:
            log.warning("headless user agent kept", extra={"error": str(exc)})

    def _remember_tree(self) -> None:
        proc = getattr(self._service, "process", None)
        if proc is not None:
            if ref := ProcRef.of(proc.pid):
                self._known.add(ref)
            self._known.update(descendants(proc.pid))

    def processes(self) -> list[ProcRef]:
        """The live processes of this session: chromedriver, Chromium and its helpers."""
        self._remember_tree()
        if self.temp_dir is not None:
            # Also finds what Chromium double-forks out of the tree (crashpad handlers).
            self._known.update(processes_matching(str(self.temp_dir)))
        self._known = {ref for ref in self._known if ref.alive()}
        return sorted(self._known, key=lambda ref: ref.pid)

    def stop(self) -> None:
        with self._lock:
            self._teardown()

    def abort(self) -> None:
        """Kill the browser's processes now, from any thread: a driver call blocked on a page that never
        loads returns with an error at once. stop() still runs afterwards and cleans up the rest."""
        kill_all(self.processes(), grace=0.5)

    def _teardown(self) -> None:
        known = self.processes()
        driver, self._driver = self._driver, None
        service, self._service = self._service, None
        if driver is not None:
            self._quit(driver)
        kill_all([*known, *self.processes()], grace=2.0)
        if service is not None:
            with contextlib.suppress(Exception):
                service.stop()  # chromedriver is gone by now: this only reaps it and closes its log
        self._known.clear()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    @staticmethod
    def _quit(driver: webdriver.Chrome, timeout: float = 5.0) -> None:
        """driver.quit() with a bound: a wedged browser must not hang the bot (the tree is killed next)."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                driver.quit()
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=run, name="browser-quit", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive() or errors:
            log.debug("driver.quit() did not finish cleanly: %s", errors or "timeout")
