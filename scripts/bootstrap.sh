#!/usr/bin/env bash
# Install MeetBot on a fresh Debian 12 machine and run it (`up`) or its whole test suite (`test`).
#   bash scripts/bootstrap.sh up      # installs, then `meetbot up` on the embedded defaults
#   bash scripts/bootstrap.sh test    # installs with test extras, starts PostgreSQL/Redis if needed, runs pytest
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-up}"
shift || true

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

RUNTIME_PACKAGES=(python3 python3-venv python3-pip chromium chromium-driver xvfb pulseaudio pulseaudio-utils
  ffmpeg dbus-x11 fonts-dejavu-core)
TEST_PACKAGES=(espeak-ng sox strace postgresql postgresql-client redis-server redis-tools)

install_debian_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

python_env() {
  local extras="$1"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".${extras}"
}

# Bots record with meetbot-ffmpeg where it is built (about a minute; ~40 MB less memory per bot, docs/density.md). `up` goes on
# with Debian's ffmpeg if the build fails; `test` stops, since the suite must exercise what bots record with.
recorder_ffmpeg() {
  local on_failure="$1" build_packages
  mapfile -t build_packages < <(bash scripts/build-recorder-ffmpeg.sh --packages)
  if install_debian_packages "${build_packages[@]}" && bash scripts/build-recorder-ffmpeg.sh .venv/bin; then
    return 0
  fi
  if [ "$on_failure" = fail ]; then
    echo "building meetbot-ffmpeg failed" >&2
    exit 1
  fi
  echo "building meetbot-ffmpeg failed: bots record with Debian's ffmpeg" >&2
}

start_services() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    echo "starting PostgreSQL"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  # A fresh Debian cluster asks for a password over TCP: give the postgres role one for the tests.
  if ! psql -h 127.0.0.1 -U postgres -w -c "select 1" postgres >/dev/null 2>&1; then
    $SUDO su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export MEETBOT_TEST_PG_URL="postgresql://postgres:postgres@127.0.0.1:5432/postgres"
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
  fi
}

case "$mode" in
  up)
    install_debian_packages "${RUNTIME_PACKAGES[@]}"
    python_env ""
    recorder_ffmpeg warn
    exec .venv/bin/meetbot up "$@"
    ;;
  test)
    install_debian_packages "${RUNTIME_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    python_env "[test]"
    recorder_ffmpeg fail
    start_services
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: $0 up|test [args...]" >&2
    exit 2
    ;;
esac
