//! Unit tests of the SQLite store: start-up, the write path's failures, close, migrations and
//! the audit listing's plan.

use super::*;
use crate::store::{AuditStore as _, CredentialStore as _, CustomerStore as _};

/// A store on a fresh file, and a Get's claim on a credential that does not exist: it goes
/// through the group committer and its sync like any, and commits nothing.
async fn store_and_claim() -> (tempfile::TempDir, SqliteStore, impl Fn() -> (UseClaim, AuditEntry)) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let store = SqliteStore::connect(&url, None).await.unwrap();
    store.migrate().await.unwrap();
    let claim = || {
        let (id, customer_id) = (CredentialId::new_random(), CustomerId::new_random());
        let audit = AuditEntry {
            credential_id: Some(id),
            customer_id: Some(customer_id),
            action: AuditAction::Used,
            details: "test".into(),
            ip_address: None,
            actor: None,
        };
        (
            UseClaim {
                id,
                customer_id,
                etag: Some(crate::domain::Etag::from_revision(1)),
                version: 1,
                sealed: Arc::from(&b"x"[..]),
            },
            audit,
        )
    };
    (dir, store, claim)
}

/// A Vultr credential of `owner` named `name`, sealed as `sealed`.
fn new_credential(owner: CustomerId, name: &str, sealed: &[u8]) -> NewCredential {
    NewCredential {
        id: CredentialId::new_random(),
        customer_id: owner,
        provider: Provider::Vultr,
        name: crate::domain::CredentialName::parse(name, "name").unwrap(),
        credential_type: crate::domain::CredentialType::parse_or_default("", Provider::Vultr, "type")
            .unwrap(),
        permissions: crate::domain::Permission::ReadOnly,
        sealed: sealed.to_vec(),
        key_version: Some(1),
        make_default: false,
        idempotency: None,
        now: OffsetDateTime::now_utc(),
    }
}

/// The audit row of storing `new`.
fn audit(new: &NewCredential) -> AuditEntry {
    AuditEntry {
        credential_id: Some(new.id),
        customer_id: Some(new.customer_id),
        action: AuditAction::Created,
        details: "test".into(),
        ip_address: None,
        actor: None,
    }
}

fn customer() -> NewCustomer {
    NewCustomer {
        id: CustomerId::new_random(),
        email: format!("{}@example.com", uuid::Uuid::new_v4()),
        company_name: "C".into(),
        status: CustomerStatus::Active,
        tier: crate::domain::SubscriptionTier::Free,
    }
}

#[tokio::test]
async fn a_failed_wal_sync_stops_every_write_until_a_restart() {
    let (dir, store, claim) = store_and_claim().await;
    let (c, a) = claim();
    assert!(store.record_use(c, a, OffsetDateTime::now_utc()).await.unwrap().is_none());
    store.ensure_customer(&customer()).await.unwrap();

    store.wal.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let (c, a) = claim();
    let failed = store.record_use(c, a, OffsetDateTime::now_utc()).await;
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "{failed:?}");
    // Not retried: every write after it fails, on the committer and on the sqlx writer,
    // and readiness's probe reports it; reads still answer.
    let (c, a) = claim();
    let later = store.record_use(c, a, OffsetDateTime::now_utc()).await;
    assert!(matches!(later, Err(StoreError::Unavailable(_))), "{later:?}");
    let store_write = store.ensure_customer(&customer()).await;
    assert!(matches!(store_write, Err(StoreError::Unavailable(_))), "{store_write:?}");
    assert!(matches!(store.check_writable().await, Err(StoreError::Unavailable(_))));
    assert!(!store.customer_exists(CustomerId::new_random()).await.unwrap());
    store.close().await;

    // A restart recovers from what is on disk.
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let restarted = SqliteStore::connect(&url, None).await.unwrap();
    restarted.check_writable().await.unwrap();
    restarted.ensure_customer(&customer()).await.unwrap();
    restarted.close().await;
}

/// A Store committed in a group is answered only once the WAL is synced: a failed sync fails it
/// (and stops writing), where a Store that returned at its commit would report a write the
/// disk may not hold.
#[tokio::test]
async fn a_store_is_answered_only_after_the_wal_holding_it_is_synced() {
    let (_dir, store, _) = store_and_claim().await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let new = |name: &str| new_credential(owner.id, name, b"sealed");
    let first = new("First");
    assert!(matches!(store.insert_credential(first.clone(), audit(&first)).await, Ok(Inserted::Created(_))));

    store.wal.fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = new("Second");
    let failed = store.insert_credential(second.clone(), audit(&second)).await;
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "{failed:?}");
    let third = new("Third");
    let later = store.insert_credential(third.clone(), audit(&third)).await;
    assert!(matches!(later, Err(StoreError::Unavailable(_))), "writing stopped: {later:?}");
    store.close().await;
}

#[tokio::test]
async fn after_close_every_call_is_unavailable_and_no_worker_is_left() {
    let (dir, store, claim) = store_and_claim().await;
    let (c, a) = claim();
    store.record_use(c, a, OffsetDateTime::now_utc()).await.unwrap();
    let read = store.fetch_sealed(CredentialSelector::Id(CredentialId::new_random()), None).await;
    assert!(read.unwrap().is_none(), "the Get reads' thread and connection are up");
    store.close().await;
    let (c, a) = claim();
    let used = store.record_use(c, a, OffsetDateTime::now_utc()).await;
    assert!(matches!(used, Err(StoreError::Unavailable(_))), "{used:?}");
    let written = store.ensure_customer(&customer()).await;
    assert!(matches!(written, Err(StoreError::Unavailable(_))), "{written:?}");
    let read = store.customer_exists(CustomerId::new_random()).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let read = store.fetch_sealed(CredentialSelector::Id(CredentialId::new_random()), None).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    // Every connection is closed: SQLite removed the WAL and shared-memory files, which it
    // does only when the last connection to the database closes.
    drop(store);
    for side in ["vault.db-wal", "vault.db-shm"] {
        assert!(!dir.path().join(side).exists(), "{side} is still there: a connection is open");
    }
}

/// Get's reads by id that share a group each get their own answer: the row, nothing (no such
/// credential, or no such version), or the error of a row that does not read.
#[tokio::test]
async fn reads_in_one_group_answer_each_its_own() {
    let (_dir, store, _) = store_and_claim().await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let mut ids = Vec::new();
    for name in ["A", "B", "C"] {
        let new = new_credential(owner.id, name, name.as_bytes());
        ids.push(new.id);
        store.insert_credential(new.clone(), audit(&new)).await.unwrap();
    }
    // A permission no build of credvault writes (past the table's CHECK): that row cannot be
    // read as a credential.
    let mut writer = store.writer.acquire().await.unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = ON").execute(&mut **writer).await.unwrap();
    sqlx::query("UPDATE cloud_credentials SET permissions = 'everything' WHERE id = ?")
        .bind(ids[2].to_string())
        .execute(&mut **writer)
        .await
        .unwrap();
    sqlx::query("PRAGMA ignore_check_constraints = OFF").execute(&mut **writer).await.unwrap();
    drop(writer);
    let read = |id, version| store.fetch_sealed(CredentialSelector::Id(id), version);
    let v2: Option<VersionNumber> = Some(2);
    let (a, b, broken, missing, no_version) = tokio::join!(
        read(ids[0], None),
        read(ids[1], None),
        read(ids[2], None),
        read(CredentialId::new_random(), None),
        read(ids[0], v2)
    );
    let sealed = |found: Option<SealedCredential>| found.unwrap().version.unwrap().sealed.unwrap();
    assert_eq!(sealed(a.unwrap()), b"A");
    assert_eq!(sealed(b.unwrap()), b"B");
    assert!(matches!(broken, Err(StoreError::Other(_))), "{broken:?}");
    assert!(missing.unwrap().is_none());
    assert!(no_version.unwrap().unwrap().version.is_none(), "credential A has no version 2");
}

/// Before migration 6, a Get counted its use on the credential's row and journaled its
/// audit row: those rows move into the log without being counted again.
#[tokio::test]
async fn uses_journaled_before_the_journal_counted_them_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let (customer, credential) = (CustomerId::new_random(), CredentialId::new_random());
    {
        let options = SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let mut before = migrator();
        before.migrations = std::borrow::Cow::Owned(before.migrations[..5].to_vec());
        before.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO customers (id, email, company_name, created_at) VALUES (?, 'a@example.com', 'A', 0)",
        )
        .bind(customer.to_string())
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO cloud_credentials (id, customer_id, provider, credential_name, encrypted_credentials, \
             key_version, credential_type, permissions, last_used_at, usage_count, created_at, updated_at) \
             VALUES (?1, ?2, 'vultr', 'Old', x'00', 1, 'api_key', 'read_only', 20, 2, 0, 0)",
        )
        .bind(credential.to_string())
        .bind(customer.to_string())
        .execute(&pool)
        .await
        .unwrap();
        for at in [10, 20] {
            sqlx::query(
                "INSERT INTO credential_use_journal (id, credential_id, customer_id, action, action_details, created_at) \
                 VALUES (?, ?, ?, 'used', 'handed out', ?)",
            )
            .bind(Uuid::new_v4().to_string())
            .bind(credential.to_string())
            .bind(customer.to_string())
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
    }
    let store = SqliteStore::connect(&url, None).await.unwrap();
    store.migrate().await.unwrap();
    let listed = store.all_for_customer(customer).await.unwrap();
    assert_eq!(listed[0].usage_count, 2, "counted once");
    assert_eq!(listed[0].last_used_at, Some(from_micros(20).unwrap()));
    let moved: i64 = sqlx::query_scalar("SELECT count(*) FROM credential_audit_log WHERE action = 'used'")
        .fetch_one(&store.reader)
        .await
        .unwrap();
    assert_eq!(moved, 2, "the journal's rows are in the log");
    store.close().await;
}

/// The audit listing walks the time index from its cursor, whatever the filters, instead of
/// reading and sorting the whole log.
#[tokio::test]
async fn the_audit_listing_walks_the_time_index_with_or_without_filters() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let store = SqliteStore::connect(&url, None).await.unwrap();
    store.migrate().await.unwrap();
    let some = || Some(Uuid::new_v4().to_string());
    for (customer, credential, action, cursor) in [
        (None, None, None, (i64::MAX, String::new())),
        (some(), some(), Some("used"), (1_000, Uuid::new_v4().to_string())),
    ] {
        let plan = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {LIST_AUDIT}")))
            .bind(customer)
            .bind(credential)
            .bind(action)
            .bind(i64::MIN)
            .bind(i64::MAX)
            .bind(cursor.0)
            .bind(cursor.1)
            .bind(51)
            .fetch_all(&store.reader)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ");
        assert!(plan.contains("USING INDEX credential_audit_log_by_time"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE") && !plan.contains("SCAN"), "{plan}");
    }
    store.close().await;
}

/// The index by credential belongs to its log: another log's index file (one file of a backup
/// restored without the other) is not read, then rebuilt; a missing one is made again.
#[tokio::test]
async fn the_index_by_credential_is_rebuilt_for_a_log_it_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let url = format!("sqlite://{}", dir.path().join(name).display());
        async move {
            let store = SqliteStore::connect(&url, None).await.unwrap();
            store.migrate().await.unwrap();
            store
        }
    };
    let entry = |credential: CredentialId| AuditEntry {
        credential_id: Some(credential),
        customer_id: None,
        action: AuditAction::Verified,
        details: "test".into(),
        ip_address: None,
        actor: None,
    };
    let filter = |credential| crate::domain::AuditFilter {
        customer_id: None,
        credential_id: Some(credential),
        action: None,
        since: None,
        until: None,
        page_size: 50,
        after: None,
    };
    let (mine, theirs) = (CredentialId::new_random(), CredentialId::new_random());
    let (a, b) = (open("a.db").await, open("b.db").await);
    for _ in 0..3 {
        a.append_audit(entry(theirs), OffsetDateTime::now_utc()).await.unwrap();
        b.append_audit(entry(mine), OffsetDateTime::now_utc()).await.unwrap();
    }
    assert_eq!((a.index_audit().await.unwrap(), b.index_audit().await.unwrap()), (3, 3));
    a.close().await;
    b.close().await;
    let index = |db: &str| by_credential::ByCredential::path_of(&dir.path().join(db));
    std::fs::copy(index("a.db"), index("b.db")).unwrap();

    let b = open("b.db").await;
    assert_eq!(b.list_audit(&filter(mine)).await.unwrap().len(), 3, "b's log walked, a's index not read");
    assert_eq!(b.index_audit().await.unwrap(), 3, "rebuilt from b's log");
    assert_eq!(b.list_audit(&filter(mine)).await.unwrap().len(), 3);
    assert!(b.list_audit(&filter(theirs)).await.unwrap().is_empty(), "nothing of a's is left");
    b.close().await;
    std::fs::remove_file(index("b.db")).unwrap();
    let b = open("b.db").await;
    assert_eq!(b.index_audit().await.unwrap(), 3);
    assert_eq!(b.list_audit(&filter(mine)).await.unwrap().len(), 3);
    b.close().await;
}

#[tokio::test]
async fn a_database_in_memory_is_refused_with_what_to_give_instead() {
    for url in ["sqlite::memory:", "sqlite://vault.db?mode=memory"] {
        let refused = SqliteStore::connect(url, None).await.err().expect("refused");
        assert!(
            matches!(&refused, StoreError::Config(m) if m.contains("sqlite://path/to/vault.db")),
            "{refused:?}"
        );
    }
}
