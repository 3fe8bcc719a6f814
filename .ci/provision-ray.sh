#!/usr/bin/env bash
# Provision the Ray executor for the integration tests: the repo's venv (make setup) with the `ray` extra.
# The tests start their own two-node cluster on 127.0.0.1 (`ray start`) and stop it by PID; nothing runs
# after this script. Idempotent: pip skips what is installed. Environment: VENV (default .venv).
set -euo pipefail

START_S=$(date +%s)
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-.venv}"
log() { printf '[provision-ray %3ss] %s\n' "$(( $(date +%s) - START_S ))" "$*"; }

cd "$REPO_ROOT"
make --no-print-directory setup VENV="$VENV"
log "installing the ray extra into $VENV"
"$VENV/bin/python" -m pip install --quiet -c constraints.txt -e '.[ray]'
export RAY_USAGE_STATS_ENABLED=0
log "ready: $("$VENV/bin/ray" --version)"
