#!/usr/bin/env bash
# bench/ab.sh: Get at 16 clients on a freshly seeded SQLite vault, for comparing two builds.
# Seeds CREDS credentials (10 audit rows each, over 10 customers) with `bench-seed`, serves them,
# and runs two 10 s loads of `credvault bench --op get --clients 16` over every seeded id. Run it
# for each build in turn, alternating, and compare the rounds: timings on these machines move.
#
# Usage: bench/ab.sh BIN LABEL [CREDS]   (CREDS: 1000, all served from the vault's cache;
#        100000: most Gets miss it)
# Prints: "LABEL op=Get clients=16 ok=... req/s=... p50=... p99=... max=..." twice.
set -euo pipefail
BIN=$(realpath "$1")
LABEL=$2
CREDS=${3:-1000}
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
cd "$WORK"
CREDENTIAL_ENCRYPTION_KEY=$("$BIN" keygen)
export CREDENTIAL_ENCRYPTION_KEY RUST_LOG=warn CREDVAULT_REVERIFY_INTERVAL=off
URL="sqlite://$WORK/ab.db"
"$BIN" bench-seed --database-url "$URL" --customers 10 --credentials "$CREDS" --big-customer 100 \
    --audit-rows $((CREDS * 10)) --ids-file "$WORK/ids" >/dev/null
TOKEN=$("$BIN" token create --name ab --scopes credentials:read,secrets:read --customer '*' \
    --database-url "$URL" 2>/dev/null | tail -1)
GRPC=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HTTP=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --grpc-addr "127.0.0.1:$GRPC" --http-addr "127.0.0.1:$HTTP" --database-url "$URL" 2>"$WORK/log" &
PID=$!
for _ in $(seq 600); do
    curl -fs "http://127.0.0.1:$HTTP/readyz" >/dev/null && break
    kill -0 "$PID" 2>/dev/null || { echo "the server exited:" >&2; cat "$WORK/log" >&2; exit 1; }
    sleep 0.1
done
for _ in 1 2; do
    echo "$LABEL $("$BIN" bench --endpoint "http://127.0.0.1:$GRPC" --op get --clients 16 --seconds 10 \
        --ids-file "$WORK/ids" --token "$TOKEN" 2>/dev/null)"
done
