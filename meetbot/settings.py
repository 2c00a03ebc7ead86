"""Process settings: every knob comes from MEETBOT_* environment variables through this object."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEETBOT_", extra="ignore")

    data_dir: Path = Path("./.meetbot")  # local state: SQLite database, spool, secret key, file storage
    database_url: str | None = None  # postgresql://… (fleet); None: SQLite in the data dir
    redis_url: str | None = None  # redis://…: queues, rate limits, kill signals, live events; None: embedded
    # The message broker when it is not MEETBOT_REDIS_URL: amqp://… uses RabbitMQ (durable queues); None: Redis.
    broker_url: str | None = Field(None, pattern=r"^(amqps?|redis)://")
    # GET /metrics: a bearer token it requires; None: only loopback clients may read it.
    metrics_token: SecretStr | None = None
    storage_url: str | None = None  # s3://… or file://…; None: files in the data dir
    secret_key: str | None = None  # signs tokens, seals secrets; None: generated once in the data dir
    # Comma-separated earlier secret keys: stored secrets sealed with them still open (meetbot/secrets_at_rest.py).
    previous_secret_keys: str = Field("", repr=False)

    host: str = "127.0.0.1"  # address `meetbot api`/`up` listen on
    port: int = Field(8000, ge=1, le=65535)  # port `meetbot api`/`up` listen on
    public_url: str | None = None  # this API's external URL (links, share pages)

    # Redis broker: a worker silent this long is dead and its unfinished messages go to another worker; the
    # requeue check runs on about this many of every million broker commands.
    broker_heartbeat_timeout_ms: int = Field(60_000, ge=1000)
    broker_maintenance_chance: int = Field(1000, ge=1, le=1_000_000)  # per million Redis broker commands: requeue check

    rate_limit_per_minute: int = Field(60, ge=1)  # requests per API key per minute
    rate_limit_per_hour: int = Field(1000, ge=1)  # requests per API key per hour
    max_body_bytes: int = Field(1024 * 1024, ge=1024)  # largest request body accepted
    access_token_ttl_seconds: int = Field(900, ge=10)  # lifetime of a login's access token
    refresh_token_ttl_seconds: int = Field(30 * 24 * 3600, ge=60)  # lifetime of a refresh token
    registration: Literal["open", "closed"] = "open"  # closed: POST /auth/register is 403, `meetbot users create` adds
    max_api_keys_per_user: int = Field(20, ge=1)  # active (unrevoked) keys; more would multiply a user's rate limit
    # Off the request path: request-log rows and keys' last-used times are written in batches this often.
    request_log_flush_seconds: float = Field(0.5, gt=0, le=1)
    request_log_max_pending: int = Field(100_000, ge=1000)  # rows kept while the database refuses them
    # How long an API process trusts a checked key or token; a revocation elsewhere shows within this (0: off).
    principal_cache_seconds: float = Field(1.0, ge=0, le=1)
    # How long an API process answers a caller's bot list or bot from memory; a change through the API or with a
    # bot event shows at once, anything else (a heartbeat) within this (0: off).
    page_cache_seconds: float = Field(1.0, ge=0, le=1)
    api_worker_threads: int = Field(8, ge=1, le=1000)  # request threads per API process (bench/api.py: 8 beat 40)
    # `meetbot api` worker processes on one port (uvicorn workers; the Procfile runs 2); `--workers` overrides it.
    api_workers: int = Field(1, ge=1, le=64)

    # Bots
    allow_simulator: bool = False  # bots may join the simulator's meetings
    # botImage fetches (meetbot/outbound.py): loopback and private addresses only when true (the embedded demo with
    # a self-hosted picture, tests); link-local and cloud metadata never. Webhooks keep webhook_allow_private.
    allow_private_urls: bool = False
    bot_image_timeout_seconds: float = Field(15, gt=0, le=120)  # the whole botImage fetch, redirects included
    bots_per_process: int = Field(2, ge=1, le=64)  # bot slots per bot worker process
    drain_timeout: float = Field(3600, ge=0)  # seconds a stopping bot worker lets its calls go on before they leave
    max_in_call_minutes: float = Field(240, gt=0)  # a bot leaves a call after this long
    default_heartbeat_interval_ms: int = Field(5000, ge=500)  # bot heartbeat period
    stale_heartbeat_min_seconds: float = Field(30, ge=1)  # a bot silent this long is stale
    deploying_grace_seconds: float = Field(120, ge=1)  # longest DEPLOYING before the reaper acts
    reaper_interval_seconds: float = Field(15, ge=1)  # how often the reaper runs
    kill_check_interval_seconds: float = Field(0.5, gt=0, le=1)  # how often a bot checks for a kill
    page_poll_interval_seconds: float = Field(0.4, gt=0, le=2)  # how often a bot reads its meeting page
    join_timeout_seconds: float = Field(60, gt=0)  # longest wait to be admitted to a call
    chromium_binary: Path = Path("/usr/lib/chromium/chromium")  # Chromium used by bots
    chromedriver_binary: Path = Path("/usr/bin/chromedriver")  # chromedriver used by bots
    chromium_extra_args: str = ""  # space-separated flags added to every bot's Chromium
    screen_width: int = 1280  # bot virtual screen width (px)
    screen_height: int = 720  # bot virtual screen height (px)
    video_framerate: int = Field(15, ge=1, le=60)  # recording frames per second
    # x264 preset of video recordings: "ultrafast" costs the least CPU and memory per bot (docs/density.md); a slower
    # one ("superfast", "veryfast", ...) makes ~20 % smaller files for ~15 % more CPU per recording bot.
    video_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "ultrafast"
    # ffmpeg that records bots; default: meetbot-ffmpeg (scripts/build-recorder-ffmpeg.sh, ~40 MB less PSS per bot,
    # docs/density.md) beside the Python interpreter or on PATH, else ffmpeg.
    recorder_ffmpeg: str | None = Field(None, min_length=1)
    browser_language: str = "en-US"  # bot browser's language
    # This worker's host name in its spool and runtime folders (spool/<host>/<bot id>), its bots' process tags and
    # its worker id; default: the machine's hostname. Workers sharing a data volume need different ones (each
    # container's own hostname is): a spool folder is cleaned up only by its own host, or once its bot is dead.
    worker_host: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    # A worker process's own Prometheus figures (deploy → IN_CALL latency, its slots) over HTTP: the first port tried
    # (taken: the next, so several worker processes of one host get port, port+1, …; meetbot/metrics/worker.py); 0: off.
    worker_metrics_port: int = Field(0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"  # address the worker metrics port listens on (0.0.0.0 in containers)

    # Recordings
    recording_retention_days: float | None = Field(None, gt=0)  # None: kept until deleted
    retention_interval_seconds: float = Field(300, ge=1)  # how often the retention pass runs
    # Request logs, bot logs and bot events older than this are pruned by the same maintenance pass.
    log_retention_days: float = Field(30, gt=0)
    # Seconds between a bot's upload attempts; after the last, the reaper retries from the spool.
    storage_upload_retry_seconds: str = Field("1,2,4,8,15,30,60", pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$")
    download_url_ttl_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)  # S3 presigns at most 7 days

    # Transcription (faster-whisper) and summaries
    whisper_model: str | None = None  # a size name (e.g. large-v3) or a model directory; None: packaged tiny.en
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"  # where faster-whisper runs
    whisper_compute_type: str = "auto"  # auto: float16 on CUDA; on CPU the faster of int8/float32 here
    # 0: the sequential pipeline. Batched is the default: on the 30-60 s chunks of live transcripts it measured
    # 4 % WER where the sequential one dropped repeated sentences (48 %); on a whole 10-minute meeting in one go
    # the sequential one did better (6 % against 22 %, bench/transcribe.py).
    whisper_batch_size: int = Field(8, ge=0, le=64)
    whisper_beam_size: int = Field(1, ge=1, le=10)  # faster-whisper beam size
    whisper_cpu_threads: int = Field(0, ge=0, le=256)  # 0: faster-whisper's default
    # transcription.auto: the bot hands audio to the transcribers at a silence this long into a chunk, or at the max
    live_chunk_min_seconds: float = Field(30, ge=5)
    live_chunk_max_seconds: float = Field(60, ge=10)  # longest live transcription chunk
    llm_base_url: str | None = None  # an OpenAI-compatible API, e.g. https://api.openai.com/v1
    llm_model: str | None = None  # model name for summaries
    llm_api_key: SecretStr | None = None  # API key for llm_base_url
    llm_timeout_seconds: float = Field(60, gt=0, le=600)  # longest summary request

    # Webhooks: signed POSTs with retries (DESIGN.md §5)
    webhook_allow_private: bool = False  # loopback/private targets (embedded mode, tests); never link-local/metadata
    webhook_timeout_seconds: float = Field(10, gt=0, le=120)  # the whole attempt: DNS, connect, send, response
    # Seconds before each retry (attempt 2, 3, …), each ± webhook_retry_jitter; after the last, the delivery fails.
    webhook_retry_schedule_seconds: str = Field(
        "5,60,300,1800,7200,21600,43200", pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$"
    )
    webhook_retry_jitter: float = Field(0.2, ge=0, le=1)  # ± fraction applied to each retry delay
    webhook_disable_after_hours: float = Field(72, gt=0)  # failing this long without a success: disabled
    webhook_response_excerpt_bytes: int = Field(1024, ge=0, le=1024)  # all that is ever read of a response
    webhook_claim_lease_seconds: float = Field(120, gt=0)  # a claim older than this was a worker that died
    webhook_sweep_interval_seconds: float = Field(10, gt=0)  # sends due deliveries whose message was lost
    webhook_concurrency: int = Field(8, ge=1, le=256)  # delivery threads per worker process
    webhook_max_per_user: int = Field(50, ge=1)  # webhook endpoints per user

    # Simulator
    simulator_host: str = "127.0.0.1"  # address of the meeting simulator
    simulator_port: int = Field(8100, ge=1, le=65535)  # port of the meeting simulator
    simulator_media_dir: Path | None = None  # simulator's media files; None: data dir/media

    # Live event streams (Server-Sent Events)
    sse_heartbeat_seconds: float = Field(15, gt=0, le=300)  # a comment line this often keeps proxies from closing
    sse_poll_seconds: float = Field(3, gt=0, le=60)  # a stream also reads the database this often (a lost notice)

    log_level: str = "INFO"  # DEBUG, INFO, WARNING, …
    log_json: bool = True  # logs as JSON lines (else text)

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> Settings:
        if self.webhook_claim_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("webhook_claim_lease_seconds must be longer than webhook_timeout_seconds")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'meetbot.db'}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or f"file://{self.data_dir / 'storage'}"

    @property
    def upload_retry_delays(self) -> list[float]:
        return [float(part) for part in self.storage_upload_retry_seconds.split(",")]

    @property
    def webhook_retry_delays(self) -> list[float]:
        return [float(part) for part in self.webhook_retry_schedule_seconds.split(",")]

    @property
    def effective_worker_host(self) -> str:
        return self.worker_host or socket.gethostname()

    @property
    def spool_root(self) -> Path:
        """Every host's spool folders: spool/<host>/<bot id> (and spool/<bot id> from before hosts were named)."""
        return self.data_dir / "spool"

    @property
    def spool_dir(self) -> Path:
        """This host's bots' spool folders."""
        return self.spool_root / self.effective_worker_host

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def media_dir(self) -> Path:
        return self.simulator_media_dir or self.data_dir / "media"

    @property
    def embedded(self) -> bool:
        return self.redis_url is None

    def secret_keys(self, current: str | None = None) -> tuple[str, ...]:
        """The current secret key (given, or resolved), then the previous ones: what opens a sealed secret."""
        previous = (key.strip() for key in self.previous_secret_keys.split(","))
        return (current or self.resolved_secret_key(), *(key for key in previous if key))

    def resolved_secret_key(self) -> str:
        """The signing key: the configured one, else one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Created 0600 from the start (never readable by others, not even for a moment), written whole under a
            # private name, then linked into place: a process racing this one reads a complete key or makes its
            # own link fail and reads the winner's.
            draft = self.data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
                    out.flush()
                    os.fsync(out.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(draft, path)
            finally:
                draft.unlink(missing_ok=True)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
