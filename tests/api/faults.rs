//! PostgreSQL going away and coming back, with a private cluster per test (stopping the shared
//! one would break the tests running beside these).

use std::time::{Duration, Instant};

use credvault::proto as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;
use crate::pg::{Cluster, fresh_database as create_database};

/// A server whose database is down must answer, quickly, UNAVAILABLE: not hang, not INTERNAL.
#[track_caller]
fn assert_unavailable_fast<T: std::fmt::Debug>(result: Result<T, tonic::Status>, started: Instant) {
    let status = result.expect_err("the call must fail while the database is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(!status.message().to_lowercase().contains("sql"), "internals leaked: {status:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "the call hung for {:?}", started.elapsed());
}

#[tokio::test]
async fn a_server_started_before_its_database_waits_not_serving_then_serves() {
    let cluster = Cluster::start();
    let url = create_database(&cluster.admin_url()).await;
    cluster.stop_server();

    let app = TestApp::start(Backend::Postgres, url, tempfile::tempdir().unwrap(), new_key())
        .await
        .expect("an unreachable database does not stop start-up");
    assert!(!app.vault.is_ready());
    assert_eq!(app.health().await, ServingStatus::NotServing as i32);
    let started = Instant::now();
    let list = app
        .list(pb::ListRequest { customer_id: uuid::Uuid::new_v4().to_string(), ..Default::default() })
        .await;
    assert_unavailable_fast(list, started);

    cluster.start_server();
    app.wait_serving(Duration::from_secs(30)).await;
    let customer = app.create_customer().await;
    let stored = app.store(store_request(&customer, "After start", vultr("late-key"))).await.unwrap();
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().secret.unwrap().secret, Some(vultr("late-key")));
}

#[tokio::test]
async fn a_database_outage_fails_calls_fast_and_heals_without_a_restart() {
    let cluster = Cluster::start();
    let url = create_database(&cluster.admin_url()).await;
    let app = TestApp::start(Backend::Postgres, url, tempfile::tempdir().unwrap(), new_key()).await.unwrap();
    let customer = app.create_customer().await;
    let before = app.store(store_request(&customer, "Before", vultr("before-key"))).await.unwrap();
    app.get_by_id(&before.id).await.unwrap();

    cluster.stop_server();
    let started = Instant::now();
    assert_unavailable_fast(app.get_by_id(&before.id).await, started);
    let started = Instant::now();
    assert_unavailable_fast(app.store(store_request(&customer, "During", vultr("lost-key"))).await, started);
    let started = Instant::now();
    assert_unavailable_fast(app.delete(&before.id).await, started);

    cluster.start_server();
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        match app.get_by_id(&before.id).await {
            Ok(got) => break got,
            Err(status) if status.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(status) => panic!("calls did not recover: {status:?}"),
        }
    };
    assert_eq!(got.secret.unwrap().secret, Some(vultr("before-key")));
    let after = app.store(store_request(&customer, "After", vultr("after-key"))).await.unwrap();
    assert!(app.get_by_id(&after.id).await.is_ok());

    // Nothing half-written: the failed Store left no row, the failed Delete changed nothing, and
    // usage and audit agree.
    let listed = app
        .list(pb::ListRequest { customer_id: customer.clone(), include_inactive: true, ..Default::default() })
        .await
        .unwrap();
    let names: Vec<_> = listed.credentials.iter().map(|c| c.credential_name.as_str()).collect();
    assert_eq!(names, vec!["After", "Before"]);
    assert!(listed.credentials.iter().all(|c| c.is_active));
    let before_now = listed.credentials.iter().find(|c| c.id == before.id).unwrap();
    assert_eq!(before_now.usage_count, 2);
    assert_eq!(app.audit_actions(&before.id).await, vec!["created", "used", "used"]);
    assert_eq!(app.audit_actions(&after.id).await, vec!["created", "used"]);
    let db = app.db().await;
    assert_eq!(db.audit_rows().await, 5, "no audit row for a failed call");
}

/// Polls the health service until it reports `wanted`, for at most `limit`.
async fn wait_health(app: &TestApp, wanted: ServingStatus, limit: Duration) {
    let deadline = Instant::now() + limit;
    while app.health().await != wanted as i32 {
        assert!(Instant::now() < deadline, "health did not turn {wanted:?} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn http_status(app: &TestApp, path: &str) -> u16 {
    reqwest::get(format!("{}{path}", app.http)).await.unwrap().status().as_u16()
}

/// Readiness follows the database: NOT_SERVING soon after it stops (a refused connection is a
/// definite answer, not waited on for the connect timeout, here 20 s), SERVING once it is back.
#[tokio::test]
async fn readiness_follows_the_database_while_liveness_stays_up() {
    let cluster = Cluster::start();
    let url = create_database(&cluster.admin_url()).await;
    let slow_connect = |config: credvault::config::Config| credvault::config::Config {
        pool: credvault::store::PoolSettings { connect_timeout: Duration::from_secs(20), ..config.pool },
        ..config
    };
    let app = TestApp::start_configured(Backend::Postgres, url, tempfile::tempdir().unwrap(), slow_connect)
        .await
        .unwrap();
    assert_eq!(app.health().await, ServingStatus::Serving as i32);
    assert_eq!(http_status(&app, "/readyz").await, 200);

    cluster.stop_server();
    // Probed every second; the answer is immediate. Far below the connect timeout either way.
    wait_health(&app, ServingStatus::NotServing, Duration::from_secs(6)).await;
    assert_eq!(http_status(&app, "/readyz").await, 503);
    let probe = Instant::now();
    assert!(app.vault.probe_database(Duration::from_secs(20)).await.is_err());
    assert!(
        probe.elapsed() < Duration::from_secs(10),
        "a refused connection was waited on for {:?}",
        probe.elapsed()
    );
    assert_eq!(http_status(&app, "/healthz").await, 200, "liveness does not follow the database");

    cluster.start_server();
    wait_health(&app, ServingStatus::Serving, Duration::from_secs(30)).await;
    assert_eq!(http_status(&app, "/readyz").await, 200);
    let customer = app.create_customer().await;
    app.store(store_request(&customer, "After", vultr("k"))).await.unwrap();
}

/// Sets (or, with `None`, resets) `default_transaction_read_only` for the whole cluster.
async fn cluster_read_only(cluster: &Cluster, on: Option<bool>) {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&cluster.admin_url()).await.unwrap();
    // This session writes whatever the cluster's default is now.
    sqlx::query("SET default_transaction_read_only = off").execute(&mut admin).await.unwrap();
    let change = match on {
        Some(true) => "ALTER SYSTEM SET default_transaction_read_only = on",
        Some(false) | None => "ALTER SYSTEM RESET default_transaction_read_only",
    };
    sqlx::query(change).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_reload_conf()").execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn a_database_that_turns_read_only_answers_unavailable_and_is_not_ready_until_writable() {
    let cluster = Cluster::start();
    let url = create_database(&cluster.admin_url()).await;
    let app = TestApp::start(Backend::Postgres, url, tempfile::tempdir().unwrap(), new_key()).await.unwrap();
    let customer = app.create_customer().await;
    let kept = app.store(store_request(&customer, "Kept", vultr("kept-key"))).await.unwrap();

    cluster_read_only(&cluster, Some(true)).await;
    wait_health(&app, ServingStatus::NotServing, Duration::from_secs(15)).await;
    assert_eq!(http_status(&app, "/readyz").await, 503);
    // Writes (a Store, a Get's audited use) fail UNAVAILABLE / 503, never INTERNAL / 500.
    let status = app.store(store_request(&customer, "Refused", vultr("k"))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = app.get_by_id(&kept.id).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let rest = reqwest::Client::new()
        .post(format!("{}/api/v1/credentials", app.http))
        .bearer_auth(&app.token)
        .header("X-Customer-ID", &customer)
        .json(&serde_json::json!({
            "provider": "vultr", "credential_name": "Refused too", "credentials": {"api_key": "k"}
        }));
    assert_eq!(rest.send().await.unwrap().status().as_u16(), 503);

    cluster_read_only(&cluster, None).await;
    wait_health(&app, ServingStatus::Serving, Duration::from_secs(15)).await;
    assert_eq!(app.get_by_id(&kept.id).await.unwrap().secret.unwrap().secret, Some(vultr("kept-key")));
    let listed = app.list(pb::ListRequest { customer_id: customer, ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials.len(), 1, "nothing of the refused Stores was written");
}

#[tokio::test]
async fn a_read_only_postgres_database_is_refused_at_start_with_the_fix() {
    let admin = crate::pg::shared().admin_url();
    let url = create_database(&admin).await;
    let name = url.rsplit('/').next().unwrap().to_owned();
    let db = crate::db::TestDb::connect(&admin).await;
    db.execute(&format!("ALTER DATABASE \"{name}\" SET default_transaction_read_only = on")).await;
    let refused =
        TestApp::start(Backend::Postgres, url.clone(), tempfile::tempdir().unwrap(), new_key()).await;
    let message = refused.err().expect("a read-only database is refused").to_string();
    assert!(message.contains("reads only") && message.contains("default_transaction_read_only"), "{message}");
    assert!(message.contains(&name), "names the database: {message}");
}

#[tokio::test]
async fn a_read_only_sqlite_database_is_refused_at_start_naming_the_file() {
    let stopped = TestApp::spawn_on(Backend::Sqlite).await.stop().await;
    let path = db_path(stopped.dir.path());
    let url = format!("{}?mode=ro", stopped.database_url);
    let refused = TestApp::start(Backend::Sqlite, url, stopped.dir, stopped.key).await;
    let message = refused.err().expect("a read-only database is refused").to_string();
    assert!(message.contains(&path.display().to_string()), "names the file: {message}");
    assert!(message.contains("writable"), "says what to fix: {message}");
}
