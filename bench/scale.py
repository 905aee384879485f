#!/usr/bin/env python3
"""credvault at scale on this machine, in one run (run it through bench/scale.sh).

For each backend (SQLite, PostgreSQL in a cluster of its own) builds two databases with
`credvault bench-seed` (every secret sealed, every audit row MACed and chained, through the
store's bulk path) and keeps them in SCALE_DIR for `--reuse`:
  base:  1,000 credentials over 10 customers (the first with 100), 10,000 audit rows;
  large: 1,000,000 credentials over 10,000 customers (the first with 10,000), 10,000,000 audit
         rows (SCALE=small: 100,000 over 1,000, the first with 10,000, and 1,000,000 rows).
Then on each, with `credvault serve` running on it: start-up to ready, Get at 16 clients
(`credvault bench --ids-file`, credentials spread over the whole database), peak RSS after 64
clients, the first page of List, Summary, and one credential's audit events for the big customer
(REST, p50/p99 of sequential calls), `audit verify` (rows/s, and the Get throughput of the worst
second while it runs beside a 16-client load), `backup` (pg_dump on PostgreSQL), and bytes on
disk per credential and per audit row. Prints one table, base against large side by side.

Env: SCALE (full | small), BACKENDS ("sqlite postgres"), DURATION (10), CALLS (200),
     SCALE_DIR (/var/tmp/credvault-scale), CREDVAULT_BIN.
"""

import http.client
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import AS_ROOT, PG_BIN, as_pg, free_port, log, peak_rss_mb, wait_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CREDVAULT = Path(os.environ.get("CREDVAULT_BIN", ROOT / "target" / "release" / "credvault"))
SCALE = os.environ.get("SCALE", "full")
BACKENDS = os.environ.get("BACKENDS", "sqlite postgres").split()
DURATION = int(os.environ.get("DURATION", "10"))
CALLS = int(os.environ.get("CALLS", "200"))
DIR = Path(os.environ.get("SCALE_DIR", "/var/tmp/credvault-scale"))
REUSE = "--reuse" in sys.argv[1:]

SIZES = {
    "base": dict(credentials=1_000, customers=10, big_customer=100, audit_rows=10_000),
    "large": dict(credentials=1_000_000, customers=10_000, big_customer=10_000, audit_rows=10_000_000)
    if SCALE == "full" else dict(credentials=100_000, customers=1_000, big_customer=10_000, audit_rows=1_000_000),
}


def run(*args, env=None, check=True):
    out = subprocess.run([str(CREDVAULT), *args], env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"credvault {args[0]} failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    return out


class Cluster:
    """A PostgreSQL cluster kept in SCALE_DIR/pg between runs."""

    def __init__(self):
        self.dir = DIR / "pg"
        self.port = free_port()
        if not (self.dir / "data" / "PG_VERSION").exists():
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
            if AS_ROOT:
                shutil.chown(self.dir, "postgres")
            as_pg([str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--no-locale"], stdout=subprocess.DEVNULL)
            with open(self.dir / "data" / "postgresql.conf", "a") as conf:
                conf.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                           "max_connections = 300\nshared_buffers = 256MB\nmax_wal_size = 4GB\n")
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
               "-o", f"-p {self.port}", "start"], stdout=subprocess.DEVNULL)
        self.pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        log(f"PostgreSQL on 127.0.0.1:{self.port}")

    def url(self, db):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres"):
        out = as_pg([str(PG_BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                     "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql], capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Database:
    """One seeded database, its key and the ids `bench-seed` wrote."""

    def __init__(self, backend, size, cluster):
        self.backend, self.size, self.cluster = backend, size, cluster
        self.name = f"{backend}-{size}-{SCALE if size == 'large' else 'base'}"
        self.ids = DIR / f"{self.name}.ids"
        self.seeded = DIR / f"{self.name}.seeded"
        key_file = DIR / "key"
        if not key_file.exists():
            key_file.write_text(run("keygen").stdout.strip() + "\n")
            key_file.chmod(0o600)
        self.env = dict(os.environ, RUST_LOG="warn", CREDVAULT_REVERIFY_INTERVAL="off",
                        CREDENTIAL_ENCRYPTION_KEY=key_file.read_text().strip())
        self.env.pop("CREDVAULT_KEY_FILE", None)
        db = self.name.replace("-", "_")
        self.url = cluster.url(db) if backend == "postgres" else f"sqlite://{DIR / (self.name + '.db')}"
        self.seconds_to_seed = None
        if REUSE and self.seeded.exists():
            log(f"{self.name}: reusing")
        else:
            self.seed(db)
        self.big_customer = json.loads(self.seeded.read_text())["big_customer"]

    def seed(self, db):
        if self.backend == "postgres":
            self.cluster.psql(f"DROP DATABASE IF EXISTS {db}")
            self.cluster.psql(f"CREATE DATABASE {db}")
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{DIR / self.name}.db{suffix}").unlink(missing_ok=True)
        self.seeded.unlink(missing_ok=True)
        shape = SIZES[self.size]
        log(f"{self.name}: seeding {shape}")
        started = time.time()
        out = run("bench-seed", "--database-url", self.url, "--ids-file", str(self.ids),
                  *(f"--{k.replace('_', '-')}={v}" for k, v in shape.items()), env=self.env)
        self.seconds_to_seed = time.time() - started
        if self.backend == "postgres":
            # What autovacuum does to a database that grew over months, done now.
            self.cluster.psql("VACUUM ANALYZE", db)
        fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
        self.seeded.write_text(json.dumps({"big_customer": fields["big_customer"],
                                           "seconds": self.seconds_to_seed}))
        log(f"{self.name}: seeded in {self.seconds_to_seed:.0f} s")


SERVERS = []


class Server:
    """`credvault serve` on a database, with a token that reads every customer."""

    def __init__(self, db, work):
        self.db = db
        SERVERS.append(self)
        token = run("token", "create", "--name", f"scale-{time.time_ns()}", "--scopes",
                    "credentials:read,secrets:read,audit:read", "--customer", "*",
                    "--database-url", db.url, env=db.env).stdout.strip()
        self.env = dict(db.env, CREDVAULT_TOKEN=token)
        self.token = token
        self.grpc, self.http = free_port(), free_port()
        started = time.time()
        self.proc = subprocess.Popen(
            [str(CREDVAULT), "serve", "--grpc-addr", f"127.0.0.1:{self.grpc}", "--http-addr",
             f"127.0.0.1:{self.http}", "--database-url", db.url],
            env=self.env, stderr=open(work / f"{db.name}.log", "w"), cwd=work)
        self.startup = self.wait_ready(started)

    def wait_ready(self, started, timeout=120):
        while time.time() - started < timeout:
            if self.proc.poll() is not None:
                sys.exit(f"{self.db.name}: the server exited with {self.proc.returncode}")
            try:
                status, _ = self.get("/readyz")
                if status == 200:
                    return time.time() - started
            except OSError:
                pass
            time.sleep(0.01)
        sys.exit(f"{self.db.name}: not ready within {timeout} s")

    def get(self, path, customer=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}"}
        if customer:
            headers["X-Customer-ID"] = customer
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        conn.close()
        return response.status, body

    def latencies(self, path, customer):
        """p50 and p99 (ms) of CALLS sequential calls, after a few unmeasured ones."""
        times = []
        for i in range(CALLS + 10):
            t0 = time.perf_counter()
            status, body = self.get(path, customer)
            elapsed = (time.perf_counter() - t0) * 1e3
            if status != 200:
                sys.exit(f"{self.db.name}: GET {path} answered {status}: {body[:300]!r}")
            if i >= 10:
                times.append(elapsed)
        times.sort()
        return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]

    def bench(self, clients, seconds, every=None):
        command = [str(CREDVAULT), "bench", "--endpoint", f"http://127.0.0.1:{self.grpc}", "--op", "get",
                   "--clients", str(clients), "--seconds", str(seconds), "--ids-file", str(self.db.ids)]
        if every:
            command += ["--every", str(every)]
        return subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        """Stops the server as an operator does (SIGTERM); how long it took, in seconds."""
        t0 = time.time()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            sys.exit(f"{self.db.name}: the server did not stop within 600 s of SIGTERM")
        return time.time() - t0


def report_fields(out):
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv and not kv.startswith("end="))


def warm(db):
    """Reads the database's files through the page cache first: its measurements are then those
    of a server whose data the machine holds in memory, as a long-running one's would be, not of
    whatever the previous database's measurements left there (the two large databases take more
    than the page cache holds: a run without this measured SQLite's Gets from the disk, 679
    req/s against 5,652 warm)."""
    started = time.time()
    if db.backend == "sqlite":
        size = 0
        for path in sorted(DIR.glob(f"{db.name}.db*")):
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    size += len(chunk)
    else:
        oid = db.cluster.psql(f"SELECT oid FROM pg_database WHERE datname = '{db.url.rsplit('/', 1)[1]}'")
        files = db.cluster.dir / "data" / "base" / oid
        size = int(as_pg(["du", "-sb", str(files)], capture_output=True, text=True).stdout.split()[0])
        as_pg(["find", str(files), "-type", "f", "-exec", "cat", "{}", "+"], stdout=subprocess.DEVNULL)
    log(f"{db.name}: read {size / 1e9:.1f} GB into the page cache in {time.time() - started:.0f} s")


def measure(db, work):
    m = {"seed s": db.seconds_to_seed}
    warm(db)
    server = Server(db, work)
    m["start-up to ready ms"] = server.startup * 1e3
    out, err = server.bench(16, DURATION).communicate()
    f = report_fields(out.strip().splitlines()[-1] if out.strip() else err)
    m["Get@16 req/s"], m["Get@16 p99 ms"] = float(f["req/s"]), float(f["p99"].removesuffix("ms"))
    server.bench(64, DURATION).communicate()
    m["peak RSS MB (after 64 clients)"] = peak_rss_mb(server.proc.pid)
    big = db.big_customer
    m["List first page p50 ms"], m["List first page p99 ms"] = server.latencies("/api/v1/credentials", big)
    m["Summary p50 ms"], m["Summary p99 ms"] = server.latencies("/api/v1/credentials/status/summary", big)
    one = db.ids.read_text().split()[0]
    m["one credential's audit p50 ms"], m["one credential's audit p99 ms"] = server.latencies(
        f"/api/v1/credentials/{one}/audit", big)
    # audit verify beside a 16-client Get load: the load's worst second shows whether it stalls.
    # The load is meant to outlast the verify (at 100,000 rows/s, with time to spare); its
    # seconds that ended while the verify ran are the ones that count.
    rows = SIZES[db.size]["audit_rows"]
    load = server.bench(16, max(DURATION, 10 + rows // 100_000), every=1)
    time.sleep(4)
    t0 = time.time()
    verified = run("audit", "verify", "--database-url", db.url, env=db.env, check=False)
    t1 = time.time()
    out, _ = load.communicate()
    if verified.returncode != 0:
        sys.exit(f"{db.name}: audit verify failed: {verified.stderr.strip()[-500:]}")
    # The log has grown by the Gets measured so far: count what the verify read.
    counts = re.search(r"intact: (\d+) sealed rows, (\d+) not yet sealed", verified.stdout)
    rows = int(counts[1]) + int(counts[2])
    m["audit rows verified"] = rows
    m["audit verify s"] = t1 - t0
    m["audit verify rows/s"] = rows / (t1 - t0)
    windows = [(float(line.split("end=")[1].split()[0]), float(line.split("req/s=")[1]))
               for line in out.splitlines() if line.startswith("window ")]
    during = [rps for end, rps in windows if t0 + 1 <= end <= t1]
    m["Get@16 worst second during verify req/s"] = min(during) if during else float("nan")
    m["stop (SIGTERM to exit) s"] = server.stop()
    backup = work / f"{db.name}.backup"
    t0 = time.time()
    if db.backend == "sqlite":
        run("backup", "--to", str(backup), "--database-url", db.url, env=db.env)
    else:
        subprocess.run([str(PG_BIN / "pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", str(db.cluster.port), "-U",
                        "postgres", "-f", str(backup), db.url.rsplit("/", 1)[1]], check=True, capture_output=True)
    m["backup s"] = time.time() - t0
    backup.unlink(missing_ok=True)
    m.update(bytes_per_row(db))
    return m


def bytes_per_row(db):
    credential_tables = ["cloud_credentials", "credential_versions"]
    audit_tables = ["credential_audit_log", "audit_chain"]
    if db.backend == "postgres":
        name = db.url.rsplit("/", 1)[1]
        size = lambda tables: sum(int(db.cluster.psql(f"SELECT pg_total_relation_size('{t}')", name))
                                  for t in tables)
        count = lambda table: int(db.cluster.psql(f"SELECT count(*) FROM {table}", name))
    else:
        path = db.url.removeprefix("sqlite://")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        pages = dict(conn.execute(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
            "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"))
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("cloud_credentials", "credential_audit_log")}
        conn.close()
        # The log's index by credential, in a file of its own beside the database.
        index = Path(f"{path}-by-credential")
        if index.exists():
            conn = sqlite3.connect(f"file:{index}?mode=ro", uri=True)
            pages["by-credential"] = conn.execute("SELECT sum(pgsize) FROM dbstat").fetchone()[0] or 0
            conn.close()
            audit_tables.append("by-credential")
        size = lambda tables: sum(pages.get(t, 0) for t in tables)
        count = counts.get
    return {"bytes per credential": size(credential_tables) / count("cloud_credentials"),
            "bytes per audit row": size(audit_tables) / count("credential_audit_log")}


def main():
    DIR.mkdir(parents=True, exist_ok=True)
    work = DIR / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    cluster = Cluster() if "postgres" in BACKENDS else None
    results = {}
    try:
        for backend in BACKENDS:
            for size in SIZES:
                db = Database(backend, size, cluster)
                log(f"{db.name}: measuring")
                try:
                    results[(backend, size)] = measure(db, work)
                except (SystemExit, Exception) as failed:
                    # One database's failure is reported with the rest, not instead of it.
                    log(f"{db.name}: {failed}")
                    results[(backend, size)] = {"failed": str(failed)[:200]}
                finally:
                    for server in SERVERS:
                        if server.proc.poll() is None:
                            server.proc.kill()
                    SERVERS.clear()
    finally:
        if cluster:
            cluster.stop()
    report(results)


def report(results):
    shapes = {s: f"{v['credentials']:,} creds / {v['audit_rows']:,} audit rows" for s, v in SIZES.items()}
    print(f"\nscale run: SCALE={SCALE}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          + "; ".join(f"{s} = {d}" for s, d in shapes.items()))
    for backend in BACKENDS:
        print(f"\n### {backend}\n")
        print("| measure | base | large | large / base |")
        print("|---|---|---|---|")
        base, large = results.get((backend, "base"), {}), results.get((backend, "large"), {})
        for key in dict.fromkeys([*base, *large]):
            b, l = base.get(key), large.get(key)
            fmt = lambda v: "-" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" \
                if isinstance(v, int) else str(v)
            ratio = f"{l / b:.2f}" if isinstance(b, (int, float)) and isinstance(l, (int, float)) and b else "-"
            print(f"| {key} | {fmt(b)} | {fmt(l)} | {ratio} |")


if __name__ == "__main__":
    main()
