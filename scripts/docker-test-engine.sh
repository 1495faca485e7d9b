#!/usr/bin/env bash
# A private Docker engine and a local prefect-ml image for the Docker tests (and for trying the Docker compute).
#
#   eval "$(scripts/docker-test-engine.sh start)"   # prints `export DOCKER_HOST=... PREFECT_ML_TEST_IMAGE=...`
#   scripts/docker-test-engine.sh stop              # stops the engine by its PID file
#
# start: installs docker.io and debootstrap with apt-get when missing (root only), starts `dockerd` on its own
# socket with no bridge/iptables (the only way it runs on these machines), then builds, unless already present:
#   1. ${BASE_IMAGE}: a Debian bookworm minbase root filesystem with python3 (debootstrap), `docker import`ed;
#   2. ${IMAGE}: FROM the base, a virtual environment /opt/prefect-ml with prefect-ml and all its dependencies,
#      installed by uv from wheels built on the host (`pip wheel .`: the host's pip configuration, index and CA
#      bundle apply; nothing is downloaded inside the container). Rebuilt when the source tree changes.
# Every failure is reported on stderr and leaves nothing exported: the Docker tests then skip and say why.
# Timings of each step go to stderr.
set -uo pipefail

ROOT_DIR="${PREFECT_ML_DOCKER_ROOT:-/var/lib/prefect-ml-docker}"
SOCK="$ROOT_DIR/docker.sock"
PIDFILE="$ROOT_DIR/dockerd.pid"
BASE_IMAGE="${PREFECT_ML_TEST_BASE_IMAGE:-prefect-ml-test/python:bookworm}"
IMAGE="${PREFECT_ML_TEST_IMAGE:-prefect-ml-test/prefect-ml:dev}"  # not :latest, which Docker workers always pull
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python}"
export DOCKER_HOST="unix://$SOCK"

log() { echo "[docker-test-engine] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

engine_alive() { docker version >/dev/null 2>&1; }

install_packages() {
  command -v dockerd >/dev/null && command -v debootstrap >/dev/null && command -v docker >/dev/null && return 0
  if [ "$(id -u)" != 0 ]; then log "dockerd/debootstrap missing and not root: cannot install them"; return 1; fi
  local t; t=$(now)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null 2>&1; } \
    || { log "apt-get install docker.io debootstrap failed"; return 1; }
  log "installed docker.io and debootstrap in $(since "$t") s"
}

start_engine() {
  if engine_alive; then log "engine already running on $SOCK"; return 0; fi
  if [ "$(id -u)" != 0 ]; then log "dockerd needs root"; return 1; fi
  mkdir -p "$ROOT_DIR/data" "$ROOT_DIR/exec"
  local t; t=$(now)
  # setsid: the engine outlives this script; it is stopped by PID with `stop`.
  setsid dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=overlay2 \
    --data-root "$ROOT_DIR/data" --exec-root "$ROOT_DIR/exec" -H "unix://$SOCK" --pidfile "$PIDFILE" \
    >"$ROOT_DIR/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 300); do engine_alive && break; sleep 0.1; done
  if ! engine_alive; then log "dockerd did not answer within 30 s:"; tail -5 "$ROOT_DIR/dockerd.log" >&2; return 1; fi
  log "engine up in $(since "$t") s (socket $SOCK, log $ROOT_DIR/dockerd.log)"
}

build_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then log "base image $BASE_IMAGE present"; return 0; fi
  local t mirror rootfs
  t=$(now)
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs="$ROOT_DIR/rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >"$ROOT_DIR/debootstrap.log" 2>&1 \
    || { log "debootstrap failed:"; tail -5 "$ROOT_DIR/debootstrap.log" >&2; return 1; }
  rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null || { log "docker import failed"; return 1; }
  rm -rf "$rootfs"
  log "base image $BASE_IMAGE built in $(since "$t") s (debootstrap + import)"
}

source_hash() {
  (cd "$REPO" && { git ls-files -s src pyproject.toml 2>/dev/null; git diff HEAD -- src pyproject.toml 2>/dev/null; cat "$0";
                   git ls-files --others --exclude-standard src 2>/dev/null | xargs -r cat 2>/dev/null; } ) | sha256sum | cut -c1-16
}

build_image() {
  local hash current t ctx uv_bin
  hash=$(source_hash)
  current=$(docker image inspect -f '{{ index .Config.Labels "prefect-ml.source-hash" }}' "$IMAGE" 2>/dev/null || true)
  if [ "$current" = "$hash" ]; then log "image $IMAGE is up to date (source $hash)"; return 0; fi
  t=$(now)
  ctx=$(mktemp -d)
  deps=$(sha256sum <"$REPO/pyproject.toml" | cut -c1-16)  # the dependency layer is rebuilt when these change
  if [ -n "$current" ] && [ "$(docker image inspect -f '{{ index .Config.Labels "prefect-ml.deps-hash" }}' "$IMAGE")" = "$deps" ]; then
    # Same dependencies: only replace prefect-ml itself in the existing image (seconds, not minutes).
    "$PY" -m pip wheel -q --no-deps --wheel-dir "$ctx/app" "$REPO" >/dev/null 2>&1 || { log "pip wheel failed"; rm -rf "$ctx"; return 1; }
    printf 'FROM %s\nWORKDIR /opt/prefect-ml-workdir\nCOPY app /tmp/app\nRUN UV_LINK_MODE=copy uv pip install -q --compile-bytecode --python /opt/prefect-ml/bin/python --no-deps --reinstall /tmp/app/*.whl && rm -rf /tmp/app /root/.cache\nLABEL prefect-ml.source-hash=%s\n' "$IMAGE" "$hash" >"$ctx/Dockerfile"
    docker build -q --network host -t "$IMAGE" "$ctx" >"$ROOT_DIR/build.log" 2>&1 \
      || { log "docker build failed:"; tail -20 "$ROOT_DIR/build.log" >&2; rm -rf "$ctx"; return 1; }
    rm -rf "$ctx"
    log "image $IMAGE updated with the current prefect-ml in $(since "$t") s (source $hash)"
    return 0
  fi
  uv_bin=$("$PY" -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null || command -v uv || true)
  if [ -z "$uv_bin" ]; then "$PY" -m pip install -q uv >/dev/null 2>&1 && uv_bin=$("$PY" -c 'import uv; print(uv.find_uv_bin())'); fi
  [ -n "$uv_bin" ] || { log "uv not found (pip install uv)"; rm -rf "$ctx"; return 1; }
  cp "$uv_bin" "$ctx/uv"
  # async-timeout: needed by redis on Python < 3.11.3 (Debian's 3.11.2) but not on a newer host Python.
  "$PY" -m pip wheel -q --wheel-dir "$ctx/wheels" "$REPO" "async-timeout>=4.0.3" >"$ctx/pip-wheel.log" 2>&1 \
    || { log "pip wheel failed:"; tail -5 "$ctx/pip-wheel.log" >&2; rm -rf "$ctx"; return 1; }
  rm -f "$ctx/pip-wheel.log"
  log "host wheels built in $(since "$t") s ($(ls "$ctx/wheels" | wc -l) wheels, $(du -sh "$ctx/wheels" | cut -f1))"
  # Two layers: the dependencies (cached by the engine while their wheels are unchanged), then prefect-ml itself.
  mkdir "$ctx/app" && mv "$ctx"/wheels/prefect_ml-*.whl "$ctx/app/"
  cat >"$ctx/Dockerfile" <<EOF
FROM $BASE_IMAGE
COPY uv /usr/local/bin/uv
COPY wheels /tmp/wheels
RUN uv venv -q /opt/prefect-ml --python /usr/bin/python3 \\
 && UV_LINK_MODE=copy uv pip install -q --compile-bytecode --python /opt/prefect-ml/bin/python --no-index \\
      --find-links /tmp/wheels /tmp/wheels/*.whl \\
 && rm -rf /tmp/wheels /root/.cache
COPY app /tmp/app
RUN UV_LINK_MODE=copy uv pip install -q --compile-bytecode --python /opt/prefect-ml/bin/python --no-deps /tmp/app/*.whl \\
 && rm -rf /tmp/app /root/.cache
ENV PATH=/opt/prefect-ml/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONUNBUFFERED=1 PREFECT_ML_IN_CONTAINER=1
# An empty working directory: Prefect copies a deployment's working directory into each flow run's workspace
# when the deployment has no pull steps (from / it would copy the whole image).
WORKDIR /opt/prefect-ml-workdir
LABEL prefect-ml.source-hash=$hash prefect-ml.deps-hash=$deps
EOF
  docker build -q --network host -t "$IMAGE" "$ctx" >"$ROOT_DIR/build.log" 2>&1 \
    || { log "docker build failed:"; tail -20 "$ROOT_DIR/build.log" >&2; rm -rf "$ctx"; return 1; }
  rm -rf "$ctx"
  docker image prune -f >/dev/null 2>&1 || true
  log "image $IMAGE built in $(since "$t") s (source $hash)"
}

stop_engine() {
  [ -f "$PIDFILE" ] || { log "no engine PID file at $PIDFILE"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  log "engine (pid $pid) stopped"
}

case "${1:-start}" in
  start)
    t0=$(now)
    install_packages && start_engine && build_base && build_image || { log "Docker tests will be skipped"; exit 0; }
    log "ready in $(since "$t0") s"
    echo "export DOCKER_HOST=unix://$SOCK PREFECT_ML_TEST_DOCKER_HOST=unix://$SOCK PREFECT_ML_TEST_IMAGE=$IMAGE"
    ;;
  stop) stop_engine ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
