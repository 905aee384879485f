//! Per-customer keys and crypto-shredding, end to end: `PurgeCustomer` destroys a cancelled
//! customer's key (by force before its recovery window ends, or by the purger after it), after
//! which nothing opens that customer's secrets on any instance, not even a backup taken before
//! the purge and restored after it, while every other customer's secrets open as before.

use credvault::proto as pb;
use tonic::Code;

use crate::helpers::*;

fn set_status(customer_id: &str, status: pb::CustomerStatus) -> pb::SetCustomerStatusRequest {
    pb::SetCustomerStatusRequest { customer_id: customer_id.into(), status: status.into() }
}

fn purge(customer_id: &str, force: bool) -> pb::PurgeCustomerRequest {
    pb::PurgeCustomerRequest { customer_id: customer_id.into(), force }
}

/// Another customer with one stored secret: (customer id, credential id).
async fn bystander(app: &TestApp) -> (String, String) {
    let customer = app.create_customer().await;
    let stored = app.store(store_request(&customer, "Bystander", vultr("bystander-secret"))).await.unwrap();
    (customer, stored.id)
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    app.db()
        .await
        .count_owned(format!("SELECT count(*) FROM credential_audit_log WHERE action = '{action}'"))
        .await
}

/// PurgeCustomer: refused for a customer not cancelled, before its window without force, for a
/// token that is not an admin of every customer (audited), and a second time; by force it
/// destroys the key, on PostgreSQL with a second instance that had the key in memory. Then Get
/// answers FAILED_PRECONDITION on every instance, the ciphertext is still stored and nothing
/// opens it, the customer cannot be brought back, another customer is untouched, the audit log
/// verifies, and `key status` counts the purge.
async fn a_purged_customers_secrets_can_never_be_opened_again(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let other = match backend {
        Backend::Postgres => Some(app.another_instance().await),
        Backend::Sqlite => None,
    };
    let instances: Vec<&TestApp> = std::iter::once(&app).chain(other.as_ref()).collect();
    let kept = app.store_vultr("Kept", "kept-secret").await;
    let (other_customer, other_credential) = bystander(&app).await;
    for instance in &instances {
        // Each instance now holds the customer's key in memory.
        instance.get_by_id(&kept.id).await.unwrap();
    }
    let customer = app.customer_id.clone();
    let mut admin = app.customers(&app.token).await;

    let active = admin.purge_customer(purge(&customer, true)).await;
    assert_status(active, Code::FailedPrecondition, "is not cancelled");
    admin.set_customer_status(set_status(&customer, pb::CustomerStatus::Cancelled)).await.unwrap();
    let early = admin.purge_customer(purge(&customer, false)).await;
    let early = assert_status(early, Code::FailedPrecondition, "recovery window ends at");
    assert!(early.message().contains("force"), "{}", early.message());
    let (_, one_customer) = app.token("admin", &customer, None).await;
    let denied_before = audit_count(&app, "denied").await;
    let refused = app.customers(&one_customer).await.purge_customer(purge(&customer, true)).await;
    assert_status(refused, Code::PermissionDenied, "");
    assert!(audit_count(&app, "denied").await > denied_before, "the refusal is audited");
    let unknown = admin.purge_customer(purge(&uuid::Uuid::new_v4().to_string(), true)).await;
    assert_status(unknown, Code::NotFound, "not found");

    let purged = admin.purge_customer(purge(&customer, true)).await.unwrap().into_inner();
    assert_eq!((purged.customer_id.as_str(), purged.forced), (customer.as_str(), true));
    assert!(purged.purged_at.is_some());
    let again = admin.purge_customer(purge(&customer, true)).await;
    assert_status(again, Code::FailedPrecondition, "purged already");

    // To anyone not allowed to see the customer, it is still simply not there.
    let (_, stranger) = app.token("secrets:read", &other_customer, None).await;
    let hidden = app.client_with(Some(&stranger)).await.get(get_by_id(&kept.id)).await;
    assert_status(hidden, Code::NotFound, "no active credential");
    for instance in &instances {
        let got = instance.get_by_id(&kept.id).await;
        assert_status(got, Code::FailedPrecondition, "was purged");
        let preferred = instance.get_by_provider(&customer, pb::Provider::Vultr).await;
        assert_status(preferred, Code::FailedPrecondition, "was purged");
        let theirs = instance.get_by_id(&other_credential).await.unwrap();
        assert_eq!(theirs.secret.unwrap().secret, Some(vultr("bystander-secret")));
    }
    let back = admin.set_customer_status(set_status(&customer, pb::CustomerStatus::Active)).await;
    assert_status(back, Code::FailedPrecondition, "stays cancelled");

    // The ciphertext is still stored; what opened it is not.
    let db = app.db().await;
    let sealed = db
        .count_owned(format!(
            "SELECT count(*) FROM credential_versions v JOIN cloud_credentials c ON c.id = v.credential_id \
             WHERE c.customer_id = '{customer}' AND v.encrypted_credentials IS NOT NULL"
        ))
        .await;
    assert_eq!(sealed, 1, "the ciphertext stays, unreadable");
    let keys = db
        .count_owned(format!(
            "SELECT count(*) FROM customer_keys WHERE customer_id = '{customer}' AND wrapped IS NULL"
        ))
        .await;
    assert_eq!(keys, 1, "the key is gone");
    let purged_rows = db
        .texts("SELECT action_details FROM credential_audit_log WHERE action = 'customer_purged'".into())
        .await;
    assert_eq!(purged_rows.len(), 1);
    assert!(purged_rows[0].contains("by force"), "{purged_rows:?}");

    app.vault.chain_audit().await.unwrap();
    let verified = credvault(&app.database_url, &app.key, &["audit", "verify"]).await;
    assert!(verified.status.success(), "{}", text(&verified));
    let status = credvault(&app.database_url, &app.key, &["key", "status"]).await;
    assert!(text(&status).contains("purged customers (keys destroyed): 1"), "{}", text(&status));
}

/// The purger destroys a cancelled customer's key by itself once its recovery window (here 0)
/// has passed, audited as the purger's.
async fn the_purger_destroys_a_cancelled_customers_key_when_its_window_ends(backend: Backend) {
    let app = TestApp::spawn_on(backend).await;
    let kept = app.store_vultr("Kept", "kept-secret").await;
    let customer = app.customer_id.clone();
    let mut admin = app.customers(&app.token).await;
    let window = pb::SetRecoveryWindowRequest {
        customer_id: customer.clone(),
        recovery_window: Some(prost_types::Duration { seconds: 0, nanos: 0 }),
    };
    admin.set_recovery_window(window).await.unwrap();
    admin.set_customer_status(set_status(&customer, pb::CustomerStatus::Cancelled)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while audit_count(&app, "customer_purged").await == 0 {
        assert!(std::time::Instant::now() < deadline, "the purger did not purge the customer");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let actors = app
        .db()
        .await
        .texts("SELECT actor FROM credential_audit_log WHERE action = 'customer_purged'".into())
        .await;
    assert_eq!(actors, ["purger"]);
    let got = app.get_by_id(&kept.id).await;
    assert_status(got, Code::FailedPrecondition, "was purged");
}

backend_tests!(
    a_purged_customers_secrets_can_never_be_opened_again,
    the_purger_destroys_a_cancelled_customers_key_when_its_window_ends,
);

/// A backup taken before a purge and restored after it (`credvault restore`): the purged
/// customer's key, which the backup still holds, is destroyed again in the restored database, so
/// its secrets stay unreadable while every other customer's open; the audit log verifies.
#[tokio::test]
async fn a_backup_from_before_a_purge_restores_without_the_purged_customers_key() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let kept = app.store_vultr("Kept", "kept-secret").await;
    let (_, other_credential) = bystander(&app).await;
    let customer = app.customer_id.clone();
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("before-the-purge.db");
    let file = file.to_str().unwrap();
    let backup = credvault(&app.database_url, &app.key, &["backup", "--to", file]).await;
    assert!(backup.status.success(), "{}", text(&backup));

    let mut admin = app.customers(&app.token).await;
    admin.set_customer_status(set_status(&customer, pb::CustomerStatus::Cancelled)).await.unwrap();
    admin.purge_customer(purge(&customer, true)).await.unwrap();
    let stopped = app.stop().await;

    let restored =
        credvault(&stopped.database_url, &stopped.key, &["restore", "--from", file, "--replace"]).await;
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("1 customer purges made since the backup were applied again"),
        "{}",
        text(&restored)
    );

    let mut app = stopped.restart().await.expect("the restored vault starts");
    app.customer_id = customer;
    // In the backup the customer was active; its secret is there, its key is not.
    let got = app.get_by_id(&kept.id).await;
    assert_status(got, Code::FailedPrecondition, "was purged");
    let theirs = app.get_by_id(&other_credential).await.unwrap();
    assert_eq!(theirs.secret.unwrap().secret, Some(vultr("bystander-secret")));
    app.vault.chain_audit().await.unwrap();
    let verified = credvault(&app.database_url, &app.key, &["audit", "verify"]).await;
    assert!(verified.status.success(), "{}", text(&verified));
}
