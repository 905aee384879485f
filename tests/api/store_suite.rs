//! The Store conformance suite: the storage trait's contract, checked directly against each
//! backend on a fresh database, below any server. A new backend proves itself here first.

use std::sync::Arc;

use credvault::crypto::{Keyring, MasterKey};
use credvault::domain::{
    AuditAction, AuditEntry, AuditFilter, CredentialId, CredentialMetadata, CredentialName,
    CredentialSelector, CredentialType, CustomerBinding, CustomerId, CustomerStatus, Etag, IdempotencyKey,
    ListFilter, PageCursor, Permission, Provider, Scopes, SubscriptionTier, TokenName, VersionState,
};
use credvault::store::{
    self, Inserted, KeyCheck, NewCredential, NewCustomer, PoolSettings, Store, StoreError, UseClaim,
};
use time::OffsetDateTime;

use crate::helpers::*;

/// A migrated store on a fresh database, signing audit rows with a fresh key; and the scratch
/// directory it lives in.
async fn fresh(backend: Backend) -> (Arc<dyn Store>, tempfile::TempDir) {
    let (url, dir) = fresh_database(backend).await;
    let keyring = Arc::new(Keyring::single(&MasterKey::generate()));
    let store = store::open(&url, &PoolSettings::default(), Some(keyring)).await.unwrap();
    store.check_writable().await.unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

fn customer() -> NewCustomer {
    let id = CustomerId::new_random();
    NewCustomer {
        id,
        email: format!("{id}@example.com"),
        company_name: "Co".into(),
        status: CustomerStatus::Active,
        tier: SubscriptionTier::Free,
    }
}

fn audit(action: AuditAction, customer: CustomerId, credential: Option<CredentialId>) -> AuditEntry {
    AuditEntry {
        credential_id: credential,
        customer_id: Some(customer),
        action,
        details: format!("{action:?} in the suite"),
        ip_address: None,
        actor: None,
    }
}

fn credential(customer: CustomerId, name: &str, sealed: &[u8]) -> NewCredential {
    NewCredential {
        id: CredentialId::new_random(),
        customer_id: customer,
        provider: Provider::Vultr,
        name: CredentialName::parse(name, "name").unwrap(),
        credential_type: CredentialType::parse_or_default("", Provider::Vultr, "type").unwrap(),
        permissions: Permission::ReadOnly,
        sealed: sealed.to_vec(),
        key_version: 1,
        make_default: false,
        idempotency: None,
        now: OffsetDateTime::now_utc(),
    }
}

/// The audit row of a credential a cancellation deletes.
fn deleted_audit(credential: &CredentialMetadata) -> AuditEntry {
    AuditEntry {
        details: format!("{} deleted by the cancellation", credential.name.as_str()),
        ..audit(AuditAction::Deleted, credential.customer_id, Some(credential.id))
    }
}

async fn insert(store: &dyn Store, new: NewCredential) -> Result<Inserted, StoreError> {
    let entry = audit(AuditAction::Created, new.customer_id, Some(new.id));
    store.insert_credential(new, entry).await
}

fn created(inserted: Inserted) -> CredentialMetadata {
    match inserted {
        Inserted::Created(c) => c,
        Inserted::Existing { .. } => panic!("expected a new credential"),
    }
}

async fn the_store_keeps_its_own_life(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    assert_eq!(store.check_key(1, &[7; 32]).await.unwrap(), KeyCheck::Recorded);
    assert_eq!(store.check_key(1, &[7; 32]).await.unwrap(), KeyCheck::Matches);
    assert_eq!(store.check_key(1, &[8; 32]).await.unwrap(), KeyCheck::Mismatch);
    store.migrate().await.expect("migrating twice is harmless");
    store.close().await;
    assert!(matches!(store.customer_exists(CustomerId::new_random()).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(store.ensure_customer(&customer()).await, Err(StoreError::Unavailable(_))));
}

async fn customers_are_created_once_listed_in_order_and_changed_with_their_audit_row(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let first = customer();
    assert!(store.ensure_customer(&first).await.unwrap());
    assert!(!store.ensure_customer(&first).await.unwrap(), "the same id again creates nothing");
    let same_email = NewCustomer { id: CustomerId::new_random(), ..first.clone() };
    assert!(matches!(store.ensure_customer(&same_email).await, Err(StoreError::Conflict(_))));
    let second = customer();
    store.ensure_customer(&second).await.unwrap();
    assert!(store.customer_exists(first.id).await.unwrap());
    assert!(!store.customer_exists(CustomerId::new_random()).await.unwrap());
    let listed = store.list_customers(None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [first.id, second.id], "oldest first");
    let page = store.list_customers(None, 1).await.unwrap();
    let cursor = credvault::domain::Cursor {
        at_micros: credvault::domain::unix_micros(page[0].created_at),
        id: *page[0].id.as_uuid(),
    };
    let rest = store.list_customers(Some(cursor), 10).await.unwrap();
    assert_eq!(rest.iter().map(|c| c.id).collect::<Vec<_>>(), [second.id]);

    let now = OffsetDateTime::now_utc();
    let changed = store
        .set_customer_status(
            first.id,
            CustomerStatus::Suspended,
            audit(AuditAction::Updated, first.id, None),
            &deleted_audit,
            now,
        )
        .await
        .unwrap();
    assert_eq!(changed.status, CustomerStatus::Suspended);
    assert_eq!(store.customer(first.id).await.unwrap().unwrap().status, CustomerStatus::Suspended);
    let unknown = CustomerId::new_random();
    let missing = store
        .set_customer_status(
            unknown,
            CustomerStatus::Active,
            audit(AuditAction::Updated, unknown, None),
            &deleted_audit,
            now,
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let events = store.list_audit(&audit_filter(Some(first.id), None)).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["updated"],
        "only what happened"
    );
}

fn audit_filter(customer: Option<CustomerId>, credential: Option<CredentialId>) -> AuditFilter {
    AuditFilter {
        customer_id: customer,
        credential_id: credential,
        action: None,
        since: None,
        until: None,
        page_size: 50,
        after: None,
    }
}

async fn credentials_are_stored_used_verified_listed_and_deleted_with_their_audit_rows(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();

    let stored =
        created(insert(store.as_ref(), credential(owner.id, "Prod", b"ciphertext-1")).await.unwrap());
    assert_eq!((stored.usage_count, stored.is_active, stored.is_verified), (0, true, false));
    let duplicate = insert(store.as_ref(), credential(owner.id, "Prod", b"other")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
    let orphan = insert(store.as_ref(), credential(CustomerId::new_random(), "Orphan", b"x")).await;
    assert!(matches!(orphan, Err(StoreError::NotFound(_))), "{orphan:?}");

    // Idempotent inserts: the second with the same key finds the first.
    let key = IdempotencyKey::parse_optional("retry-1", "key").unwrap().unwrap();
    let retried =
        || NewCredential { idempotency: Some((key.clone(), [9; 32])), ..credential(owner.id, "Idem", b"c") };
    let first = created(insert(store.as_ref(), retried()).await.unwrap());
    match insert(store.as_ref(), retried()).await.unwrap() {
        Inserted::Existing { credential, fingerprint } => {
            assert_eq!((credential.id, fingerprint.as_slice()), (first.id, &[9; 32][..]));
        }
        Inserted::Created(_) => panic!("an idempotent retry inserted a second credential"),
    }

    // Read, then the audited use: counted only while the claim holds.
    let sealed = store.fetch_sealed(CredentialSelector::Id(stored.id), None).await.unwrap().unwrap();
    let current = sealed.version.expect("a stored credential's first version is current");
    assert_eq!((current.number, current.state), (1, VersionState::Enabled));
    assert_eq!(current.sealed.as_deref(), Some(&b"ciphertext-1"[..]));
    let claim = |etag, bytes: &[u8]| UseClaim {
        id: stored.id,
        customer_id: owner.id,
        etag: Some(etag),
        version: 1,
        sealed: Arc::from(bytes),
    };
    let now = OffsetDateTime::now_utc();
    let used = store.record_use(
        claim(sealed.metadata.etag, b"ciphertext-1"),
        audit(AuditAction::Used, owner.id, Some(stored.id)),
        now,
    );
    let used = used.await.unwrap().unwrap();
    assert_eq!(used.usage_count, 1);
    assert_eq!(used.etag, sealed.metadata.etag, "a use does not change the etag");
    let stale = store.record_use(
        claim(Etag::from_revision(sealed.metadata.etag.revision() + 1), b"ciphertext-1"),
        audit(AuditAction::Used, owner.id, Some(stored.id)),
        now,
    );
    assert!(stale.await.unwrap().is_none(), "a claim on another etag counts nothing");
    let altered = store.record_use(
        claim(sealed.metadata.etag, b"not-what-is-stored"),
        audit(AuditAction::Used, owner.id, Some(stored.id)),
        now,
    );
    assert!(altered.await.unwrap().is_none(), "a claim on another ciphertext counts nothing");
    let fresh = UseClaim { etag: None, ..claim(sealed.metadata.etag, b"ciphertext-1") };
    let counted = store.record_use(fresh.clone(), audit(AuditAction::Used, owner.id, Some(stored.id)), now);
    assert_eq!(
        counted.await.unwrap().unwrap().usage_count,
        2,
        "without an etag: the version must be enabled"
    );
    let preferred = CredentialSelector::Preferred { customer_id: owner.id, provider: Provider::Vultr };
    assert!(store.fetch_sealed(preferred, None).await.unwrap().is_some());

    let verified = store
        .record_verification(stored.id, true, audit(AuditAction::Verified, owner.id, Some(stored.id)), now)
        .await
        .unwrap();
    assert!(verified.is_verified && verified.last_verified_at.is_some());

    // Listing: newest first, paged, with the use counted.
    let filter = |after| ListFilter {
        customer_id: owner.id,
        provider: None,
        include_inactive: false,
        page_size: 1,
        after,
    };
    let page = store.list(&filter(None)).await.unwrap();
    assert_eq!(page.len(), 2, "one page plus one row saying another follows");
    assert_eq!(page[0].id, first.id, "newest first");
    let next = store.list(&filter(Some(PageCursor::after(&page[0])))).await.unwrap();
    assert_eq!(next[0].id, stored.id);
    assert_eq!(next[0].usage_count, 2);

    let deleted = store
        .soft_delete(stored.id, audit(AuditAction::Deleted, owner.id, Some(stored.id)), now)
        .await
        .unwrap();
    assert!(!deleted.is_active);
    let again =
        store.soft_delete(stored.id, audit(AuditAction::Deleted, owner.id, Some(stored.id)), now).await;
    assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
    assert!(store.fetch_sealed(CredentialSelector::Id(stored.id), None).await.unwrap().is_none());
    let all = store.all_for_customer(owner.id).await.unwrap();
    assert_eq!(all.len(), 2, "deleted ones included");

    let actions: Vec<String> = store
        .list_audit(&audit_filter(None, Some(stored.id)))
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.action.as_str().to_owned())
        .collect();
    assert_eq!(
        actions,
        ["created", "used", "used", "verified", "deleted"],
        "one row per change, none for the refused"
    );
}

async fn tokens_are_recorded_found_listed_and_revoked(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let name = TokenName::parse("suite-token", "name").unwrap();
    let issued = credvault::auth::issue(name.clone(), Scopes::all(), CustomerBinding::All, None).unwrap();
    store.insert_token(&issued.record).await.unwrap();
    let twice = store.insert_token(&issued.record).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    let found = store.find_token(issued.record.id).await.unwrap().unwrap();
    assert_eq!((found.name.as_str(), found.revoked_at), ("suite-token", None));
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);
    let revoked = store.revoke_token(&name, OffsetDateTime::now_utc()).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    let unknown = TokenName::parse("nobody", "name").unwrap();
    assert!(matches!(
        store.revoke_token(&unknown, OffsetDateTime::now_utc()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn every_audit_row_is_chained_once_in_commit_order(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let stored = created(insert(store.as_ref(), credential(owner.id, "Chained", b"c")).await.unwrap());
    let now = OffsetDateTime::now_utc();
    for _ in 0..3 {
        let claim = UseClaim {
            id: stored.id,
            customer_id: owner.id,
            etag: Some(stored.etag),
            version: 1,
            sealed: Arc::from(&b"c"[..]),
        };
        store
            .record_use(claim, audit(AuditAction::Used, owner.id, Some(stored.id)), now)
            .await
            .unwrap()
            .unwrap();
    }
    store.append_audit(audit(AuditAction::Denied, owner.id, None), now).await.unwrap();
    let report = store.chain_audit(1000).await.unwrap();
    assert_eq!((report.sealed, report.refused.len()), (5, 0));
    assert_eq!(store.chain_audit(1000).await.unwrap().sealed, 0, "nothing is chained twice");
    let chain = store.audit_chain().await.unwrap();
    assert_eq!(chain.links.len(), 5);
    assert_eq!(chain.rows.len(), 5);
    let linked: Vec<_> = chain.links.iter().map(|l| l.audit_id).collect();
    let rows: Vec<_> = chain.rows.iter().map(|r| r.event.id).collect();
    assert_eq!(linked, rows, "the chain follows the order rows committed in");
    let actions: Vec<_> = chain.rows.iter().map(|r| r.event.action.as_str()).collect();
    assert_eq!(actions, ["created", "used", "used", "used", "denied"]);
}

backend_tests!(
    the_store_keeps_its_own_life,
    customers_are_created_once_listed_in_order_and_changed_with_their_audit_row,
    credentials_are_stored_used_verified_listed_and_deleted_with_their_audit_rows,
    tokens_are_recorded_found_listed_and_revoked,
    every_audit_row_is_chained_once_in_commit_order,
);
