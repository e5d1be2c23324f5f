#!/usr/bin/env bash
# R2F-cpp: one entry point for set-up, build, tests and the demo.
#
#   ./run.sh demo    install what is missing, build, run the main job end to end
#   ./run.sh test    install what is missing, build, run the whole test suite
#   ./run.sh build   install what is missing, build only
#   ./run.sh deps    install what is missing only
#   ./run.sh fleet   a fleet: four devices with their own soft errors, retrained at once
#   ./run.sh reproduce [--quick]   the paper's figures at our scale (docs/results.md)
#
# Environment: R2F_BUILD_DIR (default build), R2F_JOBS (default: number of cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Absolute: demo and fleet change to $ROOT before they run the binaries.
BUILD_DIR="$(realpath -m "${R2F_BUILD_DIR:-$ROOT/build}")"
JOBS="${R2F_JOBS:-$(nproc)}"

# Debian 12 packages the project builds and runs with.
PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libtorch-dev libopenblas0-pthread
  libpaho-mqttpp-dev libpaho-mqtt-dev mosquitto mosquitto-clients
  liblz4-dev libprotobuf-dev protobuf-compiler zlib1g-dev libisal-dev
  libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev openssl rabbitmq-server
  dataset-fashion-mnist
  python3-matplotlib
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
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}"; then
    log "error: apt-get could not install: ${missing[*]}"
    log "(no network or no Debian mirror reachable? see apt's message above); install them by"
    log "other means, then run this again"
    exit 1
  fi
}

# Builds everything, or only the targets given (e.g. build r2f_server r2f_client).
build() {
  install_missing
  export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
  export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-include_file_mtime,include_file_ctime,time_macros}"
  export CCACHE_BASEDIR="$ROOT"
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  log "building in $BUILD_DIR with $JOBS jobs"
  cmake --build "$BUILD_DIR" -j "$JOBS" ${1:+--target "$@"} >&2
}

run_tests() {
  build
  log "running the test suite"
  # Every test binary of the project is registered with CTest (tests/CMakeLists.txt).
  (cd "$BUILD_DIR" && ctest --output-on-failure -j "$JOBS" --timeout 1200 "$@")
}

# A free TCP port on the loopback interface (nothing answers a connect to it).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  log "error: no free port found"; exit 1
}

BROKER_MALLOC_TUNABLES="glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456"

# Starts a throwaway mosquitto on 127.0.0.1:$1 with its files in $2; prints its pid.
start_broker() {
  local port="$1" dir="$2"
  cat > "$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 0
set_tcp_nodelay true
user root
CONF
  # glibc would give back the pages of every relayed chunk (configs/mosquitto/README).
  GLIBC_TUNABLES="${GLIBC_TUNABLES:+$GLIBC_TUNABLES:}$BROKER_MALLOC_TUNABLES" \
    mosquitto -c "$dir/mosquitto.conf" > "$dir/mosquitto.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$pid"
      return 0
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true  # a slow start must not outlive the script
  log "error: mosquitto did not start; its log:"; cat "$dir/mosquitto.log" >&2; exit 1
}

# The main job end to end: pre-train (cached), broker, device daemon, remote retraining.
demo() {
  build
  cd "$ROOT"
  local bin="$BUILD_DIR/bin" port
  log "1/3 pre-training the default ResNet18 on Fashion-MNIST (cached under cache/models)"
  "$bin/r2f_server" pretrain --config configs/pretrain/resnet18.yaml

  # Globals, not locals: the EXIT trap runs after demo() has returned.
  demo_work=$(mktemp -d /tmp/r2f-demo.XXXXXX)
  demo_client_pid=""
  demo_broker_pid=""
  # Set before anything can fail, so that the work directory never stays behind.
  trap 'if [ -n "$demo_client_pid" ]; then kill "$demo_client_pid" 2>/dev/null; wait "$demo_client_pid" 2>/dev/null; fi;
        if [ -n "$demo_broker_pid" ]; then kill "$demo_broker_pid" 2>/dev/null; fi; rm -rf "$demo_work"' EXIT
  port=$(free_port)
  demo_broker_pid=$(start_broker "$port" "$demo_work")
  log "2/3 mosquitto on 127.0.0.1:$port; device daemon (configs/demo/client.yaml, BER 2e-4)"
  "$bin/r2f_client" --config configs/demo/client.yaml --broker "tcp://127.0.0.1:$port" \
    > "$demo_work/client.log" 2>&1 &
  demo_client_pid=$!

  log "3/3 remote retraining (configs/retrain/quick.yaml): Base, APRM retraining (exact increments, do no harm), retrained"
  "$bin/r2f_server" retrain --config configs/retrain/quick.yaml --broker "tcp://127.0.0.1:$port"
  log "done: per-iteration stage times in runs/quick/stages.jsonl, totals in runs/quick/summary.json"
}

# A fleet end to end (docs/fleet.md): pre-train (cached), broker, the four device daemons of
# configs/fleet/, one server running two jobs at a time; the fleet table and plot at the end.
fleet() {
  build
  cd "$ROOT"
  local bin="$BUILD_DIR/bin" port
  log "1/3 pre-training the default ResNet18 on Fashion-MNIST (cached under cache/models)"
  "$bin/r2f_server" pretrain --config configs/pretrain/resnet18.yaml > /dev/null

  # Globals, not locals: the EXIT trap runs after fleet() has returned.
  fleet_work=$(mktemp -d /tmp/r2f-fleet.XXXXXX)
  fleet_pids=()
  fleet_broker_pid=""
  # Set before anything can fail, so that the work directory never stays behind.
  trap 'for p in "${fleet_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
        if [ -n "$fleet_broker_pid" ]; then kill "$fleet_broker_pid" 2>/dev/null; fi; rm -rf "$fleet_work"' EXIT
  port=$(free_port)
  fleet_broker_pid=$(start_broker "$port" "$fleet_work")
  log "2/3 mosquitto on 127.0.0.1:$port; device daemons configs/fleet/dev-{1..4}.yaml"
  for cfg in configs/fleet/dev-*.yaml; do
    "$bin/r2f_client" --config "$cfg" --broker "tcp://127.0.0.1:$port" \
      > "$fleet_work/$(basename "$cfg" .yaml).log" 2>&1 &
    fleet_pids+=($!)
  done
  log "3/3 the fleet (configs/fleet.yaml): every device retrained against its own errors"
  "$bin/r2f_server" fleet --config configs/fleet.yaml --restart --broker "tcp://127.0.0.1:$port"
}

# The paper's figures at our scale (docs/results.md). docs/figures/reproduce.py starts a
# throwaway mosquitto and one device daemon per bit error rate, runs the sweep of
# docs/figures/sweeps.py and draws the figures. Every run keeps its directory under
# runs/reproduce[-quick]/; a rerun skips finished runs.
#   ./run.sh reproduce [--quick]            the quick or the full sweep
#   ./run.sh reproduce --sweep smoke        any sweep of sweeps.py (other options: reproduce.py -h)
reproduce() {
  local args=("$@")
  if [ "${1:-}" = "--quick" ]; then args=(--sweep quick "${@:2}"); fi
  case " ${args[*]} " in *" --sweep "*) ;; *) args=(--sweep full "${args[@]}") ;; esac
  build r2f_server r2f_client r2f_sim
  cd "$ROOT"
  local start=$SECONDS status=0
  # Debian's python3, which has python3-matplotlib.
  /usr/bin/python3 docs/figures/reproduce.py all "${args[@]}" || status=$?
  log "reproduce (${args[*]}): $((SECONDS - start)) s"
  return $status
}

cmd="${1:-}"
shift || true
case "$cmd" in
  deps) install_missing ;;
  build) build ;;
  test) run_tests "$@" ;;
  demo) demo "$@" ;;
  fleet) fleet "$@" ;;
  reproduce) reproduce "$@" ;;
  *)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
