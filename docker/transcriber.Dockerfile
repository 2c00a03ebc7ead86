# The MeetBot transcriber: faster-whisper on an NVIDIA CUDA runtime (cuDNN included), models kept in a volume.
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 MEETBOT_DATA_DIR=/data \
    HF_HOME=/models MEETBOT_WHISPER_DEVICE=cuda
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ffmpeg ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 meetbot && mkdir -p /data /models && chown meetbot /data /models
WORKDIR /app
COPY pyproject.toml README.md ./
COPY meetbot ./meetbot
COPY api ./api
COPY workers ./workers
RUN python3 -m venv /venv && /venv/bin/pip install .
ENV PATH=/venv/bin:$PATH
USER meetbot
# Models fetched beforehand (MEETBOT_WHISPER_MODEL=/models/large-v3, docker/README.md) stay here across restarts.
VOLUME /models
STOPSIGNAL SIGTERM
CMD ["meetbot", "worker", "--queues", "transcribe"]
