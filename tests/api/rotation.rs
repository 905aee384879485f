//! Master-key rotation, end to end: a key configuration of several versions, `credvault key
//! rotate` (and turning customer keys on) while Gets and Stores run, every instance following the
//! new current version, and the rewrap moving every customer key to it and every older data key
//! under its customer's key without a failed call; start-up refusing key configurations that
//! cannot serve the database, naming the version.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_credvault");

/// `credvault key ...` on `database_url` with `key` in CREDENTIAL_ENCRYPTION_KEY.
async fn key_command(database_url: &str, key: &str, args: &[&str]) -> Output {
    let args: Vec<&str> = std::iter::once("key").chain(args.iter().copied()).collect();
    credvault(database_url, key, &args).await
}

/// Data keys a master-key version wraps directly, straight from the database.
async fn data_keys_under(app: &TestApp, version: u32) -> i64 {
    app.db()
        .await
        .count_owned(format!("SELECT count(*) FROM credential_versions WHERE key_version = {version}"))
        .await
}

/// Customer keys a master-key version wraps.
async fn customer_keys_under(app: &TestApp, version: u32) -> i64 {
    app.db()
        .await
        .count_owned(format!("SELECT count(*) FROM customer_keys WHERE key_version = {version}"))
        .await
}

/// Data keys wrapped by their customers' keys.
async fn data_keys_under_customers(app: &TestApp) -> i64 {
    app.db()
        .await
        .count(
            "SELECT count(*) FROM credential_versions WHERE key_version IS NULL AND encrypted_credentials IS NOT NULL",
        )
        .await
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    app.db()
        .await
        .count_owned(format!("SELECT count(*) FROM credential_audit_log WHERE action = '{action}'"))
        .await
}

/// Gets of known credentials (checking each secret) and Stores, against each instance, until
/// `done`; the count of calls and of failures.
struct Load {
    done: Arc<AtomicBool>,
    calls: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(instances: &[&TestApp], known: &Arc<HashMap<String, String>>) -> Load {
        let done = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for (n, app) in instances.iter().enumerate() {
            for reader in 0..2 {
                let (client, known, done, calls) =
                    (app.client.clone(), known.clone(), done.clone(), calls.clone());
                workers.push(tokio::spawn(async move {
                    let mut failures = Vec::new();
                    let ids: Vec<&String> = known.keys().collect();
                    let mut i = reader;
                    while !done.load(Ordering::Relaxed) {
                        let id = ids[i % ids.len()];
                        i += 7;
                        match client.clone().get(get_by_id(id)).await {
                            Ok(got) => {
                                let secret = got.into_inner().secret.and_then(|s| s.secret);
                                if secret != Some(vultr(&known[id])) {
                                    failures.push(format!("Get {id} answered another secret"));
                                }
                            }
                            Err(status) => failures.push(format!("Get {id}: {status:?}")),
                        }
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                    failures
                }));
            }
            let (app_client, customer, done, calls) =
                (app.client.clone(), app.customer_id.clone(), done.clone(), calls.clone());
            workers.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let name = format!("During rotation {n}-{i}");
                    let request = store_request(&customer, &name, vultr(&format!("fresh-{n}-{i}")));
                    if let Err(status) = app_client.clone().store(request).await {
                        failures.push(format!("Store {name}: {status:?}"));
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                failures
            }));
        }
        Load { done, calls, workers }
    }

    async fn stop(self) -> (u64, Vec<String>) {
        self.done.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for worker in self.workers {
            failures.extend(worker.await.unwrap());
        }
        (self.calls.load(Ordering::Relaxed), failures)
    }
}

/// The README's procedures on a vault from before customer keys: every instance learns the new
/// key (a restart with `1:old` and `2:new`), then `credvault key enable-customer-keys` and
/// `credvault key rotate`; Gets and Stores run throughout, on two instances sharing the
/// database on PostgreSQL. No call fails, every instance seals under customer keys within
/// seconds, and the rewrap leaves no data key under a master-key version and no customer key
/// under version 1.
async fn rotation_under_load_fails_no_call_and_moves_every_data_key(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.without_customer_keys().await;
    let mut known = HashMap::new();
    for i in 0..40 {
        let secret = format!("secret-{i}");
        known.insert(app.store_vultr(&format!("Known {i}"), &secret).await.id, secret);
    }
    let known = Arc::new(known);
    let old = app.key.clone();
    let new = new_key();
    let both = format!("# rotating\n1:{old}\n2:{new}\n");
    let customer = app.customer_id.clone();
    let mut app = app.stop().await.restart_with_key(both.clone()).await.expect("starts knowing both keys");
    app.customer_id = customer;
    let other = match backend {
        Backend::Postgres => Some(app.another_instance().await),
        Backend::Sqlite => None,
    };
    app.store_vultr("Before rotate", "still v1").await;
    assert_eq!(data_keys_under(&app, 2).await, 0, "knowing a key does not make it current");
    assert_eq!(data_keys_under_customers(&app).await, 0, "customer keys are off");

    let instances: Vec<&TestApp> = std::iter::once(&app).chain(other.as_ref()).collect();
    let load = Load::start(&instances, &known);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let enabled = key_command(&app.database_url, &both, &["enable-customer-keys"]).await;
    assert!(enabled.status.success(), "{}", text(&enabled));
    assert!(text(&enabled).contains("customer keys are on"), "{}", text(&enabled));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rotated = key_command(&app.database_url, &both, &["rotate"]).await;
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("key version 2 is current (was 1)"), "{}", text(&rotated));
    assert!(!text(&rotated).contains(&old) && !text(&rotated).contains(&new), "no key is ever printed");

    let deadline = Instant::now() + Duration::from_secs(60);
    // Past the instances' 1 s watch: no Store after this is sealed under a master-key version.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while data_keys_under(&app, 1).await + data_keys_under(&app, 2).await + customer_keys_under(&app, 1).await
        > 0
    {
        assert!(Instant::now() < deadline, "the rewrap did not finish within a minute");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (calls, failures) = load.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(calls > 50, "the load ran ({calls} calls)");
    assert_eq!(data_keys_under(&app, 1).await + data_keys_under(&app, 2).await, 0);
    assert!(data_keys_under_customers(&app).await > 40);
    assert!(customer_keys_under(&app, 2).await >= 1);

    // Every credential still opens, on each instance.
    for instance in &instances {
        for (id, secret) in known.iter().take(10) {
            let got = instance.get_by_id(id).await.unwrap();
            assert_eq!(got.secret.unwrap().secret, Some(vultr(secret)));
        }
    }
    assert_eq!(audit_count(&app, "key_rotated").await, 1);
    assert_eq!(audit_count(&app, "customer_keys_enabled").await, 1);
    assert!(audit_count(&app, "rewrap_started").await >= 1);
    // The pass writes its finished row after its last batch: the keys can all be moved a moment
    // before it is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_count(&app, "rewrap_finished").await == 0 {
        assert!(Instant::now() < deadline, "no rewrap_finished row 10 s after the keys moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = key_command(&app.database_url, &both, &["status"]).await;
    let out = text(&status);
    assert!(status.status.success(), "{out}");
    assert!(out.lines().any(|l| l.starts_with("1\taudit-key\t0\t0\t")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("2\tcurrent\t0\t")), "{out}");
    assert!(out.contains("customer keys: on since"), "{out}");
    let again = key_command(&app.database_url, &both, &["rotate"]).await;
    assert!(text(&again).contains("key version 2 is current already"), "{}", text(&again));

    // The audit log stays whole: rows MACed under version 1 before, under version 2 after, on
    // one chain that `audit verify` checks with both keys configured.
    app.vault.chain_audit().await.unwrap();
    let db = app.db().await;
    let by_v1 = db.count("SELECT count(*) FROM credential_audit_log WHERE length(row_mac) = 32").await;
    let by_v2 = db.count("SELECT count(*) FROM credential_audit_log WHERE length(row_mac) = 36").await;
    assert!(by_v1 > 0 && by_v2 > 0, "MACs by version 1: {by_v1}, by version 2: {by_v2}");
    let verified = credvault(&app.database_url, &both, &["audit", "verify"]).await;
    assert!(verified.status.success(), "{}", text(&verified));

    let metrics = reqwest::get(format!("{}/metrics", app.http)).await.unwrap().text().await.unwrap();
    // (One recorder serves every test server in this process: values are not this test's alone.)
    assert!(metrics.contains("credvault_current_key_version "), "{metrics}");
    assert!(metrics.contains("credvault_rewrap_remaining_data_keys"), "{metrics}");
}

/// Key configurations that cannot serve the database are refused at start-up, each naming the
/// version to fix: a version whose key is not the one recorded, a version still wrapping data
/// keys left out, the database's current version left out, a version given twice. A rotation
/// to a version the configuration lacks is refused too.
async fn key_configurations_are_checked_version_by_version(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    app.without_customer_keys().await;
    app.store_vultr("Sealed under v1", "k").await;
    let (old, new) = (app.key.clone(), new_key());
    let database_url = app.database_url.clone();

    let missing = key_command(&database_url, &old, &["rotate", "--version", "2"]).await;
    assert!(!missing.status.success());
    assert!(text(&missing).contains("key version 2 is not in this key configuration"), "{}", text(&missing));

    let stopped = app.stop().await;
    let refused = |key: String| {
        let (backend, url) = (stopped.backend, database_url.clone());
        async move {
            let dir = tempfile::tempdir().unwrap();
            match TestApp::start(backend, url, dir, key).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("this key configuration must be refused"),
            }
        }
    };
    let wrong = refused(format!("1:{}\n2:{new}", new_key())).await;
    assert!(wrong.contains("(version 1) is not the key this database was written with"), "{wrong}");
    let without_v1 = refused(format!("2:{new}")).await;
    assert!(without_v1.contains("key version 1 (1 data keys)"), "{without_v1}");
    let twice = refused(format!("1:{old}\n1:{old}")).await;
    assert!(twice.contains("key version 1 is given twice"), "{twice}");
    assert!(!twice.contains(&old), "the key is never echoed");

    let both = format!("1:{old}\n2:{new}");
    let rotated = key_command(&database_url, &both, &["rotate"]).await;
    assert!(rotated.status.success(), "{}", text(&rotated));
    let without_current = refused(old.clone()).await;
    assert!(without_current.contains("the database's current key version is 2"), "{without_current}");

    let app = stopped.restart_with_key(both).await.expect("both keys serve");
    app.store_vultr("Sealed under v2", "k2").await;
    // The rewrap, resumed at start-up, moves the one sealed before.
    let deadline = Instant::now() + Duration::from_secs(30);
    while data_keys_under(&app, 1).await > 0 {
        assert!(Instant::now() < deadline, "the rewrap did not run at start-up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(data_keys_under(&app, 2).await, 2, "the new Store and the rewrapped one");

    // Version 1 wraps nothing now, but made audit MACs: leaving it out is refused.
    let stopped = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let without_audit_key = match TestApp::start(stopped.backend, database_url, dir, format!("2:{new}")).await
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a configuration without the audit log's key must be refused"),
    };
    assert!(without_audit_key.contains("key version 1 was current once"), "{without_audit_key}");
}

backend_tests!(
    rotation_under_load_fails_no_call_and_moves_every_data_key,
    key_configurations_are_checked_version_by_version,
);

/// `kill -9` in the middle of the rewrap that moves a vault from before customer keys under
/// them: the restarted server (once the dead one's lease has expired) resumes the pass and
/// finishes it, and every secret still opens.
#[tokio::test]
async fn a_rewrap_killed_midway_resumes_after_a_restart() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    app.without_customer_keys().await;
    let mut known = HashMap::new();
    for i in 0..150 {
        let secret = format!("secret-{i}");
        let id = app.store_vultr(&format!("Seeded {i}"), &secret).await.id;
        if i % 10 == 0 {
            known.insert(id, secret);
        }
    }
    let (old, new) = (app.key.clone(), new_key());
    let both = format!("1:{old}\n2:{new}");
    let customer = app.customer_id.clone();
    let stopped = app.stop().await;
    let log = stopped.dir.path().join("server.log");
    let enabled = key_command(&stopped.database_url, &both, &["enable-customer-keys"]).await;
    assert!(enabled.status.success(), "{}", text(&enabled));

    let db = crate::db::TestDb::connect(&stopped.database_url).await;
    let under_v1 =
        || async { db.count("SELECT count(*) FROM credential_versions WHERE key_version IS NOT NULL").await };
    let serve = || {
        Command::new(BIN)
            .args(["serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .env("CREDVAULT_DATABASE_URL", &stopped.database_url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &both)
            // 25 data keys a second: the pass takes about 6 s.
            .env("CREDVAULT_REWRAP_RATE", "25")
            // Its providers are the real ones: no verification leaves the machine.
            .env("CREDVAULT_REVERIFY_INTERVAL", "off")
            .env_remove("CREDVAULT_KEY_FILE")
            .env("RUST_LOG", "credvault=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap())
            .spawn()
            .unwrap()
    };
    let mut server = serve();
    let deadline = Instant::now() + Duration::from_secs(30);
    while under_v1().await > 100 {
        assert!(Instant::now() < deadline, "the rewrap did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let left = under_v1().await;
    assert!(left > 0, "killed before the end of the pass ({left} left)");

    let mut server = serve();
    let deadline = Instant::now() + Duration::from_secs(60);
    while under_v1().await > 0 {
        assert!(Instant::now() < deadline, "the rewrap did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let finished = || async {
        db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'rewrap_finished'").await
    };
    while finished().await == 0 {
        assert!(Instant::now() < deadline, "the resumed pass did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM customer_keys WHERE key_version = 1").await,
        1,
        "one customer, one key"
    );
    let started = db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'rewrap_started'").await;
    assert_eq!(started, 2, "one start per pass: the killed one and the resumed one");
    drop(db);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("rewrap started") && logged.contains("rewrap finished"), "{logged}");
    assert!(!logged.contains(&old) && !logged.contains(&new), "no key is ever logged");

    let mut app = stopped.restart_with_key(both).await.expect("restarts");
    app.customer_id = customer;
    for (id, secret) in &known {
        let got = app.get_by_id(id).await.unwrap();
        assert_eq!(got.secret.unwrap().secret, Some(vultr(secret)));
    }
}

type Keys = credvault::proto::key_service_client::KeyServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, credvault::client::Bearer>,
>;

async fn keys(app: &TestApp, token: &str) -> Keys {
    let bearer = credvault::client::Bearer::new(token).unwrap();
    credvault::proto::key_service_client::KeyServiceClient::with_interceptor(app.channel().await, bearer)
}

/// KeyService: an admin token for every customer reads the status and rotates; a token without
/// the admin scope, or bound to one customer, is refused (and audited); a version the serving
/// instance lacks is INVALID_ARGUMENT naming the fix.
async fn the_key_service_reports_and_rotates_for_admins_of_every_customer_only(backend: Backend) {
    use credvault::proto as pb;
    use tonic::Code;
    let app = TestApp::spawn_on(backend).await;
    app.store_vultr("One", "k").await;
    let old = app.key.clone();
    let customer = app.customer_id.clone();
    let mut app = app.stop().await.restart_with_key(format!("1:{old}\n2:{}", new_key())).await.unwrap();
    app.customer_id = customer;

    let (_, reader) = app.token("credentials:read,audit:read", "*", None).await;
    let (_, one_customer) = app.token("admin", &app.customer_id, None).await;
    for token in [&reader, &one_customer] {
        let refused = keys(&app, token).await.get_key_status(pb::GetKeyStatusRequest {}).await;
        assert_status(refused, Code::PermissionDenied, "");
        let refused = keys(&app, token).await.rotate_key(pb::RotateKeyRequest { version: 2 }).await;
        assert_status(refused, Code::PermissionDenied, "");
    }
    let denied =
        app.db().await.count("SELECT count(*) FROM credential_audit_log WHERE action = 'denied'").await;
    assert!(denied >= 4, "every refusal is audited ({denied})");

    let refused =
        keys(&app, &one_customer).await.enable_customer_keys(pb::EnableCustomerKeysRequest {}).await;
    assert_status(refused, Code::PermissionDenied, "");

    let mut admin = keys(&app, &app.token).await;
    let status = admin.get_key_status(pb::GetKeyStatusRequest {}).await.unwrap().into_inner();
    let states: Vec<(u32, &str, i64, i64)> =
        status.versions.iter().map(|v| (v.version, v.state.as_str(), v.data_keys, v.customer_keys)).collect();
    assert_eq!(states, [(1, "current", 0, 1), (2, "unused", 0, 0)]);
    let since = status.customer_keys_since.expect("a new database has customer keys");
    assert_eq!(status.shredded_customers, 0);
    let enabled = admin.enable_customer_keys(pb::EnableCustomerKeysRequest {}).await.unwrap().into_inner();
    assert_eq!(enabled.since, Some(since), "on already: unchanged");

    let missing = admin.rotate_key(pb::RotateKeyRequest { version: 3 }).await;
    assert_invalid_field(missing, "version", "key version 3 is not in this key configuration");
    let rotated = admin.rotate_key(pb::RotateKeyRequest { version: 0 }).await.unwrap().into_inner();
    assert_eq!((rotated.version, rotated.previous_version), (2, 1));
    app.store_vultr("Two", "k2").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = admin.get_key_status(pb::GetKeyStatusRequest {}).await.unwrap().into_inner();
        let states: Vec<(u32, &str, i64, i64)> = status
            .versions
            .iter()
            .map(|v| (v.version, v.state.as_str(), v.data_keys, v.customer_keys))
            .collect();
        // Master-key rotation moves the one customer key; its two data keys stay as they are.
        if states == [(1, "audit-key", 0, 0), (2, "current", 0, 1)] {
            break;
        }
        assert!(Instant::now() < deadline, "the rewrap did not finish: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

mod key_service {
    use super::*;
    backend_tests!(the_key_service_reports_and_rotates_for_admins_of_every_customer_only);
}

/// `credvault key retire`: refused while the version is current, or still wraps data keys (with
/// the count and the fix); once the rewrap is done, it seals and verifies the log and writes a
/// checkpoint, after which the old key leaves the configuration: the server starts, secrets
/// open, `audit verify` passes without it, and a row changed after the checkpoint is still caught.
async fn retiring_a_version_re_anchors_the_audit_log(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Kept", "kept-secret").await;
    app.get_by_id(&stored.id).await.unwrap();
    let (old, new) = (app.key.clone(), new_key());
    let both = format!("1:{old}\n2:{new}");
    let customer = app.customer_id.clone();
    let stopped = app.stop().await;
    let url = stopped.database_url.clone();

    let current = key_command(&url, &both, &["retire", "2"]).await;
    assert!(text(&current).contains("key version 2 was never current"), "{}", text(&current));
    assert!(key_command(&url, &both, &["rotate"]).await.status.success());
    let current = key_command(&url, &both, &["retire", "2"]).await;
    assert!(text(&current).contains("key version 2 is current"), "{}", text(&current));
    let wraps = key_command(&url, &both, &["retire", "1"]).await;
    assert!(!wraps.status.success());
    assert!(
        text(&wraps).contains("key version 1 still wraps 0 data keys and 1 customer keys"),
        "{}",
        text(&wraps)
    );

    // A server rewraps; its Gets write audit rows MACed with version 2.
    let mut app = stopped.restart_with_key(both.clone()).await.unwrap();
    app.customer_id = customer.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while customer_keys_under(&app, 1).await > 0 {
        assert!(Instant::now() < deadline, "the rewrap did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.get_by_id(&stored.id).await.unwrap();
    let stopped = app.stop().await;

    let retired = key_command(&url, &both, &["retire", "1"]).await;
    assert!(retired.status.success(), "{}", text(&retired));
    assert!(text(&retired).contains("key version 1 is retired"), "{}", text(&retired));
    let again = key_command(&url, &both, &["retire", "1"]).await;
    assert!(text(&again).contains("retired already"), "{}", text(&again));
    let back = key_command(&url, &both, &["rotate", "--version", "1"]).await;
    assert!(text(&back).contains("key version 1 is retired"), "{}", text(&back));

    let only_new = format!("2:{new}");
    let mut app = stopped.restart_with_key(only_new.clone()).await.expect("starts without the retired key");
    app.customer_id = customer;
    let got = app.get_by_id(&stored.id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("kept-secret")));
    app.vault.chain_audit().await.unwrap();
    let verified = credvault(&url, &only_new, &["audit", "verify"]).await;
    assert!(verified.status.success(), "{}", text(&verified));
    let status = key_command(&url, &only_new, &["status"]).await;
    assert!(text(&status).lines().any(|l| l.starts_with("1\tretired\t0\t0\t")), "{}", text(&status));
    assert_eq!(audit_count(&app, "key_retired").await, 1);

    // After the checkpoint, rows are checked as ever.
    let db = app.db().await;
    let changed = db.execute("UPDATE credential_audit_log SET action_details = 'rewritten' WHERE length(row_mac) = 36 AND action = 'used'").await;
    assert!(changed > 0);
    let caught = credvault(&url, &only_new, &["audit", "verify"]).await;
    assert!(!caught.status.success());
    assert!(text(&caught).contains("does not match its MAC"), "{}", text(&caught));
}

mod retirement {
    use super::*;
    backend_tests!(retiring_a_version_re_anchors_the_audit_log);
}
