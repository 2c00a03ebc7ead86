#!/usr/bin/env bash
# Build `meetbot-ffmpeg`: an ffmpeg with only what a bot's recorder uses (docs/density.md, "The recorder's ffmpeg").
#   bash scripts/build-recorder-ffmpeg.sh [BIN_DIR]     # default BIN_DIR: .venv/bin
#   bash scripts/build-recorder-ffmpeg.sh --packages    # the Debian packages the build needs, one per line
# Debian's ffmpeg links ~215 shared libraries, and their pages cost each recording bot ~40 MB of PSS; this one links
# ~30 and records the same way (the same FFmpeg release as Debian 12's, so the recorder's flags behave the same).
# Needs BUILD_PACKAGES (scripts/bootstrap.sh and docker/worker.Dockerfile install them from --packages).
# FFMPEG_SOURCE: a local tarball or a URL to use instead of the mirrors below (same checksum). A binary already
# built by this recipe is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PACKAGES=(build-essential nasm pkg-config curl xz-utils ca-certificates libx264-dev libxcb1-dev
  libxcb-shm0-dev libpulse-dev)
if [ "${1:-}" = --packages ]; then
  printf '%s\n' "${BUILD_PACKAGES[@]}"
  exit 0
fi
bin_dir="${1:-.venv/bin}"

VERSION=5.1.9
SHA256=d9b593bb2ba93d4b50f74177e0cdcd41747e708596367deed0c30348a71dd176
# Bump RECIPE whenever the configure line changes: a binary of another recipe is rebuilt.
RECIPE=meetbot-recorder-1
# Debian's pool over http too: its mirrors answer both, and a proxy may pass only one (the checksum is what counts).
MIRRORS=(
  "https://deb.debian.org/debian/pool/main/f/ffmpeg/ffmpeg_${VERSION}.orig.tar.xz"
  "https://deb.debian.org/debian-security/pool/updates/main/f/ffmpeg/ffmpeg_${VERSION}.orig.tar.xz"
  "http://deb.debian.org/debian/pool/main/f/ffmpeg/ffmpeg_${VERSION}.orig.tar.xz"
  "https://ffmpeg.org/releases/ffmpeg-${VERSION}.tar.xz"
)

target="${bin_dir}/meetbot-ffmpeg"
if [ -x "$target" ] && "$target" -hide_banner -version 2>/dev/null | head -1 | grep -q -- "${VERSION}-${RECIPE}"; then
  echo "meetbot-ffmpeg ${VERSION}-${RECIPE} is already built: ${target}"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="${work}/ffmpeg.tar.xz"

fetch() {
  local source="$1"
  if [ -f "$source" ]; then
    cp "$source" "$tarball"
  else
    curl -fsSL --retry 2 --max-time 300 -o "$tarball" "$source" || return 1
  fi
  echo "${SHA256}  ${tarball}" | sha256sum --check --status
}

sources=("${MIRRORS[@]}")
if [ -n "${FFMPEG_SOURCE:-}" ]; then sources=("$FFMPEG_SOURCE"); fi
fetched=""
for source in "${sources[@]}"; do
  if fetch "$source"; then fetched="$source"; break; fi
done
if [ -z "$fetched" ]; then
  echo "could not fetch FFmpeg ${VERSION} with sha256 ${SHA256} from: ${sources[*]}" >&2
  exit 1
fi
tar -xf "$tarball" -C "$work"
cd "$work/ffmpeg-${VERSION}"

# Only the recorder's parts (workers/bots/recorder.py): PulseAudio and X11 (xcbgrab) inputs, their raw samples and
# frames, x264 and AAC, fragmented MP4 to a file, the filters its command line names plus the ones ffmpeg inserts
# (scale and aresample convert formats, buffers and sinks frame every graph), and lavfi's sine/anullsrc inputs for
# checking a build without a sound server.
./configure --disable-everything --disable-autodetect --disable-doc --disable-ffplay --disable-ffprobe \
  --disable-network --disable-debug --enable-gpl --extra-version="${RECIPE}" \
  --enable-libx264 --enable-libxcb --enable-libxcb-shm --enable-libpulse \
  --enable-indev=xcbgrab,pulse,lavfi --enable-decoder=rawvideo,pcm_s16le --enable-encoder=libx264,aac \
  --enable-muxer=mp4 --enable-protocol=file,pipe \
  --enable-filter=setpts,asetpts,aresample,silencedetect,scale,format,aformat,null,anull,buffer,abuffer \
  --enable-filter=buffersink,abuffersink,trim,atrim,copy,acopy,sine,anullsrc >"$work/configure.log" 2>&1 \
  || { tail -20 "$work/configure.log" >&2; exit 1; }
make -j"$(nproc)" ffmpeg >"$work/make.log" 2>&1 || { tail -20 "$work/make.log" >&2; exit 1; }

cd - >/dev/null
mkdir -p "$bin_dir"
install -m 0755 "$work/ffmpeg-${VERSION}/ffmpeg" "${target}.tmp"
mv "${target}.tmp" "$target"
echo "built meetbot-ffmpeg ${VERSION}-${RECIPE} from ${fetched}: ${target}"
