//! `credvault bench` against a real server: its lean gRPC client must count exactly the calls
//! the server served, and count refused calls as errors.

use std::time::Duration;

use credvault::bench::{self, BenchArgs, Operation};
use secrecy::SecretString;

use crate::helpers::{Backend, TestApp};

fn args(app: &TestApp, op: Operation, token: &str) -> BenchArgs {
    BenchArgs {
        endpoint: format!("http://{}", app.addr),
        op,
        clients: 24,
        seconds: 1,
        warmup: 0,
        credentials: 5,
        token: SecretString::from(token.to_owned()),
        customer_id: app.customer_id.clone(),
        every: None,
        ids_file: None,
    }
}

async fn every_get_it_counts_is_one_audited_use(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let report = bench::run(&args(&app, Operation::Get, &app.token)).await.expect("the run completes");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.ok > 0, "{report}");
    assert!(report.p50 <= report.p99 && report.p99 <= report.max, "{report}");
    let db = app.db().await;
    let used = match backend {
        Backend::Sqlite => {
            "SELECT (SELECT count(*) FROM credential_audit_log WHERE action = 'used') \
             + (SELECT count(*) FROM credential_use_journal WHERE action = 'used')"
        }
        Backend::Postgres => "SELECT count(*) FROM credential_audit_log WHERE action = 'used'",
    };
    // No warm-up, so every call served was measured, and 24 clients make groups of many sizes.
    assert_eq!(u64::try_from(db.count(used).await).unwrap(), report.ok);
    let counted = match backend {
        // Uses still in the journal count too (they move into usage_count with the journal).
        Backend::Sqlite => {
            "SELECT (SELECT coalesce(sum(usage_count), 0) FROM cloud_credentials) \
             + (SELECT count(*) FROM credential_use_journal)"
        }
        // Uses count beside the credentials, in credential_uses (migration 0014).
        Backend::Postgres => {
            "SELECT CAST((SELECT coalesce(sum(usage_count), 0) FROM cloud_credentials) \
             + (SELECT coalesce(sum(uses), 0) FROM credential_uses) AS BIGINT)"
        }
    };
    assert_eq!(u64::try_from(db.count(counted).await).unwrap(), report.ok);
}

async fn refused_calls_are_errors_not_throughput(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut args = args(&app, Operation::Store, "cvt_not-a-token");
    args.clients = 2;
    let report = tokio::time::timeout(Duration::from_secs(30), bench::run(&args))
        .await
        .expect("the run ends")
        .expect("the run completes");
    assert_eq!(report.ok, 0, "{report}");
    assert!(report.errors > 0, "{report}");
    let db = app.db().await;
    assert_eq!(db.count("SELECT count(*) FROM cloud_credentials").await, 0);
}

/// `credvault bench-seed`: generated customers, credentials and history, written in batches
/// through the store's bulk path, make a database a server serves as its own: every secret opens,
/// the chain verifies across the batches, the sealer goes on after it, and `bench --ids-file`
/// drives Gets over the seeded credentials. A database with history is refused.
async fn a_seeded_database_serves_and_verifies(backend: Backend) {
    let (url, dir) = crate::helpers::fresh_database(backend).await;
    let key = crate::helpers::new_key();
    let ids = dir.path().join("ids");
    let seed = |extra: &[&str]| {
        let mut args =
            vec!["bench-seed", "--customers", "4", "--credentials", "300", "--big-customer", "150"];
        args.extend_from_slice(&["--audit-rows", "1500", "--ids", "50", "--batch", "40"]);
        args.extend_from_slice(extra);
        let (url, key) = (url.clone(), key.clone());
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::helpers::credvault(&url, &key, &args).await
        }
    };
    let seeded = seed(&["--ids-file", ids.to_str().unwrap()]).await;
    assert!(seeded.status.success(), "{}", crate::helpers::text(&seeded));
    let stdout = String::from_utf8_lossy(&seeded.stdout);
    let big = stdout.split_whitespace().find_map(|kv| kv.strip_prefix("big_customer=")).unwrap().to_owned();
    let ids_written: Vec<String> =
        std::fs::read_to_string(&ids).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(ids_written.len(), 50);

    let verified = crate::helpers::credvault(&url, &key, &["audit", "verify"]).await;
    let out = crate::helpers::text(&verified);
    assert!(verified.status.success() && out.contains("intact: 1500 sealed rows"), "{out}");
    let again = seed(&[]).await;
    assert!(!again.status.success());
    assert!(
        crate::helpers::text(&again).contains("already has 1500 sealed audit rows"),
        "{}",
        crate::helpers::text(&again)
    );

    let app = TestApp::start(backend, url, dir, key).await.expect("the server starts on the seeded database");
    for id in &ids_written[..5] {
        let got = app.get_by_id(id).await.unwrap();
        assert!(got.secret.is_some(), "the seeded secret of {id} opens");
    }
    let listed = app
        .list(credvault::proto::ListRequest { customer_id: big.clone(), ..Default::default() })
        .await
        .unwrap();
    assert!(!listed.credentials.is_empty() && !listed.next_page_token.is_empty(), "a full first page");
    assert!(listed.credentials.iter().all(|c| c.customer_id == big));
    let mut args = args(&app, Operation::Get, &app.token);
    (args.ids_file, args.clients) = (Some(ids.clone()), 4);
    let report = bench::run(&args).await.expect("the run completes");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.ok > 0, "{report}");
    // The server moves the seeded data keys under their customers' keys in the background, and
    // writes its `rewrap_finished` row when done: wait for it, or it can land after the count.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let finished = "SELECT count(*) FROM credential_audit_log WHERE action = 'rewrap_finished'";
    while app.db().await.count(finished).await == 0 {
        assert!(std::time::Instant::now() < deadline, "no rewrap_finished row 30 s after start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.vault.chain_audit().await.unwrap();
    let verified =
        app.vault.verify_audit_log().await.unwrap().expect("the chain goes on after the seeded rows");
    let db = app.db().await;
    let rows = u64::try_from(db.count("SELECT count(*) FROM credential_audit_log").await).unwrap();
    assert_eq!((verified.sealed, verified.unsealed), (rows, 0));
    let used = db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'used'").await;
    assert_eq!(u64::try_from(used).unwrap(), 1200 + 5 + report.ok, "the seeded uses, then the served ones");
}

backend_tests!(
    every_get_it_counts_is_one_audited_use,
    refused_calls_are_errors_not_throughput,
    a_seeded_database_serves_and_verifies
);

/// `--every`: the measured time in windows, which together count the run's calls (but those
/// still in flight when the last window ended).
#[tokio::test]
async fn windows_split_the_measured_time() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let mut args = args(&app, Operation::Get, &app.token);
    (args.seconds, args.every, args.clients) = (3, Some(1), 4);
    let report = bench::run(&args).await.expect("the run completes");
    assert_eq!(report.windows.len(), 3, "{:?}", report.windows);
    assert!(
        report.windows.iter().all(|w| w.calls > 0 && (0.9..1.5).contains(&w.seconds)),
        "{:?}",
        report.windows
    );
    assert!(report.windows.windows(2).all(|w| w[0].ended_at < w[1].ended_at), "{:?}", report.windows);
    let counted: u64 = report.windows.iter().map(|w| w.calls).sum();
    assert!(counted <= report.ok && counted + 4 >= report.ok, "{counted} of {}", report.ok);
}

/// `--op health`: the transport's floor. It needs no token and touches no table: nothing is
/// stored, nothing audited, whatever the token.
#[tokio::test]
async fn health_checks_are_the_transport_alone() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let db = app.db().await;
    let audited =
        "SELECT (SELECT count(*) FROM credential_audit_log) + (SELECT count(*) FROM credential_use_journal)";
    let before = db.count(audited).await;
    let mut args = args(&app, Operation::Health, "cvt_not-a-token");
    args.clients = 2;
    let report = bench::run(&args).await.expect("the run completes");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.ok > 0, "{report}");
    assert_eq!(db.count("SELECT count(*) FROM cloud_credentials").await, 0, "no setup Stores");
    assert_eq!(db.count(audited).await, before, "no audit row");
}
