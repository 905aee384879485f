#!/usr/bin/env bash
# bench/scale.sh: credvault with a million credentials and ten million audit rows against a
# thousand, on both backends, in one run (see bench/scale.py for what is measured). Builds the
# release binary unless CREDVAULT_BIN names one, seeds the databases (kept in SCALE_DIR) and
# prints one table per backend.
#
# Usage: bench/scale.sh [--reuse]     (--reuse: keep databases seeded by an earlier run)
# Env:   SCALE (full | small: 100k credentials / 1M audit rows), BACKENDS ("sqlite postgres"),
#        DURATION (10), CALLS (200), SCALE_DIR (/var/tmp/credvault-scale), CREDVAULT_BIN
# Seeding the full databases takes minutes per backend and several GB of disk: run it in the
# background with `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
ls /usr/lib/postgresql/*/bin/pg_dump >/dev/null 2>&1 || {
    sudo_if apt-get update -qq && sudo_if apt-get install -y -qq postgresql >/dev/null; }

[ -n "${CREDVAULT_BIN:-}" ] || cargo build --release --locked --quiet
exec python3 bench/scale.py "$@"
