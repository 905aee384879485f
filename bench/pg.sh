#!/usr/bin/env bash
# bench/pg.sh: credvault on PostgreSQL under load, and the PostgreSQL floor for its Get.
#
# Starts a throwaway PostgreSQL cluster (stock durability: fsync=on, synchronous_commit=on) on a
# free port, runs credvault (release build) against it, drives Get and Store with
# `credvault bench` at 16 and 64 clients, then runs pgbench with the exact SQL of credvault's Get
# (the read of the sealed row, then the one-statement usage update + audit insert), -M prepared,
# same client counts. Prints one table with the ratio credvault / pgbench. Cleans up after itself.
#
# Get spreads over the 100 credentials `credvault bench` stores at setup; pgbench picks among
# the same rows.
#
# Usage: bench/pg.sh            Env: SECONDS_PER_RUN (10), WARMUP (2), CLIENTS ("16 64")
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
WARMUP="${WARMUP:-2}"
CLIENTS="${CLIENTS:-16 64}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
GRPC_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
WORK="$(mktemp -d /tmp/credvault-pgbench-XXXXXX)"
log() { echo "[bench/pg $(date +%H:%M:%S)] $*" >&2; }

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --quiet
BIN=target/release/credvault

[ "$(id -u)" = 0 ] && chown postgres "$WORK"
as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK'
max_connections = 300
fsync = on
synchronous_commit = on
full_page_writes = on
CONF
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
log "PostgreSQL on 127.0.0.1:$PORT"

URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export CREDENTIAL_ENCRYPTION_KEY="$($BIN keygen)"
CUSTOMER=$($BIN customer create --email bench@example.com --company-name Bench --database-url "$URL")
export CREDVAULT_TOKEN
CREDVAULT_TOKEN=$($BIN token create --name bench --scopes credentials:write,secrets:read --customer "$CUSTOMER" \
    --database-url "$URL" 2>/dev/null)
RUST_LOG=warn $BIN serve --grpc-addr "127.0.0.1:$GRPC_PORT" --database-url "$URL" 2>"$WORK/credvault.log" &
SERVER_PID=$!
sleep 1

declare -A RESULT
for op in get store; do
    for c in $CLIENTS; do
        line=$($BIN bench --endpoint "http://127.0.0.1:$GRPC_PORT" --op "$op" --clients "$c" \
            --seconds "$SECONDS_PER_RUN" --warmup "$WARMUP" --customer-id "$CUSTOMER")
        log "$line"
        RESULT["$op-$c"]="$line"
    done
done
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")

# The credentials the Get runs used (bench-get-<run>-<i>), numbered so pgbench can pick one at
# random inside the statement (a primary-key lookup in the same round trip).
as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -q -c \
    "CREATE TABLE bench_ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM cloud_credentials \
     WHERE credential_name LIKE 'bench-get-%' AND is_active; ALTER TABLE bench_ids ADD PRIMARY KEY (n)"
NCRED=$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -At -c "SELECT count(*) FROM bench_ids")
cat > "$WORK/get.sql" <<'SQL'
\set i random(1, :ncred)
SELECT id, customer_id, provider, credential_name, credential_type, permissions, is_active, is_verified, is_default, last_verified_at, last_used_at, usage_count, created_at, updated_at, encrypted_credentials, (SELECT status FROM customers WHERE customers.id = cloud_credentials.customer_id) AS customer_status FROM cloud_credentials WHERE id = (SELECT id FROM bench_ids WHERE n = :i) AND is_active;
WITH changed AS (UPDATE cloud_credentials SET usage_count = usage_count + 1, last_used_at = now() WHERE id = (SELECT id FROM bench_ids WHERE n = :i) AND is_active RETURNING id, customer_id, provider, credential_name, credential_type, permissions, is_active, is_verified, is_default, last_verified_at, last_used_at, usage_count, created_at, updated_at), audit AS (INSERT INTO credential_audit_log (id, credential_id, customer_id, action, action_details, ip_address, actor, created_at, row_mac) SELECT gen_random_uuid(), id, customer_id, 'used', 'secret of vultr credential "bench" handed out', '127.0.0.1'::inet, 'bench', now(), '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea FROM changed) SELECT * FROM changed;
SQL
chmod 644 "$WORK/get.sql"
declare -A PGB
for c in $CLIENTS; do
    out=$(as_pg "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -n -M prepared -j 2 -c "$c" \
        -T "$SECONDS_PER_RUN" -D ncred="$NCRED" -f "$WORK/get.sql" postgres 2>&1)
    tps=$(echo "$out" | awk '/^tps = / {printf "%.0f", $3}')
    lat=$(echo "$out" | awk '/latency average/ {print $4}')
    log "pgbench get c=$c: tps=$tps latency_avg=${lat}ms"
    PGB["$c"]="$tps"
done

field() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }
echo
echo "| operation | clients | credvault req/s | p50 | p99 | pgbench same SQL tps | credvault / pgbench |"
echo "|---|---|---|---|---|---|---|"
for op in get store; do
    for c in $CLIENTS; do
        r="${RESULT[$op-$c]}"
        rps=$(field "$r" "req/s")
        if [ "$op" = get ]; then
            ratio=$(python3 -c "print(f'{$rps / ${PGB[$c]}:.2f}')")
            echo "| Get | $c | $rps | $(field "$r" p50) | $(field "$r" p99) | ${PGB[$c]} | $ratio |"
        else
            echo "| Store | $c | $rps | $(field "$r" p50) | $(field "$r" p99) | | |"
        fi
    done
done
echo
echo "credvault peak RSS: $((RSS / 1024)) MB"
