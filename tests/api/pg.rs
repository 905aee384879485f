//! Throwaway PostgreSQL for the tests: one cluster per test run (shared), a fresh database per
//! test, and private clusters for the tests that stop and start the server.
//!
//! `CREDVAULT_TEST_POSTGRES_URL` (a superuser URL) points the tests at an existing server
//! instead. Otherwise `initdb` / `pg_ctl` come from PATH or `/usr/lib/postgresql/*/bin`; as
//! root, the cluster is owned by and run as the `postgres` OS user (PostgreSQL refuses root).
//! A missing PostgreSQL fails the tests that need it: it is never a silent skip.
//!
//! Test clusters run with `fsync = off` (the OS still holds every write when the fault tests
//! kill the server) but keep `synchronous_commit = on`: with it off, an immediate stop loses
//! the last commits, which is exactly what the fault tests must not see.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sqlx::Connection;

/// A cluster started by the tests, in its own temp dir on a free loopback port.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn find_bin() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    let packaged = || {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|bin| bin.join("initdb").is_file())
            .collect();
        dirs.sort();
        dirs.pop()
    };
    in_path.or_else(packaged).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is required by these tests but initdb/pg_ctl were found neither on PATH nor under \
             /usr/lib/postgresql/*/bin: install PostgreSQL (apt-get install postgresql) or set \
             CREDVAULT_TEST_POSTGRES_URL to a superuser URL"
        )
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    /// initdb + start; panics with the server log if it fails.
    pub fn start() -> Cluster {
        let bin = find_bin();
        let dir = tempfile::Builder::new().prefix("credvault-test-pg-").tempdir().unwrap().keep();
        let cluster = Cluster { dir, bin, port: free_port() };
        if is_root() {
            let status = Command::new("chown").args(["-R", "postgres"]).arg(&cluster.dir).status().unwrap();
            assert!(status.success(), "chown to the postgres user failed");
        }
        let output = cluster
            .as_owner("initdb")
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .output()
            .unwrap();
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = off\nfull_page_writes = off\n",
            cluster.port,
            cluster.dir.display()
        );
        let conf_path = cluster.data().join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).unwrap();
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).unwrap();
        cluster.watch_for_exit();
        cluster.start_server();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    fn as_owner(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    pub fn start_server(&self) {
        let status = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        assert!(status.success(), "pg_ctl start failed:\n{log}");
    }

    /// Stops the server abruptly (like a crash or a failover).
    pub fn stop_server(&self) {
        let status = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }

    /// Stops the cluster and removes its directory when this test process exits, however it
    /// exits (a detached shell polls for the process).
    fn watch_for_exit(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_owner = if is_root() { "runuser -u postgres -- " } else { "" };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {as_owner}'{pg_ctl}' -D '{data}' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            data = self.data().display(),
            dir = self.dir.display(),
        );
        // Deliberately not waited for: it must outlive this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start the cluster watchdog");
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The run's shared server: the given URL, or a cluster started on first use.
pub enum Shared {
    External(String),
    Cluster(Cluster),
}

static SHARED: OnceLock<Shared> = OnceLock::new();

pub fn shared() -> &'static Shared {
    SHARED.get_or_init(|| match std::env::var("CREDVAULT_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Shared::External(url),
        _ => Shared::Cluster(Cluster::start()),
    })
}

impl Shared {
    pub fn admin_url(&self) -> String {
        match self {
            Shared::External(url) => url.clone(),
            Shared::Cluster(c) => c.admin_url(),
        }
    }

    /// The data directory, when the tests own the cluster.
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            Shared::External(_) => None,
            Shared::Cluster(c) => Some(c.data_dir()),
        }
    }
}

/// Creates an empty database on the server at `admin_url` and returns its URL.
pub async fn fresh_database(admin_url: &str) -> String {
    let name = format!("credvault_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        sqlx::PgConnection::connect(admin_url).await.expect("the test PostgreSQL accepts connections");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    format!("{base}/{name}")
}
