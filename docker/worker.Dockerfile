# A MeetBot bot worker: Chromium + chromedriver on a virtual X display (Xvfb) with PulseAudio, ffmpeg to record,
# fonts to render meeting pages. Runs as a non-root user. Chromium needs a large /dev/shm: run it with
# `shm_size: 1gb` (compose) or `--shm-size=1g` (docker run); Docker's 64 MB default crashes tabs mid-call.

# meetbot-ffmpeg: FFmpeg with only the recorder's parts, ~40 MB less memory per bot than Debian's (docs/density.md).
FROM debian:12-slim AS recorder-ffmpeg
COPY scripts/build-recorder-ffmpeg.sh /build/scripts/
RUN apt-get update \
    && apt-get install -y --no-install-recommends $(bash /build/scripts/build-recorder-ffmpeg.sh --packages) \
    && rm -rf /var/lib/apt/lists/* \
    && bash /build/scripts/build-recorder-ffmpeg.sh /usr/local/bin

FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MEETBOT_DATA_DIR=/data \
    MEETBOT_CHROMIUM_BINARY=/usr/lib/chromium/chromium MEETBOT_CHROMEDRIVER_BINARY=/usr/bin/chromedriver
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv chromium chromium-driver xvfb xauth pulseaudio pulseaudio-utils ffmpeg dbus-x11 \
        fonts-dejavu-core fonts-liberation fonts-noto-color-emoji fonts-noto-cjk ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 meetbot && mkdir -p /data && chown meetbot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY meetbot ./meetbot
COPY api ./api
COPY workers ./workers
RUN python3 -m venv /venv && /venv/bin/pip install .
# Found on PATH by workers/bots/recorder.py; its libraries (libx264, libxcb, libpulse) come with ffmpeg above.
COPY --from=recorder-ffmpeg /usr/local/bin/meetbot-ffmpeg /usr/local/bin/meetbot-ffmpeg
ENV PATH=/venv/bin:$PATH
USER meetbot
VOLUME /data
STOPSIGNAL SIGTERM
CMD ["meetbot", "worker", "--queues", "bots"]
