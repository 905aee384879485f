//! The audit log is tamper-evident: any change, deletion, insertion or reordering of rows made
//! behind credvault's back is caught by `audit verify`, which names the first bad row.

use std::process::Command;

use credvault::crypto::{Keyring, MasterKey};
use credvault::vault::{AuditVerified, Tampered, verify_audit_log};
use secrecy::SecretString;

use crate::helpers::*;

/// A server with some history (store, gets, a delete, a denial), all sealed; and the ids of its
/// audit rows in chain order.
async fn with_history(backend: Backend) -> (TestApp, Vec<String>) {
    let app = TestApp::spawn_on(backend).await;
    let kept = app.store_vultr("Kept", "k1").await;
    for _ in 0..3 {
        app.get_by_id(&kept.id).await.unwrap();
    }
    let gone = app.store_vultr("Gone", "k2").await;
    app.delete(&gone.id).await.unwrap();
    let (_, reader) = app.token("credentials:read", "*", None).await;
    assert!(app.client_with(Some(&reader)).await.get(get_by_id(&kept.id)).await.is_err(), "denied");
    let report = app.vault.seal_audit().await.unwrap();
    let (_, all) = app.vault.store().audit_chain().await.unwrap();
    let refused: Vec<_> = all.iter().filter(|r| report.refused.contains(&r.event.id)).collect();
    assert_eq!(report.sealed, 7, "{refused:#?}");
    assert!(report.refused.is_empty());
    let (_, rows) = app.vault.store().audit_chain().await.unwrap();
    (app, rows.iter().map(|r| r.event.id.to_string()).collect())
}

async fn verify(app: &TestApp) -> Result<AuditVerified, Tampered> {
    let key = MasterKey::from_base64(&SecretString::from(app.key.clone())).unwrap();
    verify_audit_log(app.vault.store().as_ref(), &Keyring::single(&key)).await.unwrap()
}

#[track_caller]
fn assert_tampered(result: Result<AuditVerified, Tampered>, row: &str, fragment: &str) {
    let tampered = result.expect_err("tampering must be caught");
    assert_eq!(tampered.row, row, "{tampered}");
    assert!(tampered.problem.contains(fragment), "{tampered}");
}

async fn an_untouched_log_verifies(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 7, unsealed: 0 });
    // New rows are covered by their MAC before they are sealed, and chained after.
    app.store_vultr("Later", "k3").await;
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 7, unsealed: 1 });
    assert_eq!(app.vault.seal_audit().await.unwrap().sealed, 1);
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 8, unsealed: 0 });
    assert_eq!(rows.len(), 7);
}

async fn a_changed_row_is_named(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    let sql =
        format!("UPDATE credential_audit_log SET action_details = 'nothing to see' WHERE id = '{}'", rows[2]);
    assert_eq!(db.execute(&sql).await, 1);
    assert_tampered(verify(&app).await, &rows[2], "changed");
}

async fn a_deleted_row_is_caught_at_the_next(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    app.db().await.execute(&format!("DELETE FROM credential_audit_log WHERE id = '{}'", rows[3])).await;
    assert_tampered(verify(&app).await, &rows[4], "deleted");
}

async fn deleting_the_newest_rows_is_caught_by_the_head(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    for id in &rows[5..] {
        db.execute(&format!("DELETE FROM credential_audit_log WHERE id = '{id}'")).await;
    }
    assert_tampered(verify(&app).await, "(head)", "newest sealed rows were deleted");
}

async fn an_inserted_row_is_named(backend: Backend) {
    let (app, _) = with_history(backend).await;
    let forged = uuid::Uuid::new_v4();
    let time = match backend {
        Backend::Sqlite => "0",
        Backend::Postgres => "now()",
    };
    let sql = format!(
        "INSERT INTO credential_audit_log (id, customer_id, action, action_details, actor, created_at) \
         VALUES ('{forged}', '{}', 'used', 'routine access', 'collector', {time})",
        app.customer_id
    );
    app.db().await.execute(&sql).await;
    assert_tampered(verify(&app).await, &forged.to_string(), "inserted behind");
    // The sealer refuses to chain it, too.
    assert_eq!(app.vault.seal_audit().await.unwrap().refused, [forged]);
}

async fn reordered_rows_are_caught(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    let (a, b) = (&rows[1], &rows[2]);
    db.execute(&format!("UPDATE credential_audit_log SET seal_seq = -1 WHERE id = '{a}'")).await;
    db.execute(&format!("UPDATE credential_audit_log SET seal_seq = 2 WHERE id = '{b}'")).await;
    db.execute(&format!("UPDATE credential_audit_log SET seal_seq = 3 WHERE id = '{a}'")).await;
    assert_tampered(verify(&app).await, b, "reordered");
}

backend_tests!(
    an_untouched_log_verifies,
    a_changed_row_is_named,
    a_deleted_row_is_caught_at_the_next,
    deleting_the_newest_rows_is_caught_by_the_head,
    an_inserted_row_is_named,
    reordered_rows_are_caught
);

#[tokio::test]
async fn the_cli_verifies_and_names_the_first_bad_row() {
    let (app, rows) = with_history(Backend::Sqlite).await;
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_credvault"))
            .args(["audit", "verify"])
            .env("CREDVAULT_DATABASE_URL", &app.database_url)
            .env("CREDENTIAL_ENCRYPTION_KEY", &app.key)
            .env_remove("CREDVAULT_KEY_FILE")
            .output()
            .unwrap()
    };
    let intact = run();
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stderr));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact: 7 sealed rows"));

    app.db()
        .await
        .execute(&format!("UPDATE credential_audit_log SET actor = 'someone' WHERE id = '{}'", rows[0]))
        .await;
    let tampered = run();
    assert!(!tampered.status.success());
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert!(stderr.contains("TAMPERED") && stderr.contains(&rows[0]), "{stderr}");

    let without_key = Command::new(env!("CARGO_BIN_EXE_credvault"))
        .args(["audit", "verify"])
        .env("CREDVAULT_DATABASE_URL", &app.database_url)
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("CREDENTIAL_ENCRYPTION_KEY"));
}

#[tokio::test]
async fn the_server_seals_new_rows_on_its_own() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| credvault::config::Config {
        audit_seal_interval: std::time::Duration::from_millis(100),
        ..config
    })
    .await;
    app.store_vultr("Sealed soon", "k").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let verified = verify(&app).await.unwrap();
        if verified.unsealed == 0 {
            assert_eq!(verified.sealed, 1);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not sealed within 10 s: {verified:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
