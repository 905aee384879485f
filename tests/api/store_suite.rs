//! The Store conformance suite: the storage trait's contract, checked directly against each
//! backend on a fresh database, below any server: every method of every Store trait, with exact
//! outcomes. A new backend (or a change of the trait) proves itself here first.

use std::collections::BTreeMap;
use std::sync::Arc;

use credvault::crypto::{Keyring, MasterKey};
use credvault::domain::{
    AuditAction, AuditEntry, AuditFilter, CredentialId, CredentialMetadata, CredentialName,
    CredentialSelector, CredentialType, CustomerBinding, CustomerId, CustomerStatus, Etag, Finding,
    IdempotencyKey, ListFilter, PageCursor, Permission, Provider, ProviderCounts, Scopes, SubscriptionTier,
    TokenName, VerificationRecord, VerificationState, VersionChange, VersionMetadata, VersionState,
};
use credvault::store::{
    self, CredentialUpdate, Inserted, KeyCheck, NewCredential, NewCustomer, NewVersion, PoolSettings,
    PurgeReason, Store, StoreError, UseClaim, VersionAdded, VersionUpdate,
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
        key_version: Some(1),
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

/// The summary's counts (in SQL) against the domain's rule over the same credentials; and the
/// count of the customer's (Vultr) credentials, for the caller to check what it set up.
async fn summary_counts_follow_the_rule(store: &dyn Store, customer: CustomerId) -> ProviderCounts {
    let mut expected = ProviderCounts::zero(Provider::Vultr);
    for credential in store.all_for_customer(customer).await.unwrap() {
        expected.add(&credential);
    }
    assert_eq!(store.summary_counts(customer).await.unwrap(), [expected]);
    assert_eq!(store.summary_counts(CustomerId::new_random()).await.unwrap(), [], "none for a stranger");
    expected
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
    // Claims made at once (committed as one group where the backend groups them: the
    // committer is still busy with the first when the rest queue) each hold or fail alone.
    let use_with = |etag, bytes: &'static [u8]| {
        store.record_use(claim(etag, bytes), audit(AuditAction::Used, owner.id, Some(stored.id)), now)
    };
    let etag = sealed.metadata.etag;
    let other = Etag::from_revision(etag.revision() + 1);
    let (a, stale, b, altered, c) = tokio::join!(
        use_with(etag, b"ciphertext-1"),
        use_with(other, b"ciphertext-1"),
        use_with(etag, b"ciphertext-1"),
        use_with(etag, b"not-what-is-stored"),
        use_with(etag, b"ciphertext-1"),
    );
    assert!(stale.unwrap().is_none() && altered.unwrap().is_none(), "each failed claim alone counts nothing");
    let mut counts: Vec<_> = [a, b, c].into_iter().map(|u| u.unwrap().unwrap().usage_count).collect();
    counts.sort_unstable();
    assert_eq!(*counts.last().unwrap(), 5, "the three claims that hold count, once each");
    assert!(counts[0] >= 3, "no claim sees fewer uses than were committed before it: {counts:?}");
    let preferred = CredentialSelector::Preferred { customer_id: owner.id, provider: Provider::Vultr };
    assert!(store.fetch_sealed(preferred, None).await.unwrap().is_some());

    let verified = store
        .record_verification(
            stored.id,
            &VerificationRecord { now, ..record(true, 3) },
            audit(AuditAction::Verified, owner.id, Some(stored.id)),
        )
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
    assert_eq!(next[0].usage_count, 5);

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
        ["created", "used", "used", "used", "used", "used", "verified", "deleted"],
        "one row per change, none for the refused"
    );
}

/// List's every combination of filters (provider or not, deleted ones or not, first page or a
/// later one) answers what the customer's credentials hold, in order, across every page size.
async fn list_pages_follow_every_filter_to_the_last_page(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let (owner, stranger) = (customer(), customer());
    store.ensure_customer(&owner).await.unwrap();
    store.ensure_customer(&stranger).await.unwrap();
    let start = OffsetDateTime::now_utc();
    let providers = [Provider::Vultr, Provider::Aws, Provider::Gcp];
    let mut stored = Vec::new();
    for i in 0..14_u8 {
        let provider = providers[usize::from(i) % providers.len()];
        let new = NewCredential {
            provider,
            credential_type: CredentialType::parse_or_default("", provider, "type").unwrap(),
            // Pairs share a creation time: the id breaks the tie.
            now: start + time::Duration::seconds(i64::from(i / 2)),
            ..credential(owner.id, &format!("Key {i}"), &[i])
        };
        stored.push(created(insert(store.as_ref(), new).await.unwrap()));
        let theirs = NewCredential { provider, ..credential(stranger.id, &format!("Key {i}"), &[i]) };
        insert(store.as_ref(), theirs).await.unwrap();
    }
    for gone in [&stored[1], &stored[6], &stored[13]] {
        store
            .soft_delete(gone.id, audit(AuditAction::Deleted, owner.id, Some(gone.id)), start)
            .await
            .unwrap();
    }
    let all = store.all_for_customer(owner.id).await.unwrap();
    assert_eq!(all.len(), stored.len());
    let by_order = |a: &CredentialMetadata, b: &CredentialMetadata| {
        (b.created_at, b.id.as_uuid()).cmp(&(a.created_at, a.id.as_uuid()))
    };
    assert!(all.is_sorted_by(|a, b| by_order(a, b).is_le()), "newest first, then by id");

    for provider in
        [None, Some(Provider::Vultr), Some(Provider::Aws), Some(Provider::Gcp), Some(Provider::Azure)]
    {
        for include_inactive in [false, true] {
            let expected: Vec<_> = all
                .iter()
                .filter(|c| provider.is_none_or(|p| c.provider == p) && (include_inactive || c.is_active))
                .map(|c| c.id)
                .collect();
            for page_size in [1, 3, 50] {
                let (mut listed, mut after) = (Vec::new(), None);
                loop {
                    let filter =
                        ListFilter { customer_id: owner.id, provider, include_inactive, page_size, after };
                    let mut page = store.list(&filter).await.unwrap();
                    let more = page.len() > page_size as usize;
                    page.truncate(page_size as usize);
                    after = page.last().filter(|_| more).map(PageCursor::after);
                    listed.extend(page.iter().map(|c| c.id));
                    assert!(listed.len() <= all.len(), "pages that never end: {filter:?}");
                    if after.is_none() {
                        break;
                    }
                }
                assert_eq!(
                    listed, expected,
                    "provider {provider:?}, deleted ones {include_inactive}, pages of {page_size}"
                );
            }
        }
    }
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

fn version(credential: &CredentialMetadata, number: u32, sealed: &[u8]) -> NewVersion {
    NewVersion {
        credential_id: credential.id,
        customer_id: credential.customer_id,
        version: number,
        sealed: sealed.to_vec(),
        key_version: Some(1),
        disable_previous: false,
        expected: None,
        idempotency: None,
        created_by: Some(TokenName::parse("suite-rotator", "name").unwrap()),
        now: OffsetDateTime::now_utc(),
    }
}

fn added(outcome: VersionAdded) -> (CredentialMetadata, VersionMetadata) {
    match outcome {
        VersionAdded::Added { credential, version } => (credential, version),
        VersionAdded::Existing { .. } => panic!("expected a new version"),
    }
}

fn change(credential: &CredentialMetadata, number: u32, change: VersionChange) -> VersionUpdate {
    VersionUpdate {
        credential_id: credential.id,
        customer_id: credential.customer_id,
        version: number,
        change,
        expected: None,
    }
}

async fn versions_are_added_changed_and_listed_with_their_audit_rows(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let stored = created(insert(store.as_ref(), credential(owner.id, "Rotated", b"v1")).await.unwrap());
    let rotate = |new| store.add_version(new, audit(AuditAction::Rotated, owner.id, Some(stored.id)));

    let (after_two, two) = added(rotate(version(&stored, 2, b"v2")).await.unwrap());
    assert_eq!(
        (two.version, two.state, two.created_by.as_deref()),
        (2, VersionState::Enabled, Some("suite-rotator"))
    );
    assert_eq!((after_two.current_version, after_two.latest_version), (Some(2), 2));
    assert_ne!(after_two.etag, stored.etag, "a rotation changes the etag");
    let taken = rotate(version(&stored, 2, b"again")).await;
    assert!(matches!(taken, Err(StoreError::VersionTaken)), "{taken:?}");
    let stale = rotate(NewVersion { expected: Some(stored.etag), ..version(&stored, 3, b"v3") }).await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    let foreign =
        rotate(NewVersion { customer_id: CustomerId::new_random(), ..version(&stored, 3, b"v3") }).await;
    assert!(matches!(foreign, Err(StoreError::NotFound(_))), "another customer's: {foreign:?}");
    let key = IdempotencyKey::parse_optional("rotate-1", "key").unwrap().unwrap();
    let idempotent = || NewVersion {
        idempotency: Some((key.clone(), [4; 32])),
        disable_previous: true,
        expected: Some(after_two.etag),
        ..version(&stored, 3, b"v3")
    };
    let (after_three, three) = added(rotate(idempotent()).await.unwrap());
    assert_eq!(three.version, 3);
    match rotate(idempotent()).await.unwrap() {
        VersionAdded::Existing { version, fingerprint, .. } => {
            assert_eq!((version.version, fingerprint.as_slice()), (3, &[4; 32][..]));
        }
        VersionAdded::Added { .. } => panic!("an idempotent retry added a version"),
    }

    // disable_previous disabled version 2; the listing is newest first, paged by `before`.
    let listed = store.list_versions(stored.id, None, 10).await.unwrap();
    let states: Vec<_> = listed.iter().map(|v| (v.version, v.state)).collect();
    assert_eq!(states, [(3, VersionState::Enabled), (2, VersionState::Disabled), (1, VersionState::Enabled)]);
    let below = store.list_versions(stored.id, Some(3), 1).await.unwrap();
    assert_eq!(below.iter().map(|v| v.version).collect::<Vec<_>>(), [2]);

    // State changes: the current version moves to the newest enabled one; a destroyed one
    // loses its ciphertext and cannot come back.
    let now = OffsetDateTime::now_utc();
    let update = |u| store.change_version(u, audit(AuditAction::Updated, owner.id, Some(stored.id)), now);
    let disabled = update(change(&stored, 3, VersionChange::Disable)).await.unwrap();
    assert!(disabled.changed);
    assert_eq!(
        (disabled.version.state, disabled.credential.current_version),
        (VersionState::Disabled, Some(1))
    );
    let again = update(change(&stored, 3, VersionChange::Disable)).await.unwrap();
    assert!(!again.changed, "already disabled: nothing written");
    let destroyed = update(change(&stored, 2, VersionChange::Destroy)).await.unwrap();
    assert_eq!(destroyed.version.state, VersionState::Destroyed);
    assert!(destroyed.version.destroyed_at.is_some());
    let gone = store.fetch_sealed(CredentialSelector::Id(stored.id), Some(2)).await.unwrap().unwrap();
    assert_eq!(gone.version.unwrap().sealed, None, "a destroyed version's ciphertext is deleted");
    let revive = update(change(&stored, 2, VersionChange::Enable)).await;
    assert!(matches!(revive, Err(StoreError::FailedPrecondition(_))), "{revive:?}");
    let missing = update(change(&stored, 9, VersionChange::Enable)).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let stale = update(VersionUpdate {
        expected: Some(after_three.etag),
        ..change(&stored, 3, VersionChange::Enable)
    })
    .await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    let enabled = update(change(&stored, 3, VersionChange::Enable)).await.unwrap();
    assert_eq!(enabled.credential.current_version, Some(3));

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
        ["created", "rotated", "rotated", "updated", "updated", "updated"],
        "none for the refused or unchanged"
    );

    // A credential whose only version is disabled counts as disabled.
    let off = created(insert(store.as_ref(), credential(owner.id, "Off", b"v1")).await.unwrap());
    let switch_off = change(&off, 1, VersionChange::Disable);
    store.change_version(switch_off, audit(AuditAction::Updated, owner.id, Some(off.id)), now).await.unwrap();
    let counts = summary_counts_follow_the_rule(store.as_ref(), owner.id).await;
    assert_eq!((counts.total, counts.active, counts.disabled), (2, 2, 1));
}

async fn metadata_changes_restores_purges_and_recovery_windows_follow_the_contract(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let stored = created(insert(store.as_ref(), credential(owner.id, "Renamed", b"c")).await.unwrap());
    let other = created(insert(store.as_ref(), credential(owner.id, "Other", b"c")).await.unwrap());

    let rename = |name: &str, expected| CredentialUpdate {
        id: stored.id,
        customer_id: owner.id,
        name: Some(CredentialName::parse(name, "name").unwrap()),
        credential_type: None,
        permissions: Some(Permission::ReadWrite),
        is_default: Some(true),
        expected,
        now,
    };
    let entry = || audit(AuditAction::Updated, owner.id, Some(stored.id));
    let renamed = store.update_credential(rename("New name", Some(stored.etag)), entry()).await.unwrap();
    assert_eq!(
        (renamed.name.as_str(), renamed.permissions, renamed.is_default),
        ("New name", Permission::ReadWrite, true)
    );
    let stale = store.update_credential(rename("Newer", Some(stored.etag)), entry()).await;
    assert!(matches!(stale, Err(StoreError::Stale(_))), "{stale:?}");
    let taken = store.update_credential(rename("Other", None), entry()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let foreign = store
        .update_credential(
            CredentialUpdate { customer_id: CustomerId::new_random(), ..rename("X", None) },
            entry(),
        )
        .await;
    assert!(matches!(foreign, Err(StoreError::NotFound(_))), "{foreign:?}");

    // A recovery window of an hour: deleted now, due in an hour, restorable meanwhile.
    let window = std::time::Duration::from_secs(3600);
    let changed = store
        .set_recovery_window(owner.id, window, audit(AuditAction::Updated, owner.id, None), now)
        .await
        .unwrap();
    assert_eq!(changed.recovery_window, window);
    let unknown = CustomerId::new_random();
    let missing =
        store.set_recovery_window(unknown, window, audit(AuditAction::Updated, unknown, None), now).await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))), "{missing:?}");
    let deleted = store
        .soft_delete(stored.id, audit(AuditAction::Deleted, owner.id, Some(stored.id)), now)
        .await
        .unwrap();
    let purge_at = deleted.purge_at.expect("a deleted credential is scheduled");
    assert!((purge_at - now - time::Duration::hours(1)).abs() < time::Duration::seconds(1), "{purge_at}");
    assert!(store.due_for_purge(now, 10).await.unwrap().is_empty(), "not due yet");
    let later = now + time::Duration::hours(2);
    assert_eq!(
        store.due_for_purge(later, 10).await.unwrap().iter().map(|c| c.id).collect::<Vec<_>>(),
        [stored.id]
    );

    let restore = |id, customer| {
        store.restore_credential(id, customer, audit(AuditAction::Restored, owner.id, Some(id)), now)
    };
    let active = restore(other.id, owner.id).await;
    assert!(matches!(active, Err(StoreError::FailedPrecondition(_))), "not deleted: {active:?}");
    let foreign = restore(stored.id, CustomerId::new_random()).await;
    assert!(matches!(foreign, Err(StoreError::NotFound(_))), "{foreign:?}");
    let restored = restore(stored.id, owner.id).await.unwrap();
    assert!(restored.is_active && restored.purge_at.is_none());
    assert!(store.due_for_purge(later, 10).await.unwrap().is_empty(), "restored: no longer due");
    assert_eq!(store.find_credential(stored.id).await.unwrap().unwrap().id, stored.id);
    assert!(store.find_credential(CredentialId::new_random()).await.unwrap().is_none());

    // The purger's purge happens only while due; a requested one at once, whatever the state.
    let purge = |id, reason| {
        store.purge_credential(id, owner.id, reason, audit(AuditAction::Purged, owner.id, Some(id)), now)
    };
    assert!(purge(stored.id, PurgeReason::Due(later)).await.unwrap().is_none(), "active: not due");
    let purged = purge(other.id, PurgeReason::Requested).await.unwrap().unwrap();
    assert!(purged.purged_at.is_some() && !purged.is_active);
    let versions = store.list_versions(other.id, None, 10).await.unwrap();
    assert!(versions.iter().all(|v| v.state == VersionState::Destroyed), "{versions:?}");
    let twice = purge(other.id, PurgeReason::Requested).await;
    assert!(matches!(twice, Err(StoreError::FailedPrecondition(_))), "{twice:?}");
    let again = restore(other.id, owner.id).await;
    assert!(matches!(again, Err(StoreError::FailedPrecondition(_))), "purged: {again:?}");
    let counts = summary_counts_follow_the_rule(store.as_ref(), owner.id).await;
    assert_eq!((counts.total, counts.active, counts.pending_deletion), (2, 1, 0), "purged: not pending");
}

async fn a_cancelled_customer_loses_its_credentials_at_once_and_takes_no_writes(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let first = created(insert(store.as_ref(), credential(owner.id, "First", b"c")).await.unwrap());
    let second = created(insert(store.as_ref(), credential(owner.id, "Second", b"c")).await.unwrap());
    store.soft_delete(second.id, audit(AuditAction::Deleted, owner.id, Some(second.id)), now).await.unwrap();

    let cancelled = store
        .set_customer_status(
            owner.id,
            CustomerStatus::Cancelled,
            audit(AuditAction::Updated, owner.id, None),
            &deleted_audit,
            now,
        )
        .await
        .unwrap();
    assert_eq!(cancelled.status, CustomerStatus::Cancelled);
    let all = store.all_for_customer(owner.id).await.unwrap();
    assert!(all.iter().all(|c| !c.is_active && c.purge_at.is_some()), "{all:?}");
    let first_rows = store.list_audit(&audit_filter(None, Some(first.id))).await.unwrap();
    let details: Vec<_> = first_rows.iter().map(|e| (e.action.as_str(), e.details.as_str())).collect();
    assert!(details.contains(&("deleted", "First deleted by the cancellation")), "{details:?}");
    assert_eq!(details.len(), 2, "{details:?}");
    let second_rows = store.list_audit(&audit_filter(None, Some(second.id))).await.unwrap();
    assert_eq!(second_rows.len(), 2, "deleted once only: {second_rows:?}");

    let refused = insert(store.as_ref(), credential(owner.id, "After", b"c")).await;
    assert!(
        matches!(&refused, Err(StoreError::FailedPrecondition(m)) if m.contains("is cancelled")),
        "{refused:?}"
    );
    let restore = store
        .restore_credential(first.id, owner.id, audit(AuditAction::Restored, owner.id, Some(first.id)), now)
        .await;
    assert!(
        matches!(&restore, Err(StoreError::FailedPrecondition(m)) if m.contains("is cancelled")),
        "{restore:?}"
    );
    let suspended = customer();
    store.ensure_customer(&suspended).await.unwrap();
    let active = created(insert(store.as_ref(), credential(suspended.id, "Kept", b"c")).await.unwrap());
    store
        .set_customer_status(
            suspended.id,
            CustomerStatus::Suspended,
            audit(AuditAction::Updated, suspended.id, None),
            &deleted_audit,
            now,
        )
        .await
        .unwrap();
    assert!(store.find_credential(active.id).await.unwrap().unwrap().is_active, "suspension deletes nothing");
    let rotation = store
        .add_version(version(&active, 2, b"v2"), audit(AuditAction::Rotated, suspended.id, Some(active.id)))
        .await;
    assert!(
        matches!(&rotation, Err(StoreError::FailedPrecondition(m)) if m.contains("is suspended")),
        "{rotation:?}"
    );
}

async fn imports_keep_ids_times_and_counts_and_are_skipped_once_there(backend: Backend) {
    use credvault::store::import::{ImportedCredential, ImportedCustomer};
    let (store, _dir) = fresh(backend).await;
    let at = time::macros::datetime!(2025-03-02 09:00 UTC);
    let customer = ImportedCustomer {
        id: CustomerId::new_random(),
        email: "imported@example.com".into(),
        company_name: "Imported Co".into(),
        status: CustomerStatus::Trial,
        tier: SubscriptionTier::Free,
        created_at: at,
    };
    assert!(store.import_customer(&customer).await.unwrap());
    assert!(!store.import_customer(&customer).await.unwrap(), "there already: unchanged");
    let kept = store.customer(customer.id).await.unwrap().unwrap();
    assert_eq!((kept.status, kept.created_at), (CustomerStatus::Trial, at));
    let clash = ImportedCustomer { id: CustomerId::new_random(), ..customer.clone() };
    assert!(matches!(store.import_customer(&clash).await, Err(StoreError::Conflict(_))));

    let credential = |name: &str, is_active: bool| ImportedCredential {
        id: CredentialId::new_random(),
        customer_id: customer.id,
        provider: Provider::Vultr,
        name: CredentialName::parse(name, "name").unwrap(),
        credential_type: CredentialType::parse_or_default("", Provider::Vultr, "type").unwrap(),
        permissions: Permission::ReadWrite,
        is_active,
        is_verified: true,
        last_verified_at: Some(at),
        last_used_at: Some(at),
        usage_count: 7,
        created_at: at,
        updated_at: at,
        sealed: b"sealed".to_vec(),
        key_version: Some(1),
    };
    let now = OffsetDateTime::now_utc();
    let active = credential("Imported", true);
    let entry = || audit(AuditAction::Created, customer.id, Some(active.id));
    assert!(store.import_credential(&active, entry(), now).await.unwrap());
    assert!(!store.import_credential(&active, entry(), now).await.unwrap(), "there already: skipped");
    let stored = store.find_credential(active.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.usage_count, stored.is_verified, stored.created_at, stored.current_version),
        (7, true, at, Some(1))
    );
    let sealed = store.fetch_sealed(CredentialSelector::Id(active.id), None).await.unwrap().unwrap();
    assert_eq!(sealed.version.unwrap().sealed.as_deref(), Some(&b"sealed"[..]));
    let same_name = credential("Imported", true);
    let refused = store.import_credential(&same_name, entry(), now).await;
    assert!(matches!(refused, Err(StoreError::Conflict(_))), "{refused:?}");
    let deleted = credential("Imported", false);
    assert!(
        store.import_credential(&deleted, entry(), now).await.unwrap(),
        "a deleted one may share the name"
    );
    let deleted = store.find_credential(deleted.id).await.unwrap().unwrap();
    assert!(!deleted.is_active && deleted.purge_at.is_some_and(|p| p > now));
    let orphan = ImportedCredential { customer_id: CustomerId::new_random(), ..credential("Orphan", true) };
    assert!(matches!(store.import_credential(&orphan, entry(), now).await, Err(StoreError::NotFound(_))));

    let id = uuid::Uuid::new_v4();
    assert!(
        store.import_audit(id, audit(AuditAction::Used, customer.id, Some(active.id)), at).await.unwrap()
    );
    assert!(
        !store.import_audit(id, audit(AuditAction::Used, customer.id, Some(active.id)), at).await.unwrap()
    );
    let events = store.list_audit(&audit_filter(None, Some(active.id))).await.unwrap();
    let historical = events.iter().find(|e| e.id == id).expect("kept under its own id");
    assert_eq!((historical.action.as_str(), historical.created_at), ("used", at));
    assert_eq!(store.chain_audit(100).await.unwrap().refused.len(), 0, "imported rows are MACed like any");
}

/// The key usage, checked against [`Store::key_usage_present`]: the same rows, each count at
/// most 1.
async fn key_usage(store: &dyn Store) -> Vec<credvault::store::KeyUsage> {
    let usage = store.key_usage().await.unwrap();
    let capped: Vec<_> = usage
        .iter()
        .map(|k| credvault::store::KeyUsage {
            data_keys: k.data_keys.min(1),
            customer_keys: k.customer_keys.min(1),
            ..k.clone()
        })
        .collect();
    assert_eq!(store.key_usage_present().await.unwrap(), capped, "present where counted");
    usage
}

async fn key_usage_counts_the_data_keys_of_each_version(backend: Backend) {
    use credvault::store::KeyUsage;
    let (store, _dir) = fresh(backend).await;
    assert_eq!(key_usage(store.as_ref()).await, [], "nothing recorded, nothing sealed");
    assert_eq!(store.check_key(1, &[7; 32]).await.unwrap(), KeyCheck::Recorded);
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let stored = created(insert(store.as_ref(), credential(owner.id, "Counted", b"v1")).await.unwrap());
    created(insert(store.as_ref(), credential(owner.id, "Other", b"v1")).await.unwrap());
    // A version sealed under key version 2, which no server recorded: named by its data key only.
    let two = NewVersion { key_version: Some(2), ..version(&stored, 2, b"v2") };
    store.add_version(two, audit(AuditAction::Rotated, owner.id, Some(stored.id))).await.unwrap();
    let usage = key_usage(store.as_ref()).await;
    assert_eq!(usage.len(), 2, "{usage:?}");
    assert_eq!((usage[0].version, usage[0].data_keys, usage[0].recorded_at.is_some()), (1, 2, true));
    let unrecorded = KeyUsage {
        version: 2,
        recorded_at: None,
        data_keys: 1,
        customer_keys: 0,
        made_current_at: None,
        retired_at: None,
    };
    assert_eq!(usage[1], unrecorded);
    let now = OffsetDateTime::now_utc();
    store
        .change_version(
            change(&stored, 1, VersionChange::Destroy),
            audit(AuditAction::Updated, owner.id, Some(stored.id)),
            now,
        )
        .await
        .unwrap();
    assert_eq!(key_usage(store.as_ref()).await[0].data_keys, 1, "a destroyed version wraps nothing");
    let other = store
        .list(&ListFilter {
            customer_id: owner.id,
            provider: None,
            include_inactive: false,
            page_size: 10,
            after: None,
        })
        .await
        .unwrap();
    let other = other.iter().find(|c| c.id != stored.id).unwrap();
    store
        .change_version(
            change(other, 1, VersionChange::Destroy),
            audit(AuditAction::Updated, owner.id, Some(other.id)),
            now,
        )
        .await
        .unwrap();
    let usage = key_usage(store.as_ref()).await;
    assert_eq!((usage[0].version, usage[0].data_keys), (1, 0), "recorded, wrapping nothing: {usage:?}");
}

/// The key records and the rewrap's reads and writes: which version is current (made current
/// only once recorded; the first start's rule only when none is), the data keys to move in
/// (credential, version) order after a cursor, replacements only where the row still holds the
/// version read, and one lease holder at a time.
async fn key_versions_the_rewrap_and_leases_follow_the_contract(backend: Backend) {
    use credvault::store::{MakeCurrent, RewrappedDataKey};
    let (store, _dir) = fresh(backend).await;
    let now = OffsetDateTime::now_utc();
    assert_eq!(store.current_key().await.unwrap(), None);
    assert!(matches!(
        store.make_key_current(1, MakeCurrent::IfNone, None, now).await,
        Err(StoreError::NotFound(_))
    ));
    store.check_key(1, &[1; 32]).await.unwrap();
    store.check_key(2, &[2; 32]).await.unwrap();
    assert_eq!(store.make_key_current(1, MakeCurrent::IfNone, None, now).await.unwrap(), 1);
    assert_eq!(store.make_key_current(2, MakeCurrent::IfNone, None, now).await.unwrap(), 1, "one is current");
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let rotated = audit(AuditAction::KeyRotated, owner.id, None);
    assert!(matches!(
        store.make_key_current(3, MakeCurrent::Rotate, Some(rotated.clone()), now).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.make_key_current(2, MakeCurrent::Rotate, Some(rotated.clone()), now).await.unwrap(), 2);
    assert_eq!((store.current_key().await.unwrap(), store.first_key().await.unwrap()), (Some(2), Some(1)));
    let events = store.list_audit(&audit_filter(Some(owner.id), None)).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "key_rotated").count(), 1);
    let usage = key_usage(store.as_ref()).await;
    assert!(usage.iter().all(|k| k.made_current_at.is_some()), "{usage:?}");

    let mut ids = Vec::new();
    for i in 0..5 {
        let stored = created(
            insert(store.as_ref(), credential(owner.id, &format!("K{i}"), b"under v1")).await.unwrap(),
        );
        ids.push(stored.id);
    }
    ids.sort_by_key(ToString::to_string);
    let first = store.data_keys_to_rewrap(Some(2), None, 3).await.unwrap();
    assert_eq!(first.iter().map(|k| k.credential_id).collect::<Vec<_>>(), ids[..3]);
    assert!(first.iter().all(|k| k.key_version == 1 && k.version == 1 && k.sealed == b"under v1"));
    assert!(
        first.iter().all(|k| k.customer_id == owner.id && k.provider == credvault::domain::Provider::Vultr)
    );
    let last = first.last().unwrap();
    let rest = store.data_keys_to_rewrap(Some(2), Some((last.credential_id, last.version)), 3).await.unwrap();
    assert_eq!(rest.iter().map(|k| k.credential_id).collect::<Vec<_>>(), ids[3..]);
    assert_eq!(
        store.data_keys_to_rewrap(Some(1), None, 10).await.unwrap().len(),
        0,
        "none outside version 1"
    );
    assert_eq!(store.data_keys_to_rewrap(None, None, 10).await.unwrap().len(), 5, "all under a master key");

    let moved = |id: CredentialId, old_key_version: u32| RewrappedDataKey {
        credential_id: id,
        version: 1,
        old_key_version,
        sealed: b"under v2".to_vec(),
        key_version: Some(2),
    };
    assert_eq!(store.replace_wrapped(&[moved(ids[0], 1), moved(ids[1], 1)]).await.unwrap(), 2);
    assert_eq!(
        store.replace_wrapped(&[moved(ids[0], 1), moved(ids[2], 3)]).await.unwrap(),
        0,
        "moved already / not that version"
    );
    assert_eq!(store.replace_wrapped(&[]).await.unwrap(), 0);
    let sealed = store.fetch_sealed(CredentialSelector::Id(ids[0]), None).await.unwrap().unwrap();
    assert_eq!(sealed.version.unwrap().sealed.as_deref(), Some(&b"under v2"[..]));
    assert_eq!(store.data_keys_to_rewrap(Some(2), None, 10).await.unwrap().len(), 3);
    let usage = key_usage(store.as_ref()).await;
    assert_eq!(usage.iter().map(|k| (k.version, k.data_keys)).collect::<Vec<_>>(), [(1, 3), (2, 2)]);
    // Moved under the customer's key: no master-key version wraps it any more.
    let under_customer =
        RewrappedDataKey { key_version: None, sealed: b"under the customer".to_vec(), ..moved(ids[3], 1) };
    assert_eq!(store.replace_wrapped(&[under_customer]).await.unwrap(), 1);
    assert_eq!(store.data_keys_to_rewrap(None, None, 10).await.unwrap().len(), 4);
    let usage = key_usage(store.as_ref()).await;
    assert_eq!(usage.iter().map(|k| (k.version, k.data_keys)).collect::<Vec<_>>(), [(1, 2), (2, 2)]);
    let sealed = store.fetch_sealed(CredentialSelector::Id(ids[3]), None).await.unwrap().unwrap();
    assert_eq!(sealed.version.unwrap().sealed.as_deref(), Some(&b"under the customer"[..]));

    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let later = |secs| now + time::Duration::seconds(secs);
    assert!(store.take_lease("rewrap", a, later(10), now).await.unwrap());
    assert!(store.take_lease("rewrap", a, later(20), later(1)).await.unwrap(), "the holder renews");
    assert!(!store.take_lease("rewrap", b, later(30), later(5)).await.unwrap(), "held");
    assert!(store.take_lease("other job", b, later(30), later(5)).await.unwrap(), "per job");
    assert!(store.take_lease("rewrap", b, later(40), later(21)).await.unwrap(), "expired: taken over");
    store.release_lease("rewrap", a).await.unwrap();
    assert!(!store.take_lease("rewrap", a, later(50), later(22)).await.unwrap(), "only the holder releases");
    store.release_lease("rewrap", b).await.unwrap();
    assert!(store.take_lease("rewrap", a, later(50), later(22)).await.unwrap());

    // Retirement: the version, the checkpoint and the audit row together, once.
    use credvault::store::Checkpoint;
    let checkpoint = Checkpoint { seq: 0, hash: vec![3; 32], mac: vec![4; 36], retired_version: 1 };
    let retired = audit(AuditAction::KeyRetired, owner.id, None);
    assert!(matches!(
        store.retire_key(9, checkpoint.clone(), retired.clone(), now).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.audit_chain().await.unwrap().checkpoint, None);
    store.retire_key(1, checkpoint.clone(), retired.clone(), now).await.unwrap();
    assert!(matches!(
        store.retire_key(1, checkpoint.clone(), retired, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.audit_chain().await.unwrap().checkpoint, Some(checkpoint));
    let usage = key_usage(store.as_ref()).await;
    assert_eq!(
        usage.iter().map(|k| (k.version, k.retired_at.is_some())).collect::<Vec<_>>(),
        [(1, true), (2, false)]
    );
    let events = store.list_audit(&audit_filter(Some(owner.id), None)).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "key_retired").count(), 1);
}

/// Customer keys: one record per customer (concurrent adds agree on the first), the pages the
/// rewrap reads by master-key version, replacements only where the old version still holds,
/// destruction once (a record without a key stays, and no key is made again), the counts, and
/// the setting that turns them on, once.
async fn customer_keys_are_added_once_rewrapped_destroyed_and_counted(backend: Backend) {
    use credvault::store::{CustomerKeyCounts, RewrappedCustomerKey};
    let (store, _dir) = fresh(backend).await;
    let now = OffsetDateTime::now_utc();
    store.check_key(1, &[1; 32]).await.unwrap();
    store.check_key(2, &[2; 32]).await.unwrap();
    let ring = Keyring::from_versions([(1, &MasterKey::generate()), (2, &MasterKey::generate())], 1);
    let mut owners: Vec<CustomerId> = Vec::new();
    for _ in 0..3 {
        let owner = customer();
        store.ensure_customer(&owner).await.unwrap();
        owners.push(owner.id);
    }
    owners.sort_by_key(ToString::to_string);
    assert_eq!(store.customer_key(owners[0]).await.unwrap(), None);
    let wrapped = |customer| ring.new_customer_key(customer).unwrap().1;
    let first = wrapped(owners[0]);
    let stored = store.add_customer_key(owners[0], &first, now).await.unwrap();
    assert_eq!(
        (stored.customer_id, stored.wrapped.as_ref(), stored.destroyed_at),
        (owners[0], Some(&first), None)
    );
    let again = store.add_customer_key(owners[0], &wrapped(owners[0]), now).await.unwrap();
    assert_eq!(again.wrapped, Some(first.clone()), "the first key stays");
    assert_eq!(store.customer_key(owners[0]).await.unwrap(), Some(stored));
    assert!(matches!(
        store.add_customer_key(CustomerId::new_random(), &first, now).await,
        Err(StoreError::NotFound(_))
    ));
    for owner in &owners[1..] {
        store.add_customer_key(*owner, &wrapped(*owner), now).await.unwrap();
    }
    let counts = store.customer_key_counts().await.unwrap();
    assert_eq!(counts, CustomerKeyCounts { by_version: vec![(1, 3)], destroyed: 0 });
    let usage = key_usage(store.as_ref()).await;
    assert_eq!(usage.iter().map(|k| (k.version, k.customer_keys)).collect::<Vec<_>>(), [(1, 3), (2, 0)]);

    let page = store.customer_keys_to_rewrap(2, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|(c, _)| *c).collect::<Vec<_>>(), owners[..2]);
    assert!(page.iter().all(|(_, w)| w.key_version == 1));
    let rest = store.customer_keys_to_rewrap(2, Some(owners[1]), 2).await.unwrap();
    assert_eq!(rest.iter().map(|(c, _)| *c).collect::<Vec<_>>(), owners[2..]);
    assert_eq!(store.customer_keys_to_rewrap(1, None, 10).await.unwrap().len(), 0);
    ring.set_current(2);
    let under_two = ring.rewrap_customer_key(owners[0], &first.bytes).unwrap().unwrap();
    let moved = |customer: CustomerId, old_key_version: u32| RewrappedCustomerKey {
        customer_id: customer,
        old_key_version,
        wrapped: under_two.clone(),
    };
    assert_eq!(store.replace_customer_keys(&[moved(owners[0], 1)]).await.unwrap(), 1);
    assert_eq!(store.replace_customer_keys(&[moved(owners[0], 1), moved(owners[1], 3)]).await.unwrap(), 0);
    assert_eq!(store.replace_customer_keys(&[]).await.unwrap(), 0);
    let rewrapped = store.customer_key(owners[0]).await.unwrap().unwrap().wrapped.unwrap();
    assert_eq!(rewrapped.key_version, 2);
    ring.open_customer_key(owners[0], &rewrapped.bytes).expect("the rewrapped key opens");
    assert_eq!(store.customer_key_counts().await.unwrap().by_version, [(1, 2), (2, 1)]);

    // One secret sealed before customer keys (under master-key version 1), one under the key.
    let legacy = created(insert(store.as_ref(), credential(owners[0], "Legacy", b"under v1")).await.unwrap());
    let modern = NewCredential { key_version: None, ..credential(owners[0], "Modern", b"under the key") };
    let modern = created(insert(store.as_ref(), modern).await.unwrap());
    let purged = audit(AuditAction::CustomerPurged, owners[0], None);
    store.destroy_customer_key(owners[0], purged.clone(), now).await.unwrap();
    let sealed = |id| {
        let store = store.clone();
        async move {
            let found = store.fetch_sealed(CredentialSelector::Id(id), Some(1)).await.unwrap().unwrap();
            found.version.unwrap().sealed
        }
    };
    assert_eq!(
        sealed(legacy.id).await,
        None,
        "ciphertext under a master key is destroyed with the customer key"
    );
    assert_eq!(sealed(modern.id).await.as_deref(), Some(&b"under the key"[..]), "unreadable without the key");
    assert!(matches!(
        store.destroy_customer_key(owners[0], purged.clone(), now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.destroy_customer_key(CustomerId::new_random(), purged.clone(), now).await,
        Err(StoreError::NotFound(_))
    ));
    let destroyed = store.customer_key(owners[0]).await.unwrap().unwrap();
    assert_eq!((destroyed.wrapped, destroyed.destroyed_at.is_some()), (None, true));
    let refused = store.add_customer_key(owners[0], &wrapped(owners[0]), now).await.unwrap();
    assert_eq!(refused.wrapped, None, "a destroyed key is never made again");
    // A customer that never had a key can be purged too: the record keeps any from being made.
    let keyless = customer();
    store.ensure_customer(&keyless).await.unwrap();
    store
        .destroy_customer_key(keyless.id, audit(AuditAction::CustomerPurged, keyless.id, None), now)
        .await
        .unwrap();
    assert_eq!(store.add_customer_key(keyless.id, &wrapped(keyless.id), now).await.unwrap().wrapped, None);
    assert_eq!(
        store.customer_key_counts().await.unwrap(),
        CustomerKeyCounts { by_version: vec![(1, 2)], destroyed: 2 }
    );
    let events = store.list_audit(&audit_filter(Some(owners[0]), None)).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "customer_purged").count(), 1);
    let purged: Vec<CustomerId> =
        store.purged_customers().await.unwrap().into_iter().map(|(c, _)| c).collect();
    assert_eq!(purged.len(), 2);
    assert!(purged.contains(&owners[0]) && purged.contains(&keyless.id), "{purged:?}");
    // A purged customer stays cancelled.
    let back = store
        .set_customer_status(
            keyless.id,
            CustomerStatus::Active,
            audit(AuditAction::Updated, keyless.id, None),
            &deleted_audit,
            now,
        )
        .await;
    assert!(matches!(back, Err(StoreError::FailedPrecondition(_))), "{back:?}");

    // A cancelled customer's purge falls due its recovery window after its cancellation.
    let leaving = customer();
    store.ensure_customer(&leaving).await.unwrap();
    assert_eq!(store.purge_due_at(leaving.id).await.unwrap(), None, "not cancelled");
    assert!(matches!(store.purge_due_at(CustomerId::new_random()).await, Err(StoreError::NotFound(_))));
    let window = std::time::Duration::from_secs(60);
    store
        .set_recovery_window(leaving.id, window, audit(AuditAction::Updated, leaving.id, None), now)
        .await
        .unwrap();
    store
        .set_customer_status(
            leaving.id,
            CustomerStatus::Cancelled,
            audit(AuditAction::Updated, leaving.id, None),
            &deleted_audit,
            now,
        )
        .await
        .unwrap();
    let due = store.purge_due_at(leaving.id).await.unwrap().expect("cancelled");
    assert!((due - now - time::Duration::seconds(60)).abs() < time::Duration::milliseconds(1), "{due}");
    assert_eq!(store.customers_due_for_purge(now, 10).await.unwrap(), []);
    let later = now + time::Duration::seconds(61);
    assert_eq!(store.customers_due_for_purge(later, 10).await.unwrap(), [leaving.id]);
    let purge_audit = audit(AuditAction::CustomerPurged, leaving.id, None);
    store.destroy_customer_key(leaving.id, purge_audit, later).await.unwrap();
    assert_eq!(store.customers_due_for_purge(later, 10).await.unwrap(), [], "purged once");

    // A new database seals under customer keys from the start; enabling them again changes nothing.
    let since = store.customer_keys_since().await.unwrap().expect("on in a new database");
    let enabled = audit(AuditAction::CustomerKeysEnabled, owners[1], None);
    assert_eq!(store.enable_customer_keys(enabled, now).await.unwrap(), since);
    let events = store.list_audit(&audit_filter(Some(owners[1]), None)).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "customer_keys_enabled").count(), 0);
    assert_eq!(store.chain_audit(100).await.unwrap().refused.len(), 0);
}

fn record(valid: bool, failing_after: u32) -> VerificationRecord {
    let identity = if valid {
        BTreeMap::from([("account_id".to_owned(), "123456789012".to_owned())])
    } else {
        BTreeMap::new()
    };
    VerificationRecord {
        version: 1,
        valid,
        identity,
        findings: vec![Finding::new(
            Finding::KEY_AGE,
            if valid { "old when valid" } else { "old when invalid" },
        )],
        failing_after,
        now: OffsetDateTime::now_utc(),
    }
}

async fn verification_streaks_schedules_and_counts_follow_the_contract(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let stored =
        created(insert(store.as_ref(), credential(owner.id, "Checked", b"ciphertext-1")).await.unwrap());
    assert_eq!(stored.verification_state(), VerificationState::Unverified);
    assert_eq!(stored.verification, Default::default());
    let verify = |valid: bool| {
        let store = store.clone();
        let action = if valid { AuditAction::Verified } else { AuditAction::Failed };
        async move {
            store
                .record_verification(stored.id, &record(valid, 3), audit(action, owner.id, Some(stored.id)))
                .await
                .unwrap()
        }
    };

    // A valid answer stores identity and findings.
    let valid = verify(true).await;
    assert_eq!(valid.verification_state(), VerificationState::Verified);
    assert_eq!(valid.verification.identity["account_id"], "123456789012");
    assert_eq!(valid.verification.findings[0].detail, "old when valid");
    // Invalid answers count up; the identity last reported stays; the third makes it failing
    // since the first.
    let first = verify(false).await;
    assert_eq!((first.verification.failures, first.verification_state()), (1, VerificationState::Invalid));
    assert_eq!(first.verification.identity["account_id"], "123456789012");
    assert_eq!(first.verification.findings[0].detail, "old when invalid");
    let started = first.verification.first_failed_at.expect("the streak's start");
    assert_eq!(verify(false).await.verification.failing_since, None);
    let failing = verify(false).await;
    assert_eq!(failing.verification.failures, 3);
    assert_eq!(failing.verification_state(), VerificationState::Failing);
    assert_eq!(failing.verification.failing_since, Some(started));
    assert_eq!(verify(false).await.verification.failing_since, Some(started), "still since the first");
    // Reads see the same.
    let read = store.find_credential(stored.id).await.unwrap().unwrap();
    assert_eq!((read.verification.failures, read.verification.failing_since), (4, Some(started)));
    let counts = store.verification_state_counts().await.unwrap();
    assert!(counts.contains(&(VerificationState::Failing, 1)), "{counts:?}");
    assert!(counts.contains(&(VerificationState::Verified, 0)), "every state is counted: {counts:?}");
    // A valid answer ends the streak.
    let recovered = verify(true).await;
    assert_eq!(recovered.verification_state(), VerificationState::Verified);
    assert_eq!((recovered.verification.failures, recovered.verification.first_failed_at), (0, None));
    assert_eq!(recovered.verification.failing_since, None);

    // Claims: a new credential is due at once, claimed once per interval.
    let other =
        created(insert(store.as_ref(), credential(owner.id, "Other", b"ciphertext-2")).await.unwrap());
    let now = OffsetDateTime::now_utc();
    let day = std::time::Duration::from_secs(86_400);
    let mut claimed = store.claim_due_verifications(now, day, 10).await.unwrap();
    claimed.sort_by_key(|(id, _)| *id.as_uuid());
    let mut expected = vec![(stored.id, Provider::Vultr), (other.id, Provider::Vultr)];
    expected.sort_by_key(|(id, _)| *id.as_uuid());
    assert_eq!(claimed, expected);
    assert_eq!(
        store.claim_due_verifications(now, day, 10).await.unwrap(),
        [],
        "claimed until the next interval"
    );
    let next_day = now + time::Duration::hours(21);
    assert_eq!(store.claim_due_verifications(next_day, day, 10).await.unwrap(), [], "not before 0.9 of it");
    let later = now + time::Duration::hours(27);
    assert_eq!(store.claim_due_verifications(later, day, 10).await.unwrap().len(), 2, "due by 1.1 of it");
    // Handed back, a claim is due when asked; the limit holds.
    store.defer_verifications(&[other.id], now + time::Duration::seconds(30)).await.unwrap();
    assert_eq!(store.claim_due_verifications(now, day, 10).await.unwrap(), []);
    let deferred = store.claim_due_verifications(now + time::Duration::seconds(31), day, 1).await.unwrap();
    assert_eq!(deferred, [(other.id, Provider::Vultr)]);
    // A deleted credential is never claimed, due or not.
    store.defer_verifications(&[other.id], now).await.unwrap();
    store.soft_delete(other.id, audit(AuditAction::Deleted, owner.id, Some(other.id)), now).await.unwrap();

    // A new version clears what verification established and is due at once.
    verify(false).await;
    let (rotated, _) = added(
        store
            .add_version(
                version(&recovered, 2, b"ciphertext-3"),
                audit(AuditAction::Rotated, owner.id, Some(stored.id)),
            )
            .await
            .unwrap(),
    );
    assert_eq!(rotated.verification_state(), VerificationState::Unverified);
    assert_eq!(rotated.verification, Default::default());
    assert_eq!(rotated.last_verified_at, None);
    let due = store.claim_due_verifications(now, day, 10).await.unwrap();
    assert_eq!(due, [(stored.id, Provider::Vultr)]);
    // A verdict on the version no longer current is not recorded.
    let stale = audit(AuditAction::Verified, owner.id, Some(stored.id));
    assert!(matches!(
        store.record_verification(stored.id, &record(true, 3), stale).await,
        Err(StoreError::NotFound(_))
    ));
    // Every record has its audit row.
    let events = store.list_audit(&audit_filter(Some(owner.id), Some(stored.id))).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.action == "failed").count(), 5);
    assert_eq!(events.iter().filter(|e| e.action == "verified").count(), 2);

    // The summary counts each state: one verified with findings, one failing (with findings),
    // the rotated one (unverified, findings cleared), the deleted one.
    let flagged = created(insert(store.as_ref(), credential(owner.id, "Flagged", b"c4")).await.unwrap());
    let verdict = audit(AuditAction::Verified, owner.id, Some(flagged.id));
    store.record_verification(flagged.id, &record(true, 3), verdict).await.unwrap();
    let broken = created(insert(store.as_ref(), credential(owner.id, "Broken", b"c5")).await.unwrap());
    let verdict = audit(AuditAction::Failed, owner.id, Some(broken.id));
    store.record_verification(broken.id, &record(false, 1), verdict).await.unwrap();
    let counts = summary_counts_follow_the_rule(store.as_ref(), owner.id).await;
    assert_eq!(
        (counts.total, counts.active, counts.verified, counts.failing, counts.risky, counts.pending_deletion),
        (4, 3, 1, 1, 2, 1)
    );
}

async fn a_credentials_events_list_in_time_order_however_far_the_log_is_indexed(backend: Backend) {
    let (store, _dir) = fresh(backend).await;
    let owner = customer();
    store.ensure_customer(&owner).await.unwrap();
    let mine = created(insert(store.as_ref(), credential(owner.id, "Mine", b"m")).await.unwrap());
    let other = created(insert(store.as_ref(), credential(owner.id, "Other", b"o")).await.unwrap());
    let t0 = OffsetDateTime::now_utc();
    let at = |s: i64| t0 + time::Duration::seconds(s);
    // A use commits to SQLite's journal and moves into the log later than rows written since:
    // the log's commit order and its time order differ.
    let use_at = |id: CredentialId, sealed: &'static [u8], s: i64| {
        let store = store.clone();
        async move {
            let claim =
                UseClaim { id, customer_id: owner.id, etag: None, version: 1, sealed: Arc::from(sealed) };
            store
                .record_use(claim, audit(AuditAction::Used, owner.id, Some(id)), at(s))
                .await
                .unwrap()
                .unwrap();
        }
    };
    let direct = |action, s| store.append_audit(audit(action, owner.id, Some(mine.id)), at(s));
    use_at(mine.id, b"m", 1).await;
    direct(AuditAction::Verified, 2).await.unwrap();
    use_at(other.id, b"o", 2).await;
    use_at(mine.id, b"m", 3).await;
    direct(AuditAction::Failed, 4).await.unwrap();
    use_at(mine.id, b"m", 5).await;

    let list = |filter: AuditFilter| {
        let store = store.clone();
        async move { store.list_audit(&filter).await.unwrap() }
    };
    let mine_only = audit_filter(Some(owner.id), Some(mine.id));
    let actions = |events: &[credvault::domain::AuditEvent]| {
        events.iter().map(|e| e.action.clone()).collect::<Vec<_>>()
    };
    let walked = list(mine_only.clone()).await;
    assert_eq!(actions(&walked), ["used", "failed", "used", "verified", "used", "created"]);

    let taken = store.index_audit().await.unwrap();
    match backend {
        Backend::Sqlite => {
            assert_eq!(taken, 8, "every row of the log: two created, four uses, two direct")
        }
        Backend::Postgres => assert_eq!(taken, 0, "PostgreSQL indexes the log in its own transactions"),
    }
    let indexed = list(mine_only.clone()).await;
    assert_eq!(
        indexed.iter().map(|e| e.id).collect::<Vec<_>>(),
        walked.iter().map(|e| e.id).collect::<Vec<_>>()
    );

    // Rows past what the index took: one older than all but the credential's creation.
    use_at(mine.id, b"m", 0).await;
    direct(AuditAction::Updated, 6).await.unwrap();
    let expected = ["updated", "used", "failed", "used", "verified", "used", "used", "created"];
    assert_eq!(actions(&list(mine_only.clone()).await), expected);

    // Pages of two, following the cursor, give the same; so do the filters, before and after
    // the index takes the rest.
    for round in 0..2 {
        let mut paged = Vec::new();
        let mut filter = AuditFilter { page_size: 2, ..mine_only.clone() };
        loop {
            let mut page = list(filter.clone()).await;
            let more = page.len() > 2;
            page.truncate(2);
            filter.after = page.last().map(|e| credvault::domain::Cursor {
                at_micros: credvault::domain::unix_micros(e.created_at),
                id: e.id,
            });
            paged.extend(page);
            if !more {
                break;
            }
        }
        assert_eq!(actions(&paged), expected, "round {round}");
        let used = list(AuditFilter { action: Some(AuditAction::Used), ..mine_only.clone() }).await;
        assert_eq!(used.len(), 4, "round {round}");
        let window = list(AuditFilter { since: Some(at(2)), until: Some(at(5)), ..mine_only.clone() }).await;
        assert_eq!(actions(&window), ["failed", "used", "verified"], "round {round}");
        let stranger = list(audit_filter(Some(CustomerId::new_random()), Some(mine.id))).await;
        assert!(stranger.is_empty(), "round {round}: {stranger:?}");
        store.index_audit().await.unwrap();
    }
}

backend_tests!(
    a_credentials_events_list_in_time_order_however_far_the_log_is_indexed,
    verification_streaks_schedules_and_counts_follow_the_contract,
    customer_keys_are_added_once_rewrapped_destroyed_and_counted,
    key_versions_the_rewrap_and_leases_follow_the_contract,
    the_store_keeps_its_own_life,
    customers_are_created_once_listed_in_order_and_changed_with_their_audit_row,
    credentials_are_stored_used_verified_listed_and_deleted_with_their_audit_rows,
    list_pages_follow_every_filter_to_the_last_page,
    tokens_are_recorded_found_listed_and_revoked,
    every_audit_row_is_chained_once_in_commit_order,
    versions_are_added_changed_and_listed_with_their_audit_rows,
    metadata_changes_restores_purges_and_recovery_windows_follow_the_contract,
    a_cancelled_customer_loses_its_credentials_at_once_and_takes_no_writes,
    imports_keep_ids_times_and_counts_and_are_skipped_once_there,
    key_usage_counts_the_data_keys_of_each_version,
);
