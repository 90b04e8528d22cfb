# Shared set-up steps for scripts/setup, scripts/test and scripts/start. Source it from the
# repository root. Every step is idempotent and says what it does.

REDIS_URL="${ORCHESTRATOR_REDIS_URL:-redis://127.0.0.1:6379/0}"
STATE_LOG_DIR="${ORCHESTRATOR_SETUP_LOGS:-/tmp/orchestrator-setup}"
mkdir -p "$STATE_LOG_DIR"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  # apt_install PACKAGE...: installs Debian packages, or stops saying how to get them.
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    die "missing $*: install it (Debian: apt-get install -y $*) or run this as root on Debian"
  fi
  say "installing $* (apt-get)"
  if [ ! -f "$STATE_LOG_DIR/apt-updated" ]; then
    apt-get update -qq >"$STATE_LOG_DIR/apt.log" 2>&1 || die "apt-get update failed: see $STATE_LOG_DIR/apt.log"
    touch "$STATE_LOG_DIR/apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$STATE_LOG_DIR/apt.log" 2>&1 \
    || die "apt-get install $* failed: see $STATE_LOG_DIR/apt.log"
}

ensure_venv() {
  local py="${PYTHON:-python3}"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is needed (found $("$py" --version 2>&1))"
  if [ ! -x .venv/bin/python ]; then
    say "creating virtualenv .venv"
    "$py" -m venv .venv || die "could not create .venv (Debian: apt-get install -y python3-venv)"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  local stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
  if [ ! -f "$stamp" ]; then
    say "installing the package and its dev extras into .venv"
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[dev]' >"$STATE_LOG_DIR/pip.log" 2>&1 \
      || die "pip install failed: see $STATE_LOG_DIR/pip.log"
    rm -f .venv/.installed-*
    touch "$stamp"
  fi
}

# Headless Chromium from Debian's packages, for the dashboard's browser tests, its screenshot
# and its benchmark (Playwright, a dev extra, drives it: no browser download).
CHROMIUM=/usr/bin/chromium

ensure_browser() {
  [ -x "$CHROMIUM" ] || apt_install chromium
}

engine_answers() { docker info >/dev/null 2>&1; }

ensure_engine() {
  if engine_answers; then return 0; fi
  if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST#unix://}" = "$DOCKER_HOST" ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer; start that engine or unset DOCKER_HOST"
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || apt_install docker.io
  # live-restore: containers keep running while dockerd restarts, and the orchestrator's ingress
  # keeps relaying to them (docs/dataplane.md); ORCHESTRATOR_LIVE_RESTORE=0 starts it without.
  # As a flag unless daemon.json sets it (both: an error). Address pools: the engine's defaults
  # hold ~30 bridge networks and every stack has one; these hold 256 of 4,094 addresses (a
  # 1,000-replica stack) and 256 of 254, in the ranges the defaults use (docs/dataplane.md).
  local flags=()
  [[ "${ORCHESTRATOR_LIVE_RESTORE:-1}" == 1 ]] && flags=(--live-restore)
  grep -qs '"live-restore"' /etc/docker/daemon.json && flags=()
  grep -qs '"default-address-pools"' /etc/docker/daemon.json ||
    flags+=(--default-address-pool "base=172.16.0.0/12,size=20" --default-address-pool "base=192.168.0.0/16,size=24")
  say "starting dockerd ${flags[*]:-} (log: $STATE_LOG_DIR/dockerd.log)"
  nohup dockerd "${flags[@]}" >"$STATE_LOG_DIR/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do
    engine_answers && { say "Docker engine is up"; return 0; }
    sleep 1
  done
  die "dockerd did not answer within 60 s: see $STATE_LOG_DIR/dockerd.log"
}

redis_answers() { redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG; }

ensure_redis() {
  command -v redis-cli >/dev/null || apt_install redis-server
  if redis_answers; then return 0; fi
  case "$REDIS_URL" in
    redis://127.0.0.1:*|redis://localhost:*) ;;
    *) die "Redis at $REDIS_URL does not answer; start it or point ORCHESTRATOR_REDIS_URL elsewhere" ;;
  esac
  command -v redis-server >/dev/null || apt_install redis-server
  local port
  port=$(printf '%s' "$REDIS_URL" | sed -E 's#^redis://[^:/]+:([0-9]+).*#\1#')
  say "starting redis-server on 127.0.0.1:$port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --logfile "$STATE_LOG_DIR/redis.log" >/dev/null
  for _ in $(seq 1 20); do
    redis_answers && return 0
    sleep 0.5
  done
  die "redis-server did not answer: see $STATE_LOG_DIR/redis.log"
}

build_test_images() {
  # orchestrator-test/busybox: FROM scratch with Debian's static busybox (builds in < 1 s).
  [ -x /bin/busybox ] && file_is_static /bin/busybox || apt_install busybox-static
  local ctx=tests/images/busybox
  cp -f /bin/busybox "$ctx/busybox"
  local digest
  digest=$(cat "$ctx/Dockerfile" "$ctx/busybox" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "orchestrator.test.digest" }}' \
        orchestrator-test/busybox:latest 2>/dev/null)" != "$digest" ]; then
    say "building image orchestrator-test/busybox"
    docker build -q --label "orchestrator.test.digest=$digest" -t orchestrator-test/busybox:latest "$ctx" \
      >"$STATE_LOG_DIR/build.log" 2>&1 || die "could not build orchestrator-test/busybox: see $STATE_LOG_DIR/build.log"
  fi
}

file_is_static() { ! ldd "$1" >/dev/null 2>&1; }

# --- Images of the demo stack (scripts/build-images) ------------------------------------------

PYTHON_BASE_IMAGE=orchestrator/python-base:bookworm
PYTHON_BASE_PACKAGES=python3,python3-aiohttp,python3-redis,ca-certificates
DEMO_WEB_IMAGE=orchestrator/demo-web:latest
DEMO_REDIS_IMAGE=orchestrator/redis:7
IMAGE_DIGEST_LABEL=orchestrator.build.digest

debian_mirror() {
  # The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
        | grep -E '/debian/?$' | head -n1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | grep -oE '[a-z]+://[^[:space:]]+/debian/?' | head -n1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

image_digest_is() {
  # image_digest_is IMAGE DIGEST: true when IMAGE exists and carries that input digest.
  [ "$(docker image inspect -f "{{ index .Config.Labels \"$IMAGE_DIGEST_LABEL\" }}" "$1" 2>/dev/null)" = "$2" ]
}

build_debootstrap_image() {
  # build_debootstrap_image IMAGE PACKAGES CMD TAKES LOG: Debian bookworm (minbase) with
  # PACKAGES from the mirror apt uses, imported as IMAGE (default command CMD): no registry
  # needed. Skipped when IMAGE already carries the digest of its packages and mirror. TAKES says
  # how long a build takes; LOG names the log files.
  local image=$1 packages=$2 cmd=$3 takes=$4 log=$5 mirror digest root
  mirror=$(debian_mirror)
  digest=$(printf 'bookworm minbase %s %s' "$packages" "$mirror" | sha256sum | cut -c1-16)
  image_digest_is "$image" "$digest" && return 0
  command -v debootstrap >/dev/null || apt_install debootstrap
  root=$(mktemp -d /tmp/orchestrator-base.XXXXXX)
  say "building image $image (debootstrap from $mirror, $takes)"
  if ! debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
        >"$STATE_LOG_DIR/debootstrap$log.log" 2>&1; then
    rm -rf "$root"
    die "debootstrap failed: see $STATE_LOG_DIR/debootstrap$log.log"
  fi
  # Package caches and lists only make the image bigger; builds FROM it run apt-get update.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* 2>/dev/null || true
  tar -C "$root" -c . | docker import \
      -c "LABEL $IMAGE_DIGEST_LABEL=$digest" -c 'ENV LANG=C.UTF-8' -c "CMD $cmd" \
      - "$image" >"$STATE_LOG_DIR/import$log.log" 2>&1
  local status=$?
  rm -rf "$root"
  [ "$status" = 0 ] || die "docker import failed: see $STATE_LOG_DIR/import$log.log"
  BUILT_IMAGES+=("$image")
}

build_python_base() {
  # Debian bookworm with Python, aiohttp and redis from Debian's packages. Takes ~40 s, so it is
  # rebuilt only when its inputs change.
  build_debootstrap_image "$PYTHON_BASE_IMAGE" "$PYTHON_BASE_PACKAGES" '["python3"]' "about 40 s" ""
}

build_from_dockerfile() {
  # build_from_dockerfile IMAGE CONTEXT BASE: docker build with BASE_IMAGE=BASE, skipped when the
  # image already carries the digest of its context and base.
  local image=$1 ctx=$2 base=$3 digest
  digest=$( (cd "$ctx" && find . -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
              | sort -z | xargs -0 sha256sum; docker image inspect -f '{{.Id}}' "$base") \
            | sha256sum | cut -c1-16)
  image_digest_is "$image" "$digest" && return 0
  say "building image $image from $ctx (base $base)"
  docker build -q --build-arg "BASE_IMAGE=$base" --label "$IMAGE_DIGEST_LABEL=$digest" -t "$image" "$ctx" \
      >"$STATE_LOG_DIR/build-$(basename "$ctx").log" 2>&1 \
    || die "could not build $image: see $STATE_LOG_DIR/build-$(basename "$ctx").log"
  BUILT_IMAGES+=("$image")
}

build_app_images() {
  # The getting-started stack's images, built locally (no registry answers on these machines):
  # the Debian Python base, the demo web app on it, and Redis from Debian's redis-server on it.
  BUILT_IMAGES=()
  build_python_base
  build_from_dockerfile "$DEMO_WEB_IMAGE" app "$PYTHON_BASE_IMAGE"
  build_from_dockerfile "$DEMO_REDIS_IMAGE" images/redis "$PYTHON_BASE_IMAGE"
  if [ "${#BUILT_IMAGES[@]}" = 0 ]; then
    say "images up to date: $PYTHON_BASE_IMAGE $DEMO_WEB_IMAGE $DEMO_REDIS_IMAGE"
  else
    say "built: ${BUILT_IMAGES[*]}"
  fi
}

# --- The daemon's own image (Dockerfile) --------------------------------------------------------

DAEMON_IMAGE=orchestrator/daemon:latest
DAEMON_WHEELS=images/daemon/wheels

build_daemon_image() {
  # orchestrator/daemon on the local Python base. PyPI does not answer inside containers here,
  # so the package and its dependencies go in as wheels built on the host (pip wheel, with the
  # host's pip settings); the build itself installs with --no-index. Skipped when the image
  # already carries the digest of its inputs (a few file hashes: fast when nothing changed).
  build_python_base
  local digest
  digest=$( (sha256sum Dockerfile .dockerignore pyproject.toml README.md
             find orchestrator -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
               | sort -z | xargs -0 sha256sum
             docker image inspect -f '{{.Id}}' "$PYTHON_BASE_IMAGE") | sha256sum | cut -c1-16)
  image_digest_is "$DAEMON_IMAGE" "$digest" && return 0
  say "building wheels for $DAEMON_IMAGE into $DAEMON_WHEELS (pip wheel)"
  find "$DAEMON_WHEELS" -name '*.whl' -delete
  # async-timeout: redis needs it on Python < 3.11.3 (Debian bookworm has 3.11.2), a marker the
  # host's newer Python skips.
  .venv/bin/pip wheel -q --wheel-dir "$DAEMON_WHEELS" . pip async-timeout >"$STATE_LOG_DIR/wheels.log" 2>&1 \
    || die "pip wheel failed: see $STATE_LOG_DIR/wheels.log"
  say "building image $DAEMON_IMAGE (base $PYTHON_BASE_IMAGE)"
  docker build -q --build-arg "BASE_IMAGE=$PYTHON_BASE_IMAGE" --label "$IMAGE_DIGEST_LABEL=$digest" \
      -t "$DAEMON_IMAGE" . >"$STATE_LOG_DIR/build-daemon.log" 2>&1 \
    || die "could not build $DAEMON_IMAGE: see $STATE_LOG_DIR/build-daemon.log"
}

# --- The Swarm test nodes (tests/swarm, scripts/swarm) ------------------------------------------

SWARM_NODE_IMAGE=orchestrator/swarm-node:bookworm
# docker.io brings dockerd, containerd, runc and tini (docker-init, for `init: true`).
SWARM_NODE_PACKAGES=docker.io,iptables,ca-certificates

build_swarm_node_image() {
  # Debian bookworm with Debian's Docker engine: each Swarm test node is a container running its
  # own dockerd (tests/swarm/cluster.py gives it its flags; the image has no VOLUME, so removing a
  # node leaves nothing behind). debootstrap of docker.io takes 2-5 minutes here (a 390 MB image), so
  # it is rebuilt only when its inputs change.
  build_debootstrap_image "$SWARM_NODE_IMAGE" "$SWARM_NODE_PACKAGES" '["dockerd"]' "takes 2-5 minutes" "-swarm-node"
}
