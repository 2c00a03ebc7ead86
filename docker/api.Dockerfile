# The MeetBot API (and the webhooks/maintenance workers, which need no browser): Python on Debian, non-root.
FROM debian:12-slim
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MEETBOT_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 meetbot && mkdir -p /data && chown meetbot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY meetbot ./meetbot
COPY api ./api
COPY workers ./workers
RUN python3 -m venv /venv && /venv/bin/pip install .
ENV PATH=/venv/bin:$PATH
USER meetbot
VOLUME /data
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["meetbot", "api", "--host", "0.0.0.0", "--port", "8000"]
