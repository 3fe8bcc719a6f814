#!/usr/bin/env bash
# Provision a Docker engine and the sandbox image without pulling any image (no registry needed).
#
#   1. install docker.io and debootstrap from Debian if missing (apt-get update first);
#   2. start dockerd if no engine answers, and wait until `docker info` works;
#   3. build the base image offline: a debootstrapped bookworm minbase rootfs with python3 and
#      python3-numpy, cached as a tarball outside the repo, imported as simulatorcoder-base:bookworm;
#   4. build the repo's Dockerfile on top of it as simulatorcoder-sandbox:latest.
#
# Idempotent: each step is skipped when its result exists (the last build reuses Docker's layer cache).
# Environment: SIMCODER_CACHE (tarball folder, default ~/.cache/simulatorcoder), DEBIAN_MIRROR,
# SIMCODER_DOCKERD_LOG (default /var/log/simcoder-dockerd.log), SIMCODER_DOCKERD_TIMEOUT_S (default 60),
# SIMCODER_REBUILD_BASE=1 (re-import the base image from the tarball).
set -euo pipefail

START_S=$(date +%s)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${SIMCODER_CACHE:-$HOME/.cache/simulatorcoder}"
TARBALL="$CACHE_DIR/rootfs-bookworm-py.tar"
BASE_IMAGE="simulatorcoder-base:bookworm"
SANDBOX_IMAGE="simulatorcoder-sandbox:latest"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${SIMCODER_DOCKERD_LOG:-/var/log/simcoder-dockerd.log}"
DOCKERD_TIMEOUT_S="${SIMCODER_DOCKERD_TIMEOUT_S:-60}"

log() { printf '[provision-docker %3ss] %s\n' "$(( $(date +%s) - START_S ))" "$*"; }
die() { printf '[provision-docker] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi
as_root() {
    if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need root (or sudo) to run: $*"
    fi
    "${SUDO[@]}" "$@"
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    local apt_log
    apt_log="$(mktemp /tmp/simcoder-apt.XXXXXX.log)"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root apt-get update -q >"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
        >"$apt_log" 2>&1 || { tail -n 20 "$apt_log" >&2; die "apt-get install $* failed (log: $apt_log)"; }
    rm -f "$apt_log"
}

engine_up() { docker info >/dev/null 2>&1; }

# 1-2. Engine --------------------------------------------------------------------------------------
if engine_up; then
    log "Docker engine already running: $(docker info --format '{{.ServerVersion}} ({{.Driver}})')"
else
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
        apt_install docker.io
    else
        log "docker.io already installed"
    fi
    log "starting dockerd (log: $DOCKERD_LOG)"
    as_root mkdir -p "$(dirname "$DOCKERD_LOG")"
    as_root sh -c "nohup dockerd >>'$DOCKERD_LOG' 2>&1 </dev/null &"
    waited=0
    until engine_up; do
        if [[ $waited -ge $DOCKERD_TIMEOUT_S ]]; then
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            die "dockerd did not answer 'docker info' within ${DOCKERD_TIMEOUT_S}s (see $DOCKERD_LOG above)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "Docker engine up after ${waited}s: $(docker info --format '{{.ServerVersion}} ({{.Driver}})')"
fi

# 3. Base image --------------------------------------------------------------------------------------
if [[ "${SIMCODER_REBUILD_BASE:-0}" != "1" ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE already exists"
else
    if [[ -s "$TARBALL" ]]; then
        log "reusing cached rootfs $TARBALL"
    else
        command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
        mkdir -p "$CACHE_DIR"
        ROOTFS="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
        trap 'as_root rm -rf "$ROOTFS" "$TARBALL.partial"' EXIT
        log "debootstrap --variant=minbase --include=python3,python3-numpy bookworm ($DEBIAN_MIRROR)"
        as_root debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$ROOTFS" \
            "$DEBIAN_MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 \
            || { tail -n 20 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"; }
        as_root rm -rf "$ROOTFS/var/cache/apt/archives"/*.deb "$ROOTFS/var/lib/apt/lists"/*
        log "saving rootfs to $TARBALL"
        as_root tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.partial" .
        as_root mv "$TARBALL.partial" "$TARBALL"
        as_root rm -rf "$ROOTFS"
        trap - EXIT
    fi
    log "docker import -> $BASE_IMAGE"
    docker import --change 'CMD ["python3"]' "$TARBALL" "$BASE_IMAGE" >/dev/null
fi

# 4. Sandbox image ---------------------------------------------------------------------------------
# The Dockerfile copies nothing, so it is sent on stdin without a build context (the repo is not uploaded).
log "docker build --build-arg BASE=$BASE_IMAGE -t $SANDBOX_IMAGE (layer cache makes reruns instant)"
docker build -q --build-arg "BASE=$BASE_IMAGE" -t "$SANDBOX_IMAGE" - <"$REPO_ROOT/Dockerfile" >/dev/null
docker image prune -f --filter "label=org.simulatorcoder.role=sandbox" >/dev/null  # superseded builds only
docker run --rm --network none "$SANDBOX_IMAGE" \
    python3 -c "import numpy, os; assert os.getuid() != 0; print('numpy', numpy.__version__)" \
    | sed 's/^/[provision-docker] sandbox check: /'
log "done: $SANDBOX_IMAGE ready in $(( $(date +%s) - START_S ))s"
