#!/usr/bin/env bash
# Provision PostgreSQL for the integration tests: Debian's server binaries and the `postgres` extra.
#
#   1. install the `postgresql` package if no /usr/lib/postgresql/<version>/bin/initdb exists, without
#      creating or starting the package's default cluster (the tests initialise their own, in a temporary
#      folder, as the `postgres` user, on a free loopback port, and stop it by PID);
#   2. install the repo's venv (make setup) with the `postgres` extra (langgraph-checkpoint-postgres, psycopg).
#
# Idempotent. Environment: VENV (default .venv).
set -euo pipefail

START_S=$(date +%s)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-.venv}"
log() { printf '[provision-postgres %3ss] %s\n' "$(( $(date +%s) - START_S ))" "$*"; }
die() { printf '[provision-postgres] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi
as_root() {
    if [[ $(id -u) -ne 0 && ${#SUDO[@]} -eq 0 ]]; then
        die "need root (or sudo) to run: $*"
    fi
    "${SUDO[@]}" "$@"
}

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    log "PostgreSQL binaries present: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
else
    log "installing Debian's postgresql (no default cluster)"
    as_root mkdir -p /etc/postgresql-common
    if [[ ! -f /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || die "postgresql installed but no initdb found"
fi
if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "running as root but the package created no 'postgres' user to run the test server as"
fi

cd "$REPO_ROOT"
make --no-print-directory setup VENV="$VENV"
log "installing the postgres extra into $VENV"
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e '.[postgres]'
log "ready"
