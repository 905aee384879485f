//! The audit log is tamper-evident: any change, deletion, insertion or reordering of rows made
//! behind credvault's back is caught by `audit verify`, which names the first bad row.

use std::process::Command;

use credvault::crypto::{Keyring, MasterKey};
use credvault::domain::AuditEvent;
use credvault::vault::{AuditVerified, RequestContext, Tampered, verify_audit_log};
use secrecy::SecretString;

use crate::db::TestDb;
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
    let report = app.vault.chain_audit().await.unwrap();
    assert_eq!(report.sealed, 7, "refused: {:?}", report.refused);
    assert!(report.refused.is_empty());
    let chain = app.vault.directory().audit_chain(&RequestContext::operator()).await.unwrap();
    let in_log_order: Vec<_> = chain.rows.iter().map(|r| r.event.id).collect();
    let in_chain_order: Vec<_> = chain.links.iter().map(|l| l.audit_id).collect();
    assert_eq!(in_chain_order, in_log_order, "one request after another: sealed in the order written");
    (app, in_chain_order.iter().map(ToString::to_string).collect())
}

async fn verify(app: &TestApp) -> Result<AuditVerified, Tampered> {
    app.vault.verify_audit_log().await.unwrap()
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
    assert_eq!(app.vault.chain_audit().await.unwrap().sealed, 1);
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

async fn a_deleted_row_is_named(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    assert_eq!(
        app.db().await.execute(&format!("DELETE FROM credential_audit_log WHERE id = '{}'", rows[3])).await,
        1
    );
    assert_tampered(verify(&app).await, &rows[3], "missing from the log: it was deleted");
}

async fn a_row_deleted_with_its_link_is_caught_at_the_next(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    assert_eq!(db.execute(&format!("DELETE FROM credential_audit_log WHERE id = '{}'", rows[3])).await, 1);
    assert_eq!(db.execute(&format!("DELETE FROM audit_chain WHERE audit_id = '{}'", rows[3])).await, 1);
    assert_tampered(verify(&app).await, &rows[4], "links before it were deleted");
}

async fn deleting_the_newest_rows_is_caught_by_the_head(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    for id in &rows[5..] {
        assert_eq!(db.execute(&format!("DELETE FROM credential_audit_log WHERE id = '{id}'")).await, 1);
        assert_eq!(db.execute(&format!("DELETE FROM audit_chain WHERE audit_id = '{id}'")).await, 1);
    }
    assert_tampered(verify(&app).await, "(head)", "newest links were deleted");
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
    assert_eq!(app.vault.chain_audit().await.unwrap().refused, [forged]);
}

async fn reordered_rows_are_caught(backend: Backend) {
    let (app, rows) = with_history(backend).await;
    let db = app.db().await;
    let (a, b) = (&rows[1], &rows[2]);
    let placeholder = uuid::Uuid::new_v4();
    for (from, to) in [(a, &placeholder.to_string()), (b, a), (&placeholder.to_string(), b)] {
        let sql = format!("UPDATE audit_chain SET audit_id = '{to}' WHERE audit_id = '{from}'");
        assert_eq!(db.execute(&sql).await, 1);
    }
    assert_tampered(verify(&app).await, b, "reordered");
}

async fn forged_rows_do_not_hold_up_sealing(backend: Backend) {
    let (app, _) = with_history(backend).await;
    // PostgreSQL: a transaction older than the forgery, still running through every pass, holds
    // the passes' resume point below the forged rows, so each pass reads them again.
    let _older = match app.db().await {
        TestDb::Postgres(pool) => {
            let mut older = pool.begin().await.unwrap();
            sqlx::query("SELECT txid_current()").execute(&mut *older).await.unwrap();
            Some(older)
        }
        TestDb::Sqlite(_) => None,
    };
    // More forged rows than one sealing pass takes: they are refused once, then passed over.
    let sql = match backend {
        Backend::Sqlite => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) \
             INSERT INTO credential_audit_log (id, customer_id, action, action_details, created_at) \
             SELECT lower(hex(randomblob(4))) || '-0000-4000-8000-' || printf('%012d', i), '{}', 'used', \
             'routine access', 0 FROM n",
            app.customer_id
        ),
        Backend::Postgres => format!(
            "INSERT INTO credential_audit_log (id, customer_id, action, action_details, created_at) \
             SELECT gen_random_uuid(), '{}', 'used', 'routine access', now() FROM generate_series(1, 1500)",
            app.customer_id
        ),
    };
    assert_eq!(app.db().await.execute(&sql).await, 1500);
    let kept = app.store_vultr("After the forgery", "k9").await;
    app.get_by_id(&kept.id).await.unwrap();
    let report = app.vault.chain_audit().await.unwrap();
    assert_eq!((report.sealed, report.refused.len()), (2, 1500));
    let again = app.vault.chain_audit().await.unwrap();
    assert_eq!((again.sealed, again.refused.len()), (0, 0), "refused rows are reported once");
    app.get_by_id(&kept.id).await.unwrap();
    assert_eq!(app.vault.chain_audit().await.unwrap().sealed, 1);
    assert!(verify(&app).await.unwrap_err().problem.contains("inserted behind"));
}

backend_tests!(
    an_untouched_log_verifies,
    a_changed_row_is_named,
    a_deleted_row_is_named,
    a_row_deleted_with_its_link_is_caught_at_the_next,
    deleting_the_newest_rows_is_caught_by_the_head,
    an_inserted_row_is_named,
    reordered_rows_are_caught,
    forged_rows_do_not_hold_up_sealing,
    a_log_sealed_before_migration_4_still_verifies
);

/// SQLite: Gets' audit rows commit to the use journal with the use; the next audit row written
/// moves them into the log first, so the log's rowid order (the sealer's order) stays the order
/// in which rows committed; a sealing pass leaves the journal empty and the chain in that order.
#[tokio::test]
async fn gets_rows_reach_the_log_in_commit_order() {
    let app = TestApp::spawn_on(Backend::Sqlite).await;
    let kept = app.store_vultr("Kept", "k1").await;
    for _ in 0..2 {
        app.get_by_id(&kept.id).await.unwrap();
    }
    let TestDb::Sqlite(pool) = app.db().await else { unreachable!() };
    let in_log = || async {
        sqlx::query_scalar::<_, String>("SELECT action FROM credential_audit_log ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let journal = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM credential_use_journal")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let moved = in_log().await.len();
    assert_eq!(
        moved + usize::try_from(journal().await).unwrap(),
        3,
        "created + 2 used, in the log or the journal"
    );
    app.delete(&kept.id).await.unwrap();
    assert_eq!(in_log().await, ["created", "used", "used", "deleted"]);
    assert_eq!(journal().await, 0);
    app.get_by_id(&app.store_vultr("Other", "k2").await.id).await.unwrap();
    app.vault.chain_audit().await.unwrap();
    assert_eq!(journal().await, 0, "sealing moves the journal first");
    let chain = app.vault.directory().audit_chain(&RequestContext::operator()).await.unwrap();
    assert_eq!(chain.links.len(), 6);
    let in_chain_order: Vec<_> = chain.links.iter().map(|l| l.audit_id).collect();
    let in_log_order: Vec<_> = chain.rows.iter().map(|r| r.event.id).collect();
    assert_eq!(in_chain_order, in_log_order);
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 6, unsealed: 0 });
}

/// PostgreSQL: a row written by a transaction that began before newer rows were sealed, and
/// committed after, is still sealed (the sealer resumes from the oldest running transaction).
#[tokio::test]
async fn a_row_committed_late_by_an_older_transaction_is_sealed() {
    let (app, _) = with_history(Backend::Postgres).await;
    let TestDb::Postgres(pool) = app.db().await else { unreachable!() };
    let key = MasterKey::from_base64(&SecretString::from(app.key.clone())).unwrap();
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        credential_id: None,
        customer_id: Some(credvault::domain::CustomerId::parse(&app.customer_id, "customer_id").unwrap()),
        action: "used".into(),
        details: "written by a slow transaction".into(),
        ip_address: None,
        actor: None,
        created_at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
    };
    let mut slow = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO credential_audit_log (id, customer_id, action, action_details, created_at, row_mac) \
         VALUES ($1, $2::uuid, $3, $4, $5, $6)",
    )
    .bind(event.id)
    .bind(&app.customer_id)
    .bind(&event.action)
    .bind(&event.details)
    .bind(event.created_at)
    .bind(event.mac(&Keyring::single(&key)).to_vec())
    .execute(&mut *slow)
    .await
    .unwrap();

    let kept = app.store_vultr("Meanwhile", "k4").await;
    app.get_by_id(&kept.id).await.unwrap();
    assert_eq!(app.vault.chain_audit().await.unwrap().sealed, 2, "rows committed meanwhile are sealed");
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 9, unsealed: 0 });

    slow.commit().await.unwrap();
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 9, unsealed: 1 });
    assert_eq!(app.vault.chain_audit().await.unwrap().sealed, 1, "the late row is found");
    assert_eq!(verify(&app).await.unwrap(), AuditVerified { sealed: 10, unsealed: 0 });
}

#[tokio::test]
async fn the_cli_verifies_and_names_the_first_bad_row() {
    let (app, rows) = with_history(Backend::Sqlite).await;
    let run = || credvault(&app.database_url, &app.key, &["audit", "verify"]);
    let intact = run().await;
    assert!(intact.status.success(), "{}", String::from_utf8_lossy(&intact.stderr));
    assert!(String::from_utf8_lossy(&intact.stdout).contains("intact: 7 sealed rows"));

    app.db()
        .await
        .execute(&format!("UPDATE credential_audit_log SET actor = 'someone' WHERE id = '{}'", rows[0]))
        .await;
    let tampered = run().await;
    assert!(!tampered.status.success());
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert!(stderr.contains("TAMPERED") && stderr.contains(&rows[0]), "{stderr}");

    let mut without_key = Command::new(env!("CARGO_BIN_EXE_credvault"));
    without_key
        .args(["audit", "verify"])
        .env("CREDVAULT_DATABASE_URL", &app.database_url)
        .env_remove("CREDENTIAL_ENCRYPTION_KEY")
        .env_remove("CREDVAULT_KEY_FILE");
    let without_key = output(without_key).await;
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("CREDENTIAL_ENCRYPTION_KEY"));
}

#[tokio::test]
async fn the_server_seals_new_rows_on_its_own() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| credvault::config::Config {
        audit_chain_interval: std::time::Duration::from_millis(100),
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

/// A log sealed by the schema before the chain had a table of its own (migration 3: seal columns
/// on each row) migrates to it (4) and still verifies; its unsealed rows are sealed after.
async fn a_log_sealed_before_migration_4_still_verifies(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let key = MasterKey::generate();
    let signer = Keyring::single(&key);
    let customer = uuid::Uuid::new_v4();
    let events: Vec<AuditEvent> = (0..3)
        .map(|i| AuditEvent {
            id: uuid::Uuid::now_v7(),
            credential_id: None,
            customer_id: Some(credvault::domain::CustomerId::from_uuid(customer)),
            action: "used".into(),
            details: format!("event {i}"),
            ip_address: None,
            actor: None,
            created_at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000 + i).unwrap(),
        })
        .collect();
    // The first two sealed the old way, the third not yet.
    let mut prev = [0u8; 32];
    let mut inserts = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let mac = event.mac(&signer);
        let seq = i64::try_from(i).unwrap() + 1;
        let (seal_seq, seal_hash) = if seq <= 2 {
            prev = credvault::domain::chain_hash(&signer, &prev, seq, &mac).unwrap();
            (seq.to_string(), blob(backend, &prev))
        } else {
            ("NULL".into(), "NULL".into())
        };
        let created_at = match backend {
            Backend::Sqlite => format!("{}", event.created_at.unix_timestamp() * 1_000_000),
            Backend::Postgres => format!("to_timestamp({})", event.created_at.unix_timestamp()),
        };
        inserts.push(format!(
            "INSERT INTO credential_audit_log \
             (id, customer_id, action, action_details, created_at, row_mac, seal_seq, seal_hash) \
             VALUES ('{}', '{customer}', 'used', '{}', {created_at}, {}, {seal_seq}, {seal_hash})",
            event.id,
            event.details,
            blob(backend, &mac)
        ));
    }
    let head = credvault::domain::head_mac(&signer, 2, &prev);
    inserts.push(format!(
        "UPDATE audit_seal SET seq = 2, hash = {}, mac = {} WHERE id = 1",
        blob(backend, &prev),
        blob(backend, &head)
    ));
    let db = TestDb::connect_creating(&url).await;
    db.migrate_to_version_3().await;
    for sql in &inserts {
        assert_eq!(db.execute(sql).await, 1, "{sql}");
    }

    let signer_arc: std::sync::Arc<dyn credvault::domain::AuditSigner> =
        std::sync::Arc::new(Keyring::single(&key));
    let store = credvault::store::open(&url, &Default::default(), Some(signer_arc)).await.unwrap();
    store.migrate().await.unwrap();
    let verified = verify_audit_log(store.as_ref(), &signer).await.unwrap();
    assert_eq!(verified, Ok(AuditVerified { sealed: 2, unsealed: 1 }));
    assert_eq!(store.chain_audit(1_000).await.unwrap().sealed, 1);
    let verified = verify_audit_log(store.as_ref(), &signer).await.unwrap();
    assert_eq!(verified, Ok(AuditVerified { sealed: 3, unsealed: 0 }));
}

fn blob(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}
