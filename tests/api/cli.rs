//! The real binary, run as users run it.

use std::process::{Command, Output};

use base64::Engine as _;

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

fn serve_with_key(key: Option<&str>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env("CREDVAULT_DATABASE_URL", format!("sqlite://{}/db.sqlite", dir.path().display()));
    if let Some(key) = key {
        command.env("CREDENTIAL_ENCRYPTION_KEY", key);
    }
    command.output().unwrap()
}

#[track_caller]
fn assert_refused(output: &Output, fragments: &[&str]) {
    assert!(!output.status.success(), "start-up must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for fragment in fragments {
        assert!(stderr.contains(fragment), "stderr lacks {fragment:?}:\n{stderr}");
    }
}

#[test]
fn keygen_prints_a_usable_32_byte_key() {
    let output = Command::new(BIN).arg("keygen").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim()).unwrap();
    assert_eq!(bytes.len(), 32);
    let again = Command::new(BIN).arg("keygen").output().unwrap();
    assert_ne!(text.as_bytes(), again.stdout.as_slice());
}

#[test]
fn serve_without_a_key_says_how_to_get_one() {
    assert_refused(&serve_with_key(None), &["no encryption key", "credvault keygen", "--dev"]);
}

#[test]
fn serve_with_a_short_key_is_refused() {
    let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
    assert_refused(&serve_with_key(Some(&short)), &["CREDENTIAL_ENCRYPTION_KEY", "16 bytes", "exactly 32"]);
}

#[test]
fn serve_with_a_malformed_key_is_refused_without_echoing_it() {
    let output = serve_with_key(Some("this is not base64 %%%"));
    assert_refused(&output, &["not valid base64", "credvault keygen"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("%%%"));
}

#[test]
fn serve_with_a_missing_key_file_names_the_file() {
    let output = Command::new(BIN)
        .args(["serve", "--key-file", "/nonexistent/credvault.key"])
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .output()
        .unwrap();
    assert_refused(&output, &["/nonexistent/credvault.key"]);
}

#[test]
fn serve_dev_creates_and_prints_a_development_token() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env_remove("CREDVAULT_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let printed = stdout
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.trim().strip_prefix("export CREDVAULT_TOKEN=").map(str::to_owned));
    child.kill().unwrap();
    child.wait().unwrap();
    let printed = printed.expect("the banner prints the token");
    assert!(printed.starts_with("cvt_"), "{printed}");
    let path = dir.path().join(".credvault/dev.token");
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), printed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// `serve --dev` in a fresh directory, its stdout read up to the banner's token and gateway
/// address, its stderr going to a file; killed when dropped.
pub struct DevServer {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    pub token: String,
    /// The gateway's base URL.
    pub http: String,
    /// The gRPC listener's host:port.
    pub grpc: String,
    log: std::path::PathBuf,
}

impl DevServer {
    pub fn start(envs: &[(&str, &str)]) -> DevServer {
        Self::start_in(tempfile::tempdir().unwrap(), envs)
    }

    /// `serve --dev` in `dir` (which may hold an earlier run's `.credvault/`).
    fn start_in(dir: tempfile::TempDir, envs: &[(&str, &str)]) -> DevServer {
        use std::io::{BufRead, BufReader};
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(BIN)
            .args(["serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .current_dir(dir.path())
            .env_remove("CREDENTIAL_ENCRYPTION_KEY")
            .env_remove("CREDVAULT_KEY_FILE")
            .env_remove("CREDVAULT_DATABASE_URL")
            .envs(envs.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
        let grpc = lines
            .by_ref()
            .find_map(|line| {
                let rest = line.strip_prefix("credvault is running in development mode on ")?;
                Some(rest.split_whitespace().next()?.to_owned())
            })
            .expect("the banner names the gRPC address");
        let token = lines
            .by_ref()
            .find_map(|line| line.trim().strip_prefix("export CREDVAULT_TOKEN=").map(str::to_owned))
            .expect("the banner prints the token");
        let http = lines
            .find_map(|line| {
                let rest = line.strip_prefix("The dashboard's REST gateway is on ")?;
                Some(rest.trim_end_matches(':').to_owned())
            })
            .expect("the banner names the gateway");
        // The rest of the banner must still find a reader: printing to a closed pipe panics.
        std::thread::spawn(move || lines.for_each(drop));
        DevServer { child, dir, token, http, grpc, log }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(".credvault").join(name)
    }

    /// SIGTERM, as a service manager stops it; waits for the exit.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn serve_dev_keeps_its_files_private_and_out_of_git() {
    let server = DevServer::start(&[]);
    let ignore = std::fs::read_to_string(server.path(".gitignore")).unwrap();
    assert!(ignore.lines().any(|line| line.trim() == "*"), "{ignore}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&server.dir.path().join(".credvault")), 0o700);
        for file in ["dev.key", "dev.token", "credvault.db", "credvault.db-wal", "credvault.db-shm"] {
            assert_eq!(mode(&server.path(file)), 0o600, "{file}");
        }
    }
}

#[tokio::test]
async fn a_clean_stop_leaves_the_whole_vault_in_the_database_file() {
    let mut server = DevServer::start(&[]);
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/credentials", server.http))
        .bearer_auth(&server.token)
        .header("X-Customer-ID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        .json(&serde_json::json!({"provider": "vultr", "credential_name": "kept", "credentials": {"api_key": "k"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(server.stop().success(), "{}", server.log());
    // The operator's backup: the .db file alone, without the WAL beside it.
    let copy = tempfile::tempdir().unwrap();
    let db = copy.path().join("copy.db");
    std::fs::copy(server.path("credvault.db"), &db).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT credential_name FROM cloud_credentials").fetch_all(&pool).await.unwrap();
    assert_eq!(names, ["kept"]);
}

#[tokio::test]
async fn at_trace_level_the_log_has_no_colour_and_no_third_party_dump_of_an_aws_key() {
    let fakes = crate::fakes::Fakes::start().await;
    let sts = format!("{}/sts", fakes.base);
    let server = DevServer::start(&[("RUST_LOG", "trace"), ("CREDVAULT_AWS_STS_URL", &sts)]);
    let verified = reqwest::Client::new()
        .post(format!("{}/api/v1/credentials/verify", server.http))
        .bearer_auth(&server.token)
        .header("X-Customer-ID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        .json(&serde_json::json!({"provider": "aws", "credentials": {
            "access_key_id": crate::fakes::AWS_KEY_ID, "secret_access_key": crate::fakes::AWS_SECRET}}))
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 200);
    let body: serde_json::Value = verified.json().await.unwrap();
    assert_eq!(body["outcome"], "valid", "{body}");
    let log = server.log();
    assert!(log.contains("credvault listening"), "{log}");
    assert!(log.contains("verification finished"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log that is not a terminal");
    for secret in [crate::fakes::AWS_KEY_ID, crate::fakes::AWS_SECRET, server.token.as_str()] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

/// `RUST_LOG=credvault=debug`: one line per call (method or route template, status, latency,
/// token name, client address), never the token or a header's value; at the default level none.
#[tokio::test]
async fn at_debug_level_each_call_leaves_one_line_naming_its_caller_and_at_info_none() {
    let customer = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let call = |server: &DevServer| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/credentials/vultr", server.http))
            .bearer_auth(&server.token)
            .header("X-Customer-ID", customer)
            .send()
    };
    let debug = DevServer::start(&[("RUST_LOG", "credvault=debug"), ("CREDVAULT_LOG_FORMAT", "json")]);
    assert_eq!(call(&debug).await.unwrap().status(), 200);
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", debug.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        credvault::client::client(channel, credvault::client::Bearer::new(&debug.token).unwrap());
    let list = credvault::proto::ListRequest { customer_id: customer.into(), ..Default::default() };
    client.list(list).await.unwrap();
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v1/credentials/vultr", debug.http))
        .bearer_auth("cvt_wrong");
    assert_eq!(refused.send().await.unwrap().status(), 401);

    let log = debug.log();
    let calls: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "call")
        .collect();
    let rest = calls.iter().find(|c| c["transport"] == "http" && c["status"] == "200").expect("a REST line");
    assert_eq!(rest["call"], "GET /api/v1/credentials/{provider_or_id}", "{rest}");
    assert_eq!(rest["client"], "127.0.0.1", "{rest}");
    assert!(rest["token"].as_str().unwrap().starts_with("dev-"), "{rest}");
    assert!(rest["latency_ms"].as_f64().is_some(), "{rest}");
    let grpc = calls.iter().find(|c| c["transport"] == "grpc").expect("a gRPC line");
    assert_eq!(grpc["call"], "/credvault.v1.CredentialService/List", "{grpc}");
    assert_eq!((&grpc["status"], &grpc["client"]), (&"Ok".into(), &"127.0.0.1".into()), "{grpc}");
    assert_eq!(grpc["token"], rest["token"], "{grpc}");
    let unauthenticated = calls.iter().find(|c| c["status"] == "401").expect("the refused call's line");
    assert_eq!(unauthenticated["token"], "-", "{unauthenticated}");
    assert!(log.contains("time.busy"), "span timings at DEBUG: {log}");
    for secret in [debug.token.as_str(), "cvt_wrong"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }

    let info = DevServer::start(&[]);
    assert_eq!(call(&info).await.unwrap().status(), 200);
    let log = info.log();
    assert!(
        log.contains("credvault listening") && !log.contains(" call ") && !log.contains("time.busy"),
        "{log}"
    );
}

#[tokio::test]
async fn commands_beside_serve_dev_find_its_key_by_themselves() {
    let server = DevServer::start(&[]);
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(server.dir.path())
            .env_remove("CREDENTIAL_ENCRYPTION_KEY")
            .env_remove("CREDVAULT_KEY_FILE")
            .env_remove("CREDVAULT_DATABASE_URL")
            .output()
            .unwrap()
    };
    let demo = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    for args in [
        &["customer", "set-status", demo, "trial"][..],
        &["customer", "set-status", demo, "active"][..],
        &["audit", "verify"][..],
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "credvault {args:?}: {stderr}");
    }
    let verified = String::from_utf8(run(&["audit", "verify"]).stdout).unwrap();
    assert!(verified.contains("audit log intact"), "{verified}");
    // Elsewhere, without a key, the command says how to give one.
    let output = Command::new(BIN)
        .args([
            "audit",
            "verify",
            "--database-url",
            &format!("sqlite://{}", server.path("credvault.db").display()),
        ])
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .output()
        .unwrap();
    assert_refused(&output, &["needs the master key", "CREDENTIAL_ENCRYPTION_KEY"]);
}

#[cfg(unix)]
#[test]
fn serve_refuses_a_database_file_it_can_only_read_naming_the_file_and_the_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let url = format!("sqlite://{}", db.display());
    let migrated = Command::new(BIN).args(["migrate", "--database-url", &url]).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let wal = std::fs::metadata(dir.path().join("vault.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "migrate closes cleanly: nothing left in the WAL");
    let key = dir.path().join("master.key");
    std::fs::write(
        &key,
        String::from_utf8(Command::new(BIN).arg("keygen").output().unwrap().stdout).unwrap(),
    )
    .unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Readable by everyone, writable by nobody but its owner; the directory likewise.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0\n");
    let mut serve = if is_root {
        // root writes anything: run as a user who may only read, as a service user would.
        Command::new("chown").args(["nobody"]).arg(&key).status().unwrap();
        let mut command = Command::new("runuser");
        command.args(["-u", "nobody", "--", BIN]);
        command
    } else {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        Command::new(BIN)
    };
    let output = serve
        .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--database-url", &url])
        .arg("--key-file")
        .arg(&key)
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .output()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_refused(&output, &[&db.display().to_string(), "writable by the user credvault runs as"]);
}

/// `credvault ARGS` in `dir`, with no key or database in the environment.
fn credvault_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .env_remove("CREDVAULT_DATABASE_URL")
        .output()
        .unwrap()
}

async fn store_dev_credential(server: &DevServer, name: &str) {
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/credentials", server.http))
        .bearer_auth(&server.token)
        .header("X-Customer-ID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        .json(&serde_json::json!({"provider": "vultr", "credential_name": name, "credentials": {"api_key": "k"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

async fn dev_credential_names(server: &DevServer) -> Vec<String> {
    let listed: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/credentials", server.http))
        .bearer_auth(&server.token)
        .header("X-Customer-ID", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed.as_array().unwrap().iter().map(|c| c["credential_name"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_only_with_its_key() {
    let mut server = DevServer::start(&[]);
    store_dev_credential(&server, "in the backup").await;
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("vault-backup.db");
    let file_arg = file.to_str().unwrap();
    let output = credvault_in(server.dir.path(), &["backup", "--to", file_arg]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(said.contains("the given key opens it"), "{said}");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600);
    let again = credvault_in(server.dir.path(), &["backup", "--to", file_arg]);
    assert_refused(&again, &["must not exist"]);
    store_dev_credential(&server, "after the backup").await;
    assert!(server.stop().success());
    let dir = std::mem::replace(&mut server.dir, tempfile::tempdir().unwrap());
    drop(server);

    // A database is there: only --replace overwrites it; and only the key it was written with.
    let refused = credvault_in(dir.path(), &["restore", "--from", file_arg]);
    assert_refused(&refused, &["exists", "--replace"]);
    let other_key = String::from_utf8(Command::new(BIN).arg("keygen").output().unwrap().stdout).unwrap();
    let wrong = Command::new(BIN)
        .args(["restore", "--from", file_arg, "--replace"])
        .current_dir(dir.path())
        .env("CREDENTIAL_ENCRYPTION_KEY", other_key.trim())
        .env_remove("CREDVAULT_DATABASE_URL")
        .output()
        .unwrap();
    assert_refused(&wrong, &["another key"]);
    let restored = credvault_in(dir.path(), &["restore", "--from", file_arg, "--replace"]);
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));

    let server = DevServer::start_in(dir, &[]);
    assert_eq!(dev_credential_names(&server).await, ["in the backup"]);
    let pg =
        credvault_in(server.dir.path(), &["backup", "--to", "x.db", "--database-url", "postgres://u@h/db"]);
    assert_refused(&pg, &["pg_dump"]);
}
