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
        Backend::Postgres => "SELECT CAST(coalesce(sum(usage_count), 0) AS BIGINT) FROM cloud_credentials",
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

backend_tests!(every_get_it_counts_is_one_audited_use, refused_calls_are_errors_not_throughput);

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
