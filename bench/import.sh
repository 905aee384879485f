#!/usr/bin/env bash
# bench/import.sh: how fast `credvault import pgcrypto` moves the seed's system over, release
# build, into SQLite and into PostgreSQL. The source is a throwaway PostgreSQL cluster in the
# seed's schema, filled by ONE INSERT ... SELECT over generate_series that calls pgcrypto's
# pgp_sym_encrypt as the seed's service does (default options: AES-128, iterated S2K).
#
# Usage: bench/import.sh        Env: N (100000 credentials), PORT (55433)
# Prints the seconds and credentials per second of each import.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-100000}"
PORT="${PORT:-55433}"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
WORK="$(mktemp -d)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
cleanup() { as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

cargo build --release --locked --quiet
BIN="$PWD/target/release/credvault"

as_pg "$PG_BIN/initdb" -D "$WORK/data" -U postgres -A trust --no-locale -E UTF8 >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w \
    -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1" start >/dev/null
PSQL=("$PG_BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -c "CREATE DATABASE seed" -c "CREATE DATABASE target"

echo "filling the source with $N credentials (pgp_sym_encrypt in PostgreSQL)..." >&2
started=$(date +%s)
"${PSQL[@]}" -d seed <<SQL
CREATE EXTENSION pgcrypto;
CREATE TABLE customers (id uuid PRIMARY KEY, email varchar(255) UNIQUE, company_name varchar(255),
    status varchar(50), subscription_tier varchar(50), created_at timestamp);
CREATE TABLE cloud_credentials (id uuid PRIMARY KEY, customer_id uuid REFERENCES customers (id),
    provider varchar(50), credential_name varchar(255), encrypted_credentials bytea,
    credential_type varchar(50), permissions varchar(50), is_active boolean, is_verified boolean,
    last_verified_at timestamp, last_used_at timestamp, usage_count integer,
    created_at timestamp, updated_at timestamp);
INSERT INTO customers
    SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(c), 12, '0'))::uuid, 'c' || c || '@seed.example',
           'Customer ' || c, 'active', 'starter', now() - interval '1 year'
    FROM generate_series(1, greatest($N / 10, 1)) AS c;
INSERT INTO cloud_credentials
    SELECT gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % greatest($N / 10, 1)), 12, '0'))::uuid,
           'vultr', 'Key ' || i, pgp_sym_encrypt('{"api_key": "VULTR-' || md5(i::text) || '"}', 'bench-old-key'),
           'api_key', 'read_only', true, false, NULL, now(), i % 100, now() - interval '1 day', now()
    FROM generate_series(1, $N) AS i;
SQL
echo "source filled in $(( $(date +%s) - started )) s" >&2

run() {
    local label=$1 url=$2
    local key; key=$("$BIN" keygen)
    local t0 t1
    t0=$(date +%s.%N)
    CREDENTIAL_ENCRYPTION_KEY="$key" CREDVAULT_DATABASE_URL="$url" \
        CREDVAULT_IMPORT_SOURCE_URL="postgres://postgres@127.0.0.1:$PORT/seed" \
        SOURCE_CREDENTIAL_ENCRYPTION_KEY=bench-old-key "$BIN" import pgcrypto > "$WORK/$label.out"
    t1=$(date +%s.%N)
    python3 - "$label" "$t0" "$t1" "$N" <<'PY'
import sys
label, t0, t1, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(f"{label:>10}: {n} credentials in {t1 - t0:.1f} s = {n / (t1 - t0):.0f} credentials/s")
PY
    grep -E "^credentials" "$WORK/$label.out" >&2
}
run sqlite "sqlite://$WORK/target.db"
run postgres "postgres://postgres@127.0.0.1:$PORT/target"
