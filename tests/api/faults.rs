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
