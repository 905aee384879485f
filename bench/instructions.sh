#!/usr/bin/env bash
# bench/instructions.sh: instructions the server executes per Get and per Store (1 client,
# SQLite), counted by callgrind in the server process only and zeroed after a warm-up. Unlike
# timings, the counts do not move with a noisy machine: use it to compare two builds.
#
# Usage: bench/instructions.sh [BIN [LABEL]]   (BIN: target/release/credvault; needs valgrind)
# Prints: "LABEL get: N calls, I instructions, I/N per call", and the same for store.
# Env: PROFILE_DIR (keeps each op's callgrind dump there as LABEL-OP.callgrind, for
# `callgrind_annotate`: where the instructions go).
set -euo pipefail
BIN=$(realpath "${1:-$(dirname "$0")/../target/release/credvault}")
LABEL=${2:-$(basename "$BIN")}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
cd "$WORK"
CREDENTIAL_ENCRYPTION_KEY=$("$BIN" keygen)
export CREDENTIAL_ENCRYPTION_KEY CREDVAULT_DATABASE_URL="sqlite://$WORK/instructions.db" RUST_LOG=warn
"$BIN" migrate >/dev/null
customer=$("$BIN" customer create --email instructions@example.com --company-name Instructions)
token=$("$BIN" token create --name instructions --scopes '*' --customer '*' 2>/dev/null)
GRPC=${GRPC_PORT:-50199}
HTTP=${HTTP_PORT:-8199}
CREDVAULT_REVERIFY_INTERVAL=off valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" serve --grpc-addr "127.0.0.1:$GRPC" --http-addr "127.0.0.1:$HTTP" 2>"$WORK/valgrind.log" &
PID=$!
until curl -fs "http://127.0.0.1:$HTTP/readyz" >/dev/null; do sleep 0.5; done
bench=("$BIN" bench --endpoint "http://127.0.0.1:$GRPC" --token "$token" --customer-id "$customer"
    --clients 1 --credentials 100)
calls() { "${bench[@]}" --op "$1" --seconds "$2" --warmup 0 2>/dev/null | sed -n 's/.* ok=\([0-9]*\).*/\1/p'; }
instructions() {
    callgrind_control -d "$PID" >/dev/null
    awk '/^summary:|^totals:/ { print $2; exit }' "$(ls -t "$WORK"/callgrind.out* | head -1)"
}
calls get 5 >/dev/null
for op in get store; do
    callgrind_control -z "$PID" >/dev/null
    n=$(calls "$op" 20)
    i=$(instructions)
    echo "$LABEL $op: $n calls, $i instructions, $((i / n)) per call"
    if [ -n "${PROFILE_DIR:-}" ]; then
        mkdir -p "$PROFILE_DIR"
        cp "$(ls -t "$WORK"/callgrind.out* | head -1)" "$PROFILE_DIR/$LABEL-$op.callgrind"
    fi
done
