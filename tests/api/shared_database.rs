//! Several credvault instances on one PostgreSQL database behave as one service.

use std::collections::HashMap;

use credvault::proto as pb;
use tonic::Code;

use crate::helpers::*;

async fn spawn_pair() -> (TestApp, TestApp) {
    let a = TestApp::spawn_on(Backend::Postgres).await;
    let b = a.another_instance().await;
    (a, b)
}

/// Audit rows per action for one credential.
async fn audit_counts(app: &TestApp, id: &str) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for action in app.audit_actions(id).await {
        *counts.entry(action).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_credential_stored_through_one_instance_is_served_by_another() {
    let (a, b) = spawn_pair().await;
    let stored = a.store_vultr("Shared", "shared-key").await;
    let got = b.get_by_id(&stored.id).await.unwrap();
    assert_eq!(got.secret.unwrap().secret, Some(vultr("shared-key")));
    let listed =
        b.list(pb::ListRequest { customer_id: a.customer_id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials[0].usage_count, 1);
    b.delete(&stored.id).await.unwrap();
    assert_status(a.get_by_id(&stored.id).await, Code::NotFound, "no active credential");
}

#[tokio::test]
async fn an_instance_that_served_a_credential_refuses_it_once_another_deleted_it() {
    let (a, b) = spawn_pair().await;
    let stored = a.store_vultr("Served then deleted", "k").await;
    a.get_by_id(&stored.id).await.unwrap();
    b.delete(&stored.id).await.unwrap();
    assert_status(a.get_by_id(&stored.id).await, Code::NotFound, "no active credential");
    let counts = audit_counts(&a, &stored.id).await;
    assert_eq!((counts["used"], counts["deleted"]), (1, 1), "{counts:?}");
}

#[tokio::test]
async fn concurrent_stores_of_one_name_yield_exactly_one_success() {
    let (a, b) = spawn_pair().await;
    let n = 12;
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut client = if i % 2 == 0 { a.client.clone() } else { b.client.clone() };
        let request = store_request(&a.customer_id, "Contended", vultr(&format!("key-{i}")));
        tasks.push(tokio::spawn(async move { client.store(request).await }));
    }
    let (mut ok, mut exists) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) if status.code() == Code::AlreadyExists => exists += 1,
            Err(status) => panic!("unexpected status {status:?}"),
        }
    }
    assert_eq!((ok, exists), (1, n - 1));
    let db = a.db().await;
    assert_eq!(db.count("SELECT count(*) FROM cloud_credentials").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'created'").await, 1);
}

#[tokio::test]
async fn a_concurrent_burst_of_gets_loses_no_usage_update() {
    let (a, b) = spawn_pair().await;
    let stored = a.store_vultr("Busy", "busy-key").await;
    let per_instance = 40;
    let mut tasks = Vec::new();
    for app in [&a, &b] {
        for _ in 0..per_instance {
            let mut client = app.client.clone();
            let request = get_by_id(&stored.id);
            tasks.push(tokio::spawn(async move { client.get(request).await }));
        }
    }
    for task in tasks {
        task.await.unwrap().expect("every Get succeeds");
    }
    let listed =
        a.list(pb::ListRequest { customer_id: a.customer_id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials[0].usage_count, 2 * per_instance);
    let counts = audit_counts(&a, &stored.id).await;
    assert_eq!(counts.get("used"), Some(&(2 * per_instance)));
    assert_eq!(counts.get("created"), Some(&1));
}

#[tokio::test]
async fn groups_of_gets_over_shared_credentials_on_two_instances_neither_deadlock_nor_miscount() {
    let (a, b) = spawn_pair().await;
    let mut ids = Vec::new();
    for n in 0..6 {
        ids.push(a.store_vultr(&format!("Shared {n}"), &format!("key-{n}")).await.id);
    }
    // The instances walk the credentials in opposite orders, so their groups hold the same rows
    // in different orders.
    let rounds = 10;
    let mut tasks = Vec::new();
    for (app, order) in [(&a, ids.clone()), (&b, ids.iter().rev().cloned().collect::<Vec<_>>())] {
        for _ in 0..rounds {
            for id in &order {
                let mut client = app.client.clone();
                let request = get_by_id(id);
                tasks.push(tokio::spawn(async move { client.get(request).await }));
            }
        }
    }
    for task in tasks {
        task.await.unwrap().expect("every Get succeeds");
    }
    let listed =
        a.list(pb::ListRequest { customer_id: a.customer_id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(listed.credentials.len(), ids.len());
    for credential in &listed.credentials {
        assert_eq!(credential.usage_count, 2 * rounds, "{}", credential.credential_name);
        assert_eq!(audit_counts(&a, &credential.id).await.get("used"), Some(&(2 * rounds)));
    }
}

#[tokio::test]
async fn delete_racing_gets_on_two_instances_leaves_a_consistent_record() {
    let (a, b) = spawn_pair().await;
    let stored = a.store_vultr("Racing", "racing-key").await;
    let mut gets = Vec::new();
    for app in [&a, &b] {
        for _ in 0..20 {
            let mut client = app.client.clone();
            let request = get_by_id(&stored.id);
            gets.push(tokio::spawn(async move { client.get(request).await }));
        }
    }
    let mut deleters = Vec::new();
    for app in [&a, &b] {
        let mut client = app.client.clone();
        let request = pb::DeleteRequest { credential_id: stored.id.clone() };
        deleters.push(tokio::spawn(async move { client.delete(request).await }));
    }
    let mut served = 0i64;
    for task in gets {
        match task.await.unwrap() {
            Ok(_) => served += 1,
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
    }
    let deleted: Vec<_> = {
        let mut results = Vec::new();
        for task in deleters {
            results.push(task.await.unwrap());
        }
        results
    };
    let successes = deleted.iter().filter(|r| r.is_ok()).count();
    assert_eq!(successes, 1, "exactly one Delete wins: {deleted:?}");
    for failed in deleted.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(failed.code(), Code::NotFound);
    }

    // Afterwards: gone everywhere, and the record matches what callers were told.
    assert_status(b.get_by_id(&stored.id).await, Code::NotFound, "no active credential");
    let all = a
        .list(pb::ListRequest {
            customer_id: a.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.credentials[0].usage_count, served);
    let counts = audit_counts(&a, &stored.id).await;
    assert_eq!(counts.get("used").copied().unwrap_or(0), served);
    assert_eq!(counts.get("deleted"), Some(&1));
    assert_eq!(counts.get("created"), Some(&1));
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let (url, dir) = fresh_database(Backend::Postgres).await;
    let key = new_key();
    let mut starts = Vec::new();
    for _ in 0..4 {
        let (url, key) = (url.clone(), key.clone());
        starts.push(tokio::spawn(async move {
            TestApp::start(Backend::Postgres, url, tempfile::tempdir().unwrap(), key).await
        }));
    }
    let mut apps = Vec::new();
    for start in starts {
        apps.push(start.await.unwrap().expect("every instance starts"));
    }
    let db = apps[0].db().await;
    let applied = db.count("SELECT count(*) FROM _sqlx_migrations").await;
    assert!(applied >= 2);
    assert_eq!(applied, db.count("SELECT count(DISTINCT version) FROM _sqlx_migrations").await, "each once");
    assert_eq!(db.count("SELECT count(*) FROM encryption_keys").await, 1);
    let stored = apps[1].store_vultr("After concurrent start", "k").await;
    assert!(apps[3].get_by_id(&stored.id).await.is_ok());
    drop(dir);
}

/// A failed migration holds nothing another instance's migration (or the next attempt) waits
/// for: the migrator's lock belongs to a session of its own, which ends with the attempt.
#[tokio::test]
async fn a_failed_migration_leaves_no_lock_behind() {
    use credvault::store::{PoolSettings, PostgresStore, Store as _};
    let (url, _dir) = fresh_database(Backend::Postgres).await;
    let db = crate::db::TestDb::connect(&url).await;
    // In the first migration's way, so that it fails.
    db.execute("CREATE TABLE customers (id int)").await;
    let failing = PostgresStore::connect_lazy(&url, &PoolSettings::default(), None).unwrap();
    let failed = failing.migrate().await.expect_err("the first migration cannot create customers");
    assert!(format!("{failed:?}").contains("customers"), "{failed:?}");
    db.execute("DROP TABLE customers").await;
    // The failed instance still runs (its pool's connections open) while another migrates.
    let other = PostgresStore::connect_lazy(&url, &PoolSettings::default(), None).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), other.migrate())
        .await
        .expect("the other instance does not wait on the failed attempt's lock")
        .expect("the other instance migrates");
    failing.migrate().await.expect("the failed instance's next attempt finds nothing to do");
    assert_eq!(
        db.count("SELECT count(*) FROM _sqlx_migrations WHERE success").await,
        db.count("SELECT max(version) FROM _sqlx_migrations").await
    );
    failing.close().await;
    other.close().await;
}
