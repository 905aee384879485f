#!/usr/bin/env bash
# bench/rewrap.sh: the rewrap on a loaded vault, release build, on SQLite and on PostgreSQL (a
# throwaway cluster). For each: a server with keys 1 and 2 (1 current), customer keys off (as in
# a vault from before them), is filled with N credentials through its own Store path (`credvault
# bench --op store`, 64 clients); Get throughput is measured (16 clients); then `credvault key
# enable-customer-keys` and `credvault key rotate` start the heavy pass (every data key moves
# under its customer's key, the customer key to version 2) and Get is measured again while the
# server rewraps; the rewrap's time is read from /metrics, its result from `credvault key status`.
#
# Usage: bench/rewrap.sh        Env: N (100000), GET_SECONDS (8), SETTLE (20), PORT (55434),
#                               BACKENDS ("sqlite postgres"), BIN (a built binary to measure
#                               instead of building this tree's), CONTROL (1: the same runs
#                               without enabling or rotating anything, to see how Get drifts
#                               from one run to the next without a rewrap)
# Prints, per backend: rewrap seconds and data keys/s, Get req/s before, during and after the
# rewrap, and during/before. SETTLE seconds pass after the filling (the audit sealer catches up
# with N new rows, PostgreSQL's autovacuum runs) before anything is measured; the run after
# the rewrap shows what is the rewrap's and what is not.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
GET_SECONDS="${GET_SECONDS:-8}"
PORT="${PORT:-55434}"
SETTLE="${SETTLE:-20}"
CONTROL="${CONTROL:-0}"
BACKENDS="${BACKENDS:-sqlite postgres}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
SERVER_PID=""
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --quiet
    BIN="$PWD/target/release/credvault"
fi

as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust --no-locale -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/pg.log" -w \
    -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
"$PG_BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE rewrap"

# Data keys key version $1 wraps, per `credvault key status`.
wrapped_by() { "$BIN" key status | awk -F'\t' -v v="$1" '$1 == v { print $3 }'; }
# A metric's value; 0 until the server first sets it.
metric() { curl -fs "http://127.0.0.1:$2/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'; }
req_per_s() { sed -n 's/.*req\/s=\([0-9]*\).*/\1/p'; }

run() {
    local label=$1 url=$2 grpc=$3 http=$4
    CREDENTIAL_ENCRYPTION_KEY="1:$("$BIN" keygen),2:$("$BIN" keygen)"
    export CREDENTIAL_ENCRYPTION_KEY CREDVAULT_DATABASE_URL="$url"
    "$BIN" migrate >/dev/null
    # Customer keys off: the data keys are sealed under the master key, as before them.
    case $label in
        sqlite) python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE key_hierarchy SET customer_keys_since = NULL"); c.commit()' "$WORK/rewrap.db" ;;
        postgres) "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -d rewrap -c "UPDATE key_hierarchy SET customer_keys_since = NULL" ;;
    esac
    local customer token
    customer=$("$BIN" customer create --email "bench@$label.example" --company-name Bench)
    token=$("$BIN" token create --name "bench-$label" --scopes '*' --customer '*' 2>/dev/null)
    CREDVAULT_REVERIFY_INTERVAL=off "$BIN" serve --grpc-addr "127.0.0.1:$grpc" --http-addr "127.0.0.1:$http" 2>"$WORK/$label.log" &
    SERVER_PID=$!
    until curl -fs "http://127.0.0.1:$http/readyz" >/dev/null; do sleep 0.2; done
    local endpoint="http://127.0.0.1:$grpc"
    local bench=("$BIN" bench --endpoint "$endpoint" --token "$token" --customer-id "$customer")

    echo "$label: storing $N credentials..." >&2
    while [ "$(wrapped_by 1)" -lt "$N" ]; do
        "${bench[@]}" --op store --clients 64 --seconds 15 --warmup 0 >/dev/null
    done
    local stored; stored=$(wrapped_by 1)
    sleep "$SETTLE"
    local before during after t0 t1
    before=$("${bench[@]}" --op get --clients 16 --seconds "$GET_SECONDS" --warmup 1 --credentials 200 | req_per_s)
    # The Get run stores its 200 targets first (under version 1 too); then the rotation.
    "${bench[@]}" --op get --clients 16 --seconds "$GET_SECONDS" --warmup 1 --credentials 200 \
        > "$WORK/during.out" &
    local get_pid=$!
    sleep 1.5
    t0=$(date +%s.%N)
    if [ "$CONTROL" = 1 ]; then
        wait "$get_pid"
        t1=$(date +%s.%N)
    else
        "$BIN" key enable-customer-keys >/dev/null
        "$BIN" key rotate >/dev/null
        # Polled through /metrics, which costs the server next to nothing (`key status` is a
        # process counting every data key: polling it would take its own share of the two cores).
        until metric credvault_rewrapped_data_keys_total "$http" | awk '{ exit !($1 > 0) }' &&
            metric credvault_rewrap_remaining_data_keys "$http" | awk '{ exit !($1 == 0) }'; do sleep 0.25; done
        t1=$(date +%s.%N)
        local left; left=$(( $(wrapped_by 1) + $(wrapped_by 2) ))
        [ "$left" -eq 0 ] || { echo "$label: $left data keys left under a master-key version" >&2; exit 1; }
        wait "$get_pid"
    fi
    during=$(req_per_s < "$WORK/during.out")
    after=$("${bench[@]}" --op get --clients 16 --seconds "$GET_SECONDS" --warmup 1 --credentials 200 | req_per_s)
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    python3 - "$label" "$stored" "$t0" "$t1" "$before" "$during" "$after" <<'PY'
import sys
label, n = sys.argv[1], int(sys.argv[2])
t0, t1, before, during, after = map(float, sys.argv[3:8])
print(f"{label:>8}: rewrap of {n} data keys in {t1 - t0:.1f} s = {n / (t1 - t0):.0f} data keys/s; "
      f"Get req/s before {before:.0f}, during {during:.0f}, after {after:.0f} (during/before {during / before:.2f}x)")
PY
}
for backend in $BACKENDS; do
    case $backend in
        sqlite) run sqlite "sqlite://$WORK/rewrap.db" 50161 8161 ;;
        postgres) run postgres "postgres://postgres@127.0.0.1:$PORT/rewrap" 50162 8162 ;;
        *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
done
