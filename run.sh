#!/usr/bin/env bash
# R2F-cpp: one entry point for set-up, build, tests and the demo.
#
#   ./run.sh demo    install what is missing, build, run the main job end to end
#   ./run.sh test    install what is missing, build, run the whole test suite
#   ./run.sh build   install what is missing, build only
#   ./run.sh deps    install what is missing only
#
# Environment: R2F_BUILD_DIR (default build), R2F_JOBS (default: number of cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD_DIR="${R2F_BUILD_DIR:-$ROOT/build}"
JOBS="${R2F_JOBS:-$(nproc)}"

# Debian 12 packages the project builds and runs with.
PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-pthread
  libpaho-mqttpp-dev libpaho-mqtt-dev mosquitto mosquitto-clients
  liblz4-dev libprotobuf-dev protobuf-compiler zlib1g-dev
  libspdlog-dev libyaml-cpp-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
)

log() { printf '\033[1m[run.sh]\033[0m %s\n' "$*" >&2; }

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing missing packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      log "error: not root and no sudo; install these packages first: ${missing[*]}"; exit 1
    fi
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
  install_missing
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-include_file_mtime,include_file_ctime,time_macros}"
  export CCACHE_BASEDIR="$ROOT"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  log "building in $BUILD_DIR with $JOBS jobs"
  cmake --build "$BUILD_DIR" -j "$JOBS" >&2
}

run_tests() {
  build
  log "running the test suite"
  # Every test binary of the project is registered with CTest (tests/CMakeLists.txt).
  (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" --timeout 1200 "$@")
}

demo() {
  build
  "$ROOT/scripts/demo.sh" "$BUILD_DIR" "$@"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  deps) install_missing ;;
  build) build ;;
  test) run_tests "$@" ;;
  demo) demo "$@" ;;
  *)
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
