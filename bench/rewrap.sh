#!/usr/bin/env bash
# bench/rewrap.sh: the rewrap on a loaded vault, release build, on SQLite and on PostgreSQL (a
# throwaway cluster). For each: a server with keys 1 and 2 (1 current), customer keys off (as in
# a vault from before them), is filled with N credentials through its own Store path (`credvault
# bench --op store`, 64 clients); then one Get run (16 clients) goes on throughout, its
# throughput printed every WINDOW s: AROUND s of it before, then `credvault key
# enable-customer-keys` and `credvault key rotate` start the heavy pass (every data key moves
# under its customer's key, the customer key to version 2), and AROUND s after the pass ends.
# The pass's end is read from /metrics, its result from `credvault key status`.
#
# Usage: bench/rewrap.sh        Env: N (100000), WINDOW (2), AROUND (30), SETTLE (20),
#                               PORT (55434), BACKENDS ("sqlite postgres"), BIN (a built binary
#                               to measure instead of building this tree's), CONTROL (1: the same
#                               run with nothing enabled or rotated, for CONTROL_SECONDS (120)
#                               in place of the pass: how Get drifts without a rewrap)
# Prints, per backend: the pass's seconds and data keys/s, the median Get req/s of the windows
# wholly before, during and after the pass (and the lowest during it), and the ratios. SETTLE
# seconds pass after the filling (the audit sealer catches up with N new rows, PostgreSQL's
# autovacuum runs) before anything is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
WINDOW="${WINDOW:-2}"
AROUND="${AROUND:-30}"
CONTROL_SECONDS="${CONTROL_SECONDS:-120}"
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
    # One Get run (16 clients, 200 credentials) from before the rotation to after the pass,
    # its throughput printed every WINDOW s: before, during and after are the windows wholly
    # before the rotation, within the pass and after it, each summed up by its median.
    local t0 t1
    "${bench[@]}" --op get --clients 16 --seconds 36000 --warmup 1 --credentials 200 --every "$WINDOW" \
        > "$WORK/windows.out" 2>/dev/null &
    local get_pid=$!
    windows() { grep -c '^window ' "$WORK/windows.out" || true; }
    until [ "$(windows)" -ge $((AROUND / WINDOW)) ]; do sleep 0.2; done
    t0=$(date +%s.%N)
    if [ "$CONTROL" = 1 ]; then
        sleep "$CONTROL_SECONDS"
    else
        "$BIN" key enable-customer-keys >/dev/null
        "$BIN" key rotate >/dev/null
        # Polled through /metrics, which costs the server next to nothing (`key status` is a
        # process counting every data key: polling it would take its own share of the two cores).
        until metric credvault_rewrapped_data_keys_total "$http" | awk '{ exit !($1 > 0) }' &&
            metric credvault_rewrap_remaining_data_keys "$http" | awk '{ exit !($1 == 0) }'; do sleep 0.25; done
    fi
    t1=$(date +%s.%N)
    local seen; seen=$(windows)
    until [ "$(windows)" -ge $((seen + AROUND / WINDOW + 1)) ]; do sleep 0.2; done
    kill "$get_pid"; wait "$get_pid" 2>/dev/null || true
    if [ "$CONTROL" != 1 ]; then
        local left; left=$(( $(wrapped_by 1) + $(wrapped_by 2) ))
        [ "$left" -eq 0 ] || { echo "$label: $left data keys left under a master-key version" >&2; exit 1; }
    fi
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    python3 - "$label" "$stored" "$t0" "$t1" "$WINDOW" "$CONTROL" "$WORK/windows.out" <<'PY'
import statistics, sys
label, n = sys.argv[1], int(sys.argv[2])
t0, t1, window = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
control = sys.argv[6] == "1"
ends = []
for line in open(sys.argv[7]):
    if line.startswith("window "):
        fields = dict(f.split("=") for f in line.split()[1:])
        ends.append((float(fields["end"]), float(fields["req/s"])))
before = [r for end, r in ends if end <= t0]
during = [r for end, r in ends if end - window >= t0 and end <= t1]
after = [r for end, r in ends if end - window >= t1]
if not during:
    sys.exit(f"{label}: the pass ({t1 - t0:.1f} s) was shorter than one {window:.0f} s window")
b, d, a = (statistics.median(x) for x in (before, during, after))
what = "control (no rewrap)" if control else f"rewrap of {n} data keys"
rate = "" if control else f" = {n / (t1 - t0):.0f} data keys/s"
print(f"{label:>8}: {what} in {t1 - t0:.1f} s{rate}; Get req/s (median of {window:.0f} s windows) "
      f"before {b:.0f} ({len(before)}), during {d:.0f} ({len(during)}, lowest {min(during):.0f}), "
      f"after {a:.0f} ({len(after)}); during/before {d / b:.2f}x, during/after {d / a:.2f}x")
PY
}
for backend in $BACKENDS; do
    case $backend in
        sqlite) run sqlite "sqlite://$WORK/rewrap.db" 50161 8161 ;;
        postgres) run postgres "postgres://postgres@127.0.0.1:$PORT/rewrap" 50162 8162 ;;
        *) echo "unknown backend $backend" >&2; exit 2 ;;
    esac
done
