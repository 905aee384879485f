//! Delete's recovery window, on both backends: restore before it ends, the purger after it,
//! PurgeCredential's own scope, a cancelled customer's credentials, several purgers at once.

use std::time::Duration;

use credvault::proto as pb;
use tonic::Code;

use crate::helpers::*;

async fn set_window(app: &TestApp, customer: &str, seconds: i64) -> Result<pb::Customer, tonic::Status> {
    let bearer = credvault::client::Bearer::new(&app.token).unwrap();
    let mut customers =
        pb::customer_service_client::CustomerServiceClient::with_interceptor(app.channel().await, bearer);
    let request = pb::SetRecoveryWindowRequest {
        customer_id: customer.to_owned(),
        recovery_window: Some(prost_types::Duration { seconds, nanos: 0 }),
    };
    customers.set_recovery_window(request).await.map(|r| r.into_inner().customer.unwrap())
}

fn restore(id: &str) -> pb::RestoreCredentialRequest {
    pb::RestoreCredentialRequest { credential_id: id.to_owned() }
}

fn purge(id: &str) -> pb::PurgeCredentialRequest {
    pb::PurgeCredentialRequest { credential_id: id.to_owned() }
}

async fn one(app: &TestApp, id: &str) -> pb::Credential {
    let all = app
        .list(pb::ListRequest {
            customer_id: app.customer_id.clone(),
            include_inactive: true,
            ..Default::default()
        })
        .await
        .unwrap();
    all.credentials.into_iter().find(|c| c.id == id).expect("listed")
}

/// Waits (a bounded while) until the purger has purged `id`.
async fn purged(app: &TestApp, id: &str) -> pb::Credential {
    for _ in 0..100 {
        let credential = one(app, id).await;
        if credential.purged_at.is_some() {
            return credential;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("credential {id} was not purged within 10 s");
}

async fn a_deleted_credential_is_restored_within_its_window_and_purged_after_it(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let mut client = app.client.clone();
    let customer = set_window(&app, &app.customer_id, 2).await.unwrap();
    assert_eq!(customer.recovery_window, Some(prost_types::Duration { seconds: 2, nanos: 0 }));
    let stored = app.store_vultr("Recoverable", "key-one").await;

    let deleted = app.delete(&stored.id).await.unwrap();
    let deleted_at = deleted.updated_at.unwrap();
    let scheduled = deleted.scheduled_purge_at.expect("a delete schedules the purge");
    assert_eq!(scheduled.seconds - deleted_at.seconds, 2, "deleted_at plus the customer's window");
    client.restore_credential(restore(&stored.id)).await.unwrap();

    let restored = one(&app, &stored.id).await;
    assert!(restored.is_active && restored.scheduled_purge_at.is_none());
    assert_eq!(crate::versions::vultr_key(&app.get_by_id(&stored.id).await.unwrap()), "key-one");
    assert_status(
        client.restore_credential(restore(&stored.id)).await,
        Code::FailedPrecondition,
        "is not deleted",
    );

    // While it is deleted, another credential may take its name; restoring then is refused.
    app.delete(&stored.id).await.unwrap();
    let taker = app.store_vultr("Recoverable", "key-two").await;
    assert_status(client.restore_credential(restore(&stored.id)).await, Code::AlreadyExists, "named");
    app.delete(&taker.id).await.unwrap();

    // After the window, the purger destroys every version, and it cannot come back.
    let gone = purged(&app, &stored.id).await;
    assert!(!gone.is_active && gone.scheduled_purge_at.is_none() && gone.current_version == 0);
    let versions = client
        .list_versions(pb::ListVersionsRequest { credential_id: stored.id.clone(), ..Default::default() })
        .await;
    assert_status(versions, Code::NotFound, "no active credential");
    let db = app.db().await;
    let left = format!(
        "SELECT count(*) FROM credential_versions WHERE credential_id = '{}' \
         AND (encrypted_credentials IS NOT NULL OR state <> 'destroyed')",
        stored.id
    );
    assert_eq!(db.count_owned(left).await, 0, "no ciphertext is left");
    assert_status(
        client.restore_credential(restore(&stored.id)).await,
        Code::FailedPrecondition,
        "was purged",
    );
    let actions = app.audit_actions(&stored.id).await;
    assert_eq!(actions.iter().filter(|a| *a == "purged").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| *a == "restored").count(), 1, "{actions:?}");
    let purger_rows = format!(
        "SELECT count(*) FROM credential_audit_log WHERE action = 'purged' AND actor = 'purger' AND credential_id = '{}'",
        stored.id
    );
    assert_eq!(db.count_owned(purger_rows).await, 1, "the purger names itself in the audit log");
}

async fn purge_takes_its_own_scope_and_destroys_at_once(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let stored = app.store_vultr("Purgeable", "key-one").await;
    let (_, writer) = app.token("credentials:write,credentials:read", &app.customer_id, None).await;
    let mut writer = app.client_with(Some(&writer)).await;
    assert_status(
        writer.purge_credential(purge(&stored.id)).await,
        Code::PermissionDenied,
        "credentials:purge",
    );
    assert_eq!(app.get_by_id(&stored.id).await.unwrap().version, 1, "nothing was purged");

    let (_, purger) = app.token("credentials:purge", &app.customer_id, None).await;
    let mut purger = app.client_with(Some(&purger)).await;
    let purged = purger.purge_credential(purge(&stored.id)).await.unwrap().into_inner().credential.unwrap();
    assert!(!purged.is_active && purged.purged_at.is_some() && purged.current_version == 0);
    assert_status(app.get_by_id(&stored.id).await, Code::NotFound, "no active credential");
    assert_status(
        purger.purge_credential(purge(&stored.id)).await,
        Code::FailedPrecondition,
        "purged already",
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_status(purger.purge_credential(purge(&unknown)).await, Code::NotFound, "no credential");

    // Another customer's credential is as absent as an unknown one.
    let other = app.create_customer().await;
    let (_, outsider) = app.token("credentials:purge,credentials:write", &other, None).await;
    let mut outsider = app.client_with(Some(&outsider)).await;
    let target = app.store_vultr("Not yours", "key-two").await;
    assert_status(outsider.purge_credential(purge(&target.id)).await, Code::NotFound, "no credential");
    assert_status(outsider.restore_credential(restore(&target.id)).await, Code::NotFound, "no credential");
    assert_eq!(app.get_by_id(&target.id).await.unwrap().version, 1);
    let denied = app.audit_actions(&target.id).await.iter().filter(|a| *a == "denied").count();
    assert_eq!(denied, 2);
}

async fn a_cancelled_customers_credentials_are_deleted_and_scheduled(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let first = app.store_vultr("One", "key-one").await;
    let second = app.store(store_request(&app.customer_id, "Two", aws("AKIA", "s"))).await.unwrap();
    let bearer = credvault::client::Bearer::new(&app.token).unwrap();
    let mut customers =
        pb::customer_service_client::CustomerServiceClient::with_interceptor(app.channel().await, bearer);
    customers
        .set_customer_status(pb::SetCustomerStatusRequest {
            customer_id: app.customer_id.clone(),
            status: pb::CustomerStatus::Cancelled as i32,
        })
        .await
        .unwrap();
    for id in [&first.id, &second.id] {
        let credential = one(&app, id).await;
        assert!(!credential.is_active && credential.scheduled_purge_at.is_some(), "{credential:?}");
        assert!(app.audit_actions(id).await.iter().any(|a| a == "deleted"));
    }
    let summary = app.summary().await;
    let pending: Vec<(i64, i64)> = summary.providers.iter().map(|p| (p.active, p.pending_deletion)).collect();
    assert_eq!(pending, vec![(0, 1), (0, 1)], "each provider: none active, one pending deletion");

    // The window's bounds.
    assert_invalid_field(
        set_window(&app, &app.customer_id, 366 * 24 * 3600).await,
        "recovery_window",
        "365 days",
    );
    assert_invalid_field(set_window(&app, &app.customer_id, -1).await, "recovery_window", "negative");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_status(set_window(&app, &unknown, 60).await, Code::NotFound, "not found");
}

backend_tests!(
    a_deleted_credential_is_restored_within_its_window_and_purged_after_it,
    purge_takes_its_own_scope_and_destroys_at_once,
    a_cancelled_customers_credentials_are_deleted_and_scheduled,
);

/// Several instances' purgers on one database: each due credential is purged exactly once.
#[tokio::test]
async fn several_purgers_purge_each_credential_once() {
    let app = TestApp::spawn_on(Backend::Postgres).await;
    let others = [app.another_instance().await, app.another_instance().await];
    set_window(&app, &app.customer_id, 0).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        let stored = app.store_vultr(&format!("Due {i}"), "key").await;
        app.delete(&stored.id).await.unwrap();
        ids.push(stored.id);
    }
    for id in &ids {
        purged(&app, id).await;
    }
    let db = app.db().await;
    let rows = db.count("SELECT count(*) FROM credential_audit_log WHERE action = 'purged'").await;
    assert_eq!(rows, 8, "one purge, and one audit row, per credential");
    drop(others);
}
